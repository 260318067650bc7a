/**
 * Choosing where the user lands. A requested target is honoured only when it is provably safe: a path on
 * this site, or an absolute http(s) URL whose origin is allowlisted. Everything else falls back to the
 * configured `redirectTo`. The returned value is re-serialised by the URL parser, so it carries no raw
 * control characters into the Location header.
 */
import type { Request } from 'express';

/** Longer targets are refused: no legitimate return path needs more, and they bloat headers and logs. */
export const MAX_TARGET_LENGTH = 2048;

// C0 controls, space, DEL, C1 controls, backslash (browsers read "\" as "/"), and Unicode spaces/separators.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_CHARACTER = /[\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f\u2060\u3000\ufeff\\]/;
const PLACEHOLDER_ORIGIN = 'http://placeholder.invalid';

/** Repeatedly percent-decodes (bounded) so that encoded tricks such as %2F%2F or %5C are seen for what they are. */
function decodedForms(value: string): string[] | undefined {
  const forms = [value];
  let current = value;
  for (let i = 0; i < 3 && current.includes('%'); i += 1) {
    let next: string;
    try {
      next = decodeURIComponent(current);
    } catch {
      return undefined; // malformed escapes: refuse rather than guess
    }
    if (next === current) break;
    forms.push(next);
    current = next;
  }
  return forms;
}

/** "/x" only: not "//host", not "/\\host", and no control or space characters in the path part. */
function isSafeRelative(form: string): boolean {
  const path = form.split(/[?#]/, 1)[0] ?? '';
  if (!path.startsWith('/') || path.startsWith('//') || UNSAFE_CHARACTER.test(path)) return false;
  // Dot segments collapse: "/..//evil.example" and "/.//evil.example" normalise to "//evil.example".
  try {
    return !new URL(path, PLACEHOLDER_ORIGIN).pathname.startsWith('//');
  } catch {
    return false;
  }
}

/** A same-site path, normalised, or undefined when the value is not provably on this site. */
function safePath(value: string): string | undefined {
  // The raw value must be clean everywhere; decoded forms (a proxy may decode) must keep a clean path.
  if (UNSAFE_CHARACTER.test(value)) return undefined;
  const forms = decodedForms(value);
  if (!forms || !forms.every(isSafeRelative)) return undefined;
  let url: URL;
  try {
    url = new URL(value, PLACEHOLDER_ORIGIN);
  } catch {
    return undefined;
  }
  if (url.origin !== PLACEHOLDER_ORIGIN) return undefined;
  const normalised = url.pathname + url.search + url.hash;
  // Normalising removes dot segments, which can turn a clean value into one that is not ("/./%2f%2E%2E"
  // becomes "/%2f%2E%2E", "//.." once decoded): the result must pass the same checks.
  const normalisedForms = decodedForms(normalised);
  return normalisedForms && normalisedForms.every(isSafeRelative) ? normalised : undefined;
}

/** An absolute URL on an allowlisted origin, normalised, or undefined. */
function safeAbsolute(value: string, allowedOrigins: ReadonlySet<string>): string | undefined {
  if (allowedOrigins.size === 0 || UNSAFE_CHARACTER.test(value)) return undefined;
  // Only "scheme://" with an explicit authority: "https:evil.com" is parsed leniently by browsers.
  if (!/^https?:\/\/[^/]/i.test(value)) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.username || url.password) return undefined;
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  return allowedOrigins.has(url.origin) ? url.href : undefined;
}

/** Whether `value` is a safe target; exported for tests and for apps that validate return paths elsewhere. */
export function safeRedirectTarget(value: unknown, allowedOrigins: ReadonlySet<string>): string | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_TARGET_LENGTH) return undefined;
  return value.startsWith('/') ? safePath(value) : safeAbsolute(value, allowedOrigins);
}

function ownField(source: unknown, name: string): unknown {
  return typeof source === 'object' && source !== null && Object.hasOwn(source, name)
    ? (source as Record<string, unknown>)[name]
    : undefined;
}

export type RedirectResolver = (req: Request) => string;

/** Reads `returnToParam` from the query, then from an already parsed body, and falls back to `fallback`. */
export function createRedirectResolver(
  fallback: string,
  param: string,
  allowedOrigins: ReadonlySet<string>,
): RedirectResolver {
  return (req) => {
    const requested = ownField(req.query, param) ?? ownField(req.body, param);
    if (requested === undefined) return fallback;
    return safeRedirectTarget(requested, allowedOrigins) ?? fallback;
  };
}
