/**
 * Ending the session locally: destroy it in its store, clear its cookie with the attributes it was set
 * with (a cookie is only cleared by a Set-Cookie with the same name, path and domain), forbid caching.
 */
import type { CookieOptions, Request, Response } from 'express';
import { isTombstoneWriteError } from './session-guard';

/** The express-session parts we use; checked per request because apps mount middleware in any order. */
export interface DestroyableSession {
  destroy(callback: (err?: unknown) => void): unknown;
  cookie?: { path?: string; domain?: string; secure?: boolean | 'auto'; sameSite?: unknown; httpOnly?: boolean };
}

export function sessionOf(req: Request): DestroyableSession | undefined {
  const session = (req as { session?: unknown }).session as Partial<DestroyableSession> | undefined | null;
  return session && typeof session.destroy === 'function' ? (session as DestroyableSession) : undefined;
}

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
  return options;
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

export function clearSessionCookie(res: Response, name: string, attributes: CookieOptions): void {
  res.clearCookie(name, attributes);
  // The answer to a logout must never be replayed from a cache (shared or the browser's).
  res.setHeader('Cache-Control', 'no-store');
}
