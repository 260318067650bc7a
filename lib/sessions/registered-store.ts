/**
 * The store createSessionRegistry() hands to express-session: the guard (ended sessions stay ended) plus the
 * per-user index. A read of an indexed session costs one index call (tombstone, "not before" mark and, at most once
 * a minute, lastSeenAt together); a write is checked, written, checked again, like the guard's.
 */
import type { Request } from 'express';
import type { SessionData } from 'express-session';
import createDebug from 'debug';
import { GuardedStore, settle, type InnerStore, type SessionStoreGuardOptions } from '../session-guard';
import { normaliseUserId, sessionRef, type SessionRef } from './keys';
import { EXPIRY_MARGIN_MS, MAX_USER_AGENT, WRITE_WAIT_MS, type SessionIndex, type Verdict } from './session-index';
import type { StoredSession } from './types';

const debug = createDebug('express-polar-logout:sessions');

/** On a request: when it began to use its session (a login's start, for the "not before" mark). */
const STARTED: unique symbol = Symbol('express-polar-logout:started');
/** On session data a read returned, then on its request: the session id the index checked on this request. */
const CHECKED: unique symbol = Symbol('express-polar-logout:checked');

interface StampedRequest {
  [STARTED]?: number;
  [CHECKED]?: string;
  sessionID?: string;
  headers?: Record<string, unknown>;
}

function stamp(req: StampedRequest): void {
  req[STARTED] ??= Date.now();
}

/** The request a Session object belongs to (express-session defines `req` on it, not enumerable). */
function requestOf(session: unknown): StampedRequest | undefined {
  const req = (session as { req?: unknown } | null)?.req;
  return typeof req === 'object' && req !== null ? req : undefined;
}

function userAgentOf(req: StampedRequest | undefined): string | undefined {
  const ua = req?.headers?.['user-agent'];
  return typeof ua === 'string' && ua !== '' ? ua.slice(0, MAX_USER_AGENT) : undefined;
}

export interface RegisteredStoreSettings {
  userIdOf: (data: StoredSession) => unknown;
  defaultSessionTtlMs: number;
  /** Called with the data of a session the mark refused and this store destroys (no logout has its tokens). */
  onEnded: (data: unknown) => void;
}

export class RegisteredStore extends GuardedStore {
  constructor(
    inner: InnerStore,
    tombstoneTtlMs: number,
    private readonly index: SessionIndex,
    onRefused: SessionStoreGuardOptions['onRefused'],
    timeoutMs: number,
    private readonly settings: RegisteredStoreSettings,
  ) {
    super(inner, tombstoneTtlMs, index, onRefused, timeoutMs);
    // express-session sets store.generate(req) for new sessions: the request's start is stamped first.
    let generate: ((req: Request) => void) | undefined;
    Object.defineProperty(this, 'generate', {
      configurable: true,
      enumerable: true,
      get: () => generate,
      set: (fn: unknown) => {
        generate =
          typeof fn === 'function'
            ? (req: Request) => {
                stamp(req as StampedRequest);
                (fn as (req: Request) => void).call(this, req);
              }
            : undefined;
      },
    });
    const guardedTouch = this.touch;
    if (guardedTouch && typeof inner.touch === 'function') {
      const touch = inner.touch.bind(inner);
      // A session this request read through the index was checked then: its touch only extends its expiry in the
      // store (no store's touch creates a missing session; a tombstone found on the next read removes it anyway).
      this.touch = (sid, session, callback) =>
        requestOf(session)?.[CHECKED] === sid ? touch(sid, session, callback) : guardedTouch(sid, session, callback);
    }
  }

  /** The user a session's data names, or undefined (anonymous; a throwing userIdOf counts as anonymous). */
  userOf(data: unknown): string | undefined {
    try {
      return normaliseUserId(this.settings.userIdOf(data as StoredSession));
    } catch (err) {
      debug('userIdOf threw (%s); the session is treated as anonymous', err instanceof Error ? err.name : typeof err);
      return undefined;
    }
  }

  /** When the index may forget a session: its store expiry (extended by this request), plus a margin. */
  private expiryOf(data: unknown, now: number): number {
    const cookie = (data as { cookie?: { originalMaxAge?: unknown; expires?: unknown } } | null)?.cookie;
    let expires = now + this.settings.defaultSessionTtlMs;
    if (typeof cookie?.originalMaxAge === 'number' && cookie.originalMaxAge > 0) expires = now + cookie.originalMaxAge;
    else if (cookie?.expires) {
      const at = new Date(cookie.expires as string).getTime();
      if (Number.isFinite(at)) expires = at;
    }
    return expires + EXPIRY_MARGIN_MS;
  }

  /** Ends a session the index refused: tombstone, entry and stored copy; errors only reach debug. */
  private end(sid: string, callback: () => void): void {
    this.destroy(sid, (err) => {
      if (err) debug('could not end a refused session: %s', err instanceof Error ? err.name : typeof err);
      callback();
    });
  }

  private verdictFor(ref: SessionRef, data: StoredSession, callback: (err: unknown, verdict?: Verdict) => void): void {
    const now = Date.now();
    settle(
      () => this.index.check(ref, { now, expiresAt: this.expiryOf(data, now) }, undefined),
      this.timeoutMs,
      callback,
    );
  }

  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    this.inner.get(sid, (err: unknown, data?: SessionData | null) => {
      if (err) return callback(err);
      if (!data) return callback(null, null);
      const userId = this.userOf(data);
      const decide = (checkErr: unknown, verdict?: Verdict): void => {
        // Fail open, as the guard does: an index that cannot answer must not sign everybody out.
        if (checkErr) {
          this.unreadable('get', checkErr);
          return callback(null, data);
        }
        if (verdict === 'ok') {
          Object.defineProperty(data, CHECKED, { value: true });
          return callback(null, data);
        }
        this.refused('get', sid);
        if (verdict === 'ended') this.settings.onEnded(data);
        // 'ending': the logout everywhere that has its entry destroys it, once it has read its tokens.
        if (verdict === 'ending') return callback(null, null);
        this.end(sid, () => callback(null, null));
      };
      if (userId === undefined) {
        this.isDestroyed(sid, (checkErr, destroyed) => decide(checkErr, destroyed ? 'destroyed' : 'ok'));
      } else {
        this.verdictFor(sessionRef(sid, userId), data as unknown as StoredSession, decide);
      }
    });
  }

  override set(sid: string, session: SessionData, callback?: (err?: unknown) => void): void {
    const userId = this.userOf(session);
    if (userId === undefined) return super.set(sid, session, callback);
    const done = (err?: unknown): void => callback?.(err ?? undefined);
    const req = requestOf(session);
    const now = Date.now();
    const ref = sessionRef(sid, userId);
    const times = { now, expiresAt: this.expiryOf(session, now), createdAt: req?.[STARTED] ?? now };
    const refuse = (verdict: Verdict): void => {
      this.refused('set', sid);
      if (verdict !== 'ended') return done();
      this.settings.onEnded(session);
      this.end(sid, () => done());
    };
    settle(
      () => this.index.admit(ref, times, userAgentOf(req)),
      Math.max(this.timeoutMs, WRITE_WAIT_MS),
      (err, verdict) => {
        if (err) {
          this.unreadable('set', err);
          return done(err);
        }
        if (verdict !== 'ok') return refuse(verdict ?? 'destroyed');
        this.inner.set(sid, session, (writeErr?: unknown) => {
          if (writeErr) return done(writeErr);
          // A logout everywhere on another instance may have ended it while it was being written.
          settle(
            () => this.index.recheck(ref),
            Math.max(this.timeoutMs, WRITE_WAIT_MS),
            (checkErr, after) => {
              if (checkErr) {
                this.unreadable('set', checkErr);
                return done(checkErr);
              }
              if (after === 'ok') return done();
              this.refused('set', sid);
              this.end(sid, () => done());
            },
          );
        });
      },
    );
  }

  override createSession(req: Request, session: SessionData): ReturnType<InnerStore['createSession']> {
    const stamped = req as StampedRequest;
    stamp(stamped);
    if ((session as { [CHECKED]?: boolean })[CHECKED]) stamped[CHECKED] = stamped.sessionID;
    return super.createSession(req, session);
  }
}
