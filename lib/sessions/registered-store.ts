/**
 * The store createSessionRegistry() hands to express-session: the guard (ended sessions stay ended) plus the
 * per-user index. A read of an indexed session costs one index call (tombstone, "not before" mark and, at most once
 * a minute, lastSeenAt together), sent with the store's own read when this process has checked the session before
 * (then no round trip of latency is added); a write is checked, written, checked again, like the guard's.
 */
import type { Request } from 'express';
import type { SessionData } from 'express-session';
import createDebug from 'debug';
import { GuardedStore, settle, tombstoneKey, type InnerStore, type SessionStoreGuardOptions } from '../session-guard';
import { normaliseUserId, sessionRef, type SessionRef } from './keys';
import { RecentSessions } from './recent';
import { EXPIRY_MARGIN_MS, MAX_USER_AGENT, WRITE_WAIT_MS, type SessionIndex, type Verdict } from './session-index';
import type { StoredSession } from './types';

const debug = createDebug('express-polar-logout:sessions');

// Weak maps rather than properties of their own on requests and sessions: adding a property to every request
// cost about 4 µs per read in a profile, more than the rest of the registry's work in this process.
/** Requests whose session was not checked by a read: when each began to use its session (for the mark). */
const startedAt = new WeakMap<object, number>();
/**
 * Session data a read checked through the index, then the Session object express-session made of it: when it was
 * checked. That session's touch only extends its expiry, and a login in it counts from then.
 */
const checkedAt = new WeakMap<object, number>();

interface RequestLike {
  sessionID?: string;
  headers?: Record<string, unknown>;
}

function stamp(req: object): void {
  if (!startedAt.has(req)) startedAt.set(req, Date.now());
}

/** The request a Session object belongs to (express-session defines `req` on it, not enumerable). */
function requestOf(session: unknown): RequestLike | undefined {
  const req = (session as { req?: unknown } | null)?.req;
  return typeof req === 'object' && req !== null ? req : undefined;
}

function userAgentOf(req: RequestLike | undefined): string | undefined {
  const ua = req?.headers?.['user-agent'];
  return typeof ua === 'string' && ua !== '' ? ua.slice(0, MAX_USER_AGENT) : undefined;
}

export interface RegisteredStoreSettings {
  userIdOf: (data: StoredSession) => unknown;
  defaultSessionTtlMs: number;
  /** Called with the data of a session the mark refused and this store destroys (no logout has its tokens). */
  onEnded: (data: unknown) => void;
}

/** Sessions whose index names this process keeps, so that a read asks the index and the store at once. */
const RECENT_SESSIONS = 10_000;

type Peeked = { error: unknown; verdict?: undefined } | { error?: undefined; verdict: Verdict | 'unknown' };

export class RegisteredStore extends GuardedStore {
  private readonly recent = new RecentSessions(RECENT_SESSIONS);
  /** The index's read that needs no session data (the Redis index's), bound once; undefined: reads check in turn. */
  private readonly peekIndex: SessionIndex['peek'];

  constructor(
    inner: InnerStore,
    tombstoneTtlMs: number,
    private readonly index: SessionIndex,
    onRefused: SessionStoreGuardOptions['onRefused'],
    timeoutMs: number,
    private readonly settings: RegisteredStoreSettings,
  ) {
    super(inner, tombstoneTtlMs, index, onRefused, timeoutMs);
    this.peekIndex = index.peek?.bind(index);
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
                stamp(req);
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
        checkedAt.has(session) ? touch(sid, session, callback) : guardedTouch(sid, session, callback);
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
      this.index.bounded ? undefined : this.timeoutMs,
      callback,
    );
  }

  /** The index's read-only verdict, never rejecting (the Redis index bounds every call in time). */
  private static peeked(asked: Promise<Verdict | 'unknown'>): Promise<Peeked> {
    return asked.then(
      (verdict): Peeked => ({ verdict }),
      (error: unknown): Peeked => ({ error: error ?? new Error('session index read failed') }),
    );
  }

  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    const tomb = tombstoneKey(sid);
    const known = this.peekIndex ? this.recent.get(tomb) : undefined;
    // A session this process has checked before: the index is asked now, together with the store (one round trip
    // for both), and the answer is used once the data confirms the user.
    const knownRef = known && { sid, tomb, handle: known.handle, user: known.user };
    const early = knownRef && this.peekIndex && RegisteredStore.peeked(this.peekIndex(knownRef, Date.now()));
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
          checkedAt.set(data, Date.now());
          return callback(null, data);
        }
        this.refused('get', sid);
        if (verdict === 'ended') this.settings.onEnded(data);
        // 'ending': the logout everywhere that has its entry destroys it, once it has read its tokens.
        if (verdict === 'ending') return callback(null, null);
        this.end(sid, () => callback(null, null));
      };
      const stored = data as unknown as StoredSession;
      if (userId === undefined) {
        this.isDestroyed(sid, (checkErr, destroyed) => decide(checkErr, destroyed ? 'destroyed' : 'ok'));
      } else if (early && known.userId === userId) {
        void early.then((peeked) => {
          // 'unknown': the index does not know it (any more), or its lastSeenAt is due: the full check writes.
          if (peeked.verdict === 'unknown') this.verdictFor(knownRef, stored, decide);
          else process.nextTick(decide, peeked.error, peeked.verdict);
        });
      } else {
        const ref = sessionRef(sid, userId, tomb);
        this.verdictFor(ref, stored, (checkErr, verdict) => {
          if (verdict === 'ok') this.recent.remember(tomb, { userId, handle: ref.handle, user: ref.user });
          decide(checkErr, verdict);
        });
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
    const started = (req ? startedAt.get(req) : undefined) ?? checkedAt.get(session);
    const times = { now, expiresAt: this.expiryOf(session, now), createdAt: started ?? now };
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
              if (after === 'ok') {
                this.recent.remember(ref.tomb, { userId, handle: ref.handle, user: ref.user });
                return done();
              }
              this.refused('set', sid);
              this.end(sid, () => done());
            },
          );
        });
      },
    );
  }

  override createSession(req: Request, session: SessionData): ReturnType<InnerStore['createSession']> {
    const checked = checkedAt.get(session);
    if (checked === undefined) stamp(req);
    const made = super.createSession(req, session);
    if (checked !== undefined) checkedAt.set(made, checked);
    return made;
  }
}
