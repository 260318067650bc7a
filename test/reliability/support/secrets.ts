/** The secrets scan: which of the given secrets appear in captured text. */
export function findLeaks(haystack: string, secrets: Iterable<string>): string[] {
  const found = new Set<string>();
  for (const secret of secrets) if (secret.length >= 8 && haystack.includes(secret)) found.add(secret);
  return [...found];
}

/** Secrets a session carries: its id raw, and as sent in the signed cookie (raw and URL-decoded). */
export function sessionSecrets(sessionId: string, cookie: string): string[] {
  const value = cookie.slice(cookie.indexOf('=') + 1);
  return [sessionId, value, decodeURIComponent(value)];
}
