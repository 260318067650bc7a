/**
 * Ending the session locally: destroy it in its store, clear its cookie with the attributes it was set
 * with (a cookie is only cleared by a Set-Cookie with the same name, path and domain, and a partitioned
 * cookie only by a partitioned Set-Cookie), forbid caching.
 */
import type { CookieOptions, Request, Response } from 'express';
import { isTombstoneWriteError } from './session-guard';

/** The express-session parts we use; checked per request because apps mount middleware in any order. */
export interface DestroyableSession {
  destroy(callback: (err?: unknown) => void): unknown;
  cookie?: {
    path?: string;
    domain?: string;
    secure?: boolean | 'auto';
    sameSite?: unknown;
    httpOnly?: boolean;
    partitioned?: boolean;
    priority?: unknown;
  };
}

export function sessionOf(req: Request): DestroyableSession | undefined {
  const session = (req as { session?: unknown }).session as Partial<DestroyableSession> | undefined | null;
  return session && typeof session.destroy === 'function' ? (session as DestroyableSession) : undefined;
}

/** express-session's id of this request's session (a string once express-session ran; anything otherwise). */
export function sessionIdOf(req: Request): unknown {
  return (req as { sessionID?: unknown }).sessionID;
}

const PRIORITIES = new Set(['low', 'medium', 'high']);

/** The attributes of the session cookie, read before destroy() removes req.session. */
export function cookieAttributesOf(session: DestroyableSession): CookieOptions {
  const cookie = session.cookie ?? {};
  const options: CookieOptions = { path: cookie.path ?? '/', httpOnly: cookie.httpOnly ?? true };
  if (cookie.domain) options.domain = cookie.domain;
  if (cookie.secure === true) options.secure = true;
  const sameSite = typeof cookie.sameSite === 'string' ? cookie.sameSite.toLowerCase() : cookie.sameSite;
  if (sameSite === true || sameSite === 'lax' || sameSite === 'strict' || sameSite === 'none') {
    options.sameSite = sameSite;
  }
  // CHIPS: the browser keys a partitioned cookie by the top-level site; an unpartitioned clear misses it.
  if (cookie.partitioned === true) options.partitioned = true;
  const priority = typeof cookie.priority === 'string' ? cookie.priority.toLowerCase() : undefined;
  if (priority && PRIORITIES.has(priority)) options.priority = priority as CookieOptions['priority'];
  return options;
}

/** Whether the request carries no session cookie, one for another session (forged, expired), or this session's. */
export type SessionCookie = 'absent' | 'other' | 'this';

/**
 * Which session cookie the Cookie header carries. express-session loads a session only through a cookie signed
 * for its id (`s:<id>.<signature>`), so a session whose id no cookie names was generated for this request and
 * is not in the store. The header is scanned, not kept: the value is only compared, never copied or logged.
 */
export function sessionCookieOf(header: string | undefined, name: string, sessionId: unknown): SessionCookie {
  if (!header) return 'absent';
  const signed = typeof sessionId === 'string' && sessionId !== '' ? `s:${sessionId}.` : undefined;
  let found: SessionCookie = 'absent';
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq === -1 || pair.slice(0, eq).trim() !== name) continue;
    found = 'other';
    if (signed !== undefined && cookieValue(pair.slice(eq + 1)).startsWith(signed)) return 'this';
  }
  return found;
}

/** A cookie value as the cookie module reads it: trimmed, unquoted, percent-decoded when well-formed. */
function cookieValue(raw: string): string {
  let value = raw.trim();
  if (value.length > 1 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** Whether the session holds anything besides its cookie: a session generated for this request holds nothing. */
export function holdsData(session: DestroyableSession): boolean {
  for (const key of Object.keys(session)) if (key !== 'cookie') return true;
  return false;
}

export function destroySession(session: DestroyableSession): Promise<void> {
  return new Promise((resolve, reject) => {
    // The store's error may name the session id: it is replaced, never passed on. The guard's own
    // TombstoneWriteError (session deleted, tombstone missing) carries no id and is told apart by the caller.
    session.destroy((err) =>
      err ? reject(isTombstoneWriteError(err) ? err : new Error('session store destroy failed')) : resolve(),
    );
  });
}

/**
 * Drops a session that was never stored without asking the store: express-session then neither saves it nor
 * sets its cookie at the end of the response (as after destroy()), and no store or tombstone sees the request.
 */
export function detachSession(req: Request): void {
  delete (req as { session?: unknown }).session;
}

/**
 * Clears the session cookie with the Set-Cookie line Express writes for it, serialised once per set of attributes:
 * res.clearCookie() copies its options twice and checks and formats every attribute on each call, for a line that
 * is the same on every logout of an app. The first logout with given attributes asks Express (whichever version
 * the app runs); the others append the line it wrote. Every logout answer also forbids caching.
 */
export function createCookieClearer(name: string): (res: Response, attributes: CookieOptions) => void {
  const lines = new Map<string, string>();
  return (res, attributes) => {
    const key = attributesKey(attributes);
    const line = lines.get(key);
    if (line !== undefined) {
      res.append('Set-Cookie', line);
    } else {
      res.clearCookie(name, attributes);
      const written = res.getHeader('Set-Cookie');
      const last = Array.isArray(written) ? written[written.length - 1] : written;
      // Attributes come from the app's session settings: a handful at most, never one per user.
      if (typeof last === 'string' && lines.size < MAX_CLEARING_LINES) lines.set(key, last);
    }
    // The answer to a logout must never be replayed from a cache (shared or the browser's).
    res.setHeader('Cache-Control', 'no-store');
  };
}

const MAX_CLEARING_LINES = 16;

/** Everything cookieAttributesOf() may set, in one string. */
function attributesKey(o: CookieOptions): string {
  return `${o.path ?? ''}\n${o.domain ?? ''}\n${o.httpOnly === true}\n${o.secure === true}\n${String(o.sameSite)}\n${o.partitioned === true}\n${o.priority ?? ''}`;
}
