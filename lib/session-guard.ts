/**
 * Keeping a destroyed session destroyed. express-session writes a session back at the end of every request
 * that modified it (and, with `resave` or `rolling`, of requests that did not), so a request that loaded the
 * session before a logout and ends after it puts the destroyed session back in the store: the old cookie
 * works again. guardSessionStore() wraps the store, remembers the ids it destroyed (hashed) for `ttlMs` in
 * "tombstones", and refuses to write them again.
 *
 * The write path is check, write, check again: a write that slipped past the first check while another
 * process destroyed the session is undone by the second, so the guarantee holds across processes as long as
 * they share the tombstones (createRedisTombstones) and destroy() records the tombstone before it deletes.
 *
 * When the tombstones cannot be read (the tombstone store fails, or does not answer within
 * `tombstoneTimeoutMs`), reads fail open (the session is read without the check, and it is reported) and
 * writes stay refused: an outage of the tombstone store must not log everybody out, nor let a destroyed
 * session be written back.
 */
import { EventEmitter } from 'node:events';
import type { Request } from 'express';
import type { SessionData, Store } from 'express-session';
import createDebug from 'debug';
import { hashSessionId } from './audit';
import { invalidOption, PolarLogoutError } from './errors';
import { createMemoryTombstones, type SessionTombstones } from './tombstones';
import { integerInRange, isObject, optionalFunction, rejectUnknownKeys } from './validate';
import { warnOnce } from './warnings';
import { settleWithin } from './util/settle';
import { sha256 } from './util/sha256';

const debug = createDebug('express-polar-logout:session-guard');

/** Options of guardSessionStore(). */
export interface SessionStoreGuardOptions {
  /**
   * How long a destroyed session id stays refused, in ms. Make it longer than your slowest request
   * (uploads, long polls). Default 600000 (10 minutes).
   */
  ttlMs?: number;
  /**
   * Where tombstones are kept. Default: this process's memory (createMemoryTombstones()), which protects
   * one process only; when several processes or machines share the session store, pass
   * createRedisTombstones({ client }) so that all of them see every logout.
   */
  tombstones?: SessionTombstones;
  /**
   * Called when a write to a destroyed session is refused (`set`, `touch`), or when a destroyed session is
   * found back in the store and removed (`get`: an unguarded writer put it there). For metrics; errors ignored.
   */
  onRefused?: (info: { operation: 'set' | 'touch' | 'get'; sessionIdHash: string | undefined }) => void;
  /**
   * Longest wait for one tombstone call (`has`, `add`), in ms; a call that takes longer counts as failed.
   * Default 300. A Redis that is down does not answer: clients queue commands until they reconnect.
   */
  tombstoneTimeoutMs?: number;
}

const DEFAULT_TTL_MS = 10 * 60 * 1000;
const MAX_TTL_MS = 7 * 24 * 60 * 60 * 1000;
const DEFAULT_TOMBSTONE_TIMEOUT_MS = 300;
const MAX_TOMBSTONE_TIMEOUT_MS = 60_000;
const GUARD_KEYS = ['ttlMs', 'tombstones', 'onRefused', 'tombstoneTimeoutMs'] as const;

/** The tombstone key of a session id: SHA-256, base64url. The raw id is never stored. */
export function tombstoneKey(sessionId: string): string {
  return sha256(sessionId, 'base64url');
}

/**
 * What the guarded destroy() answers when it deleted the session but could not record its tombstone: the
 * user is logged out, but a request in flight could write the session back. polarLogout() answers success
 * and reports `error: { code: 'TOMBSTONE_FAILED' }` in its audit event.
 */
export class TombstoneWriteError extends PolarLogoutError {
  /** Always true: the session was deleted from the store. */
  readonly sessionDeleted = true as const;

  constructor() {
    super(
      'TOMBSTONE_WRITE_FAILED',
      'express-polar-logout: the session was deleted, but guardSessionStore could not record its tombstone, ' +
        'so a request in flight may write it back. Check the tombstone store (Redis).',
    );
  }
}

/** Whether a store error is the guard's TombstoneWriteError (by code: it may come from another copy of the library). */
export function isTombstoneWriteError(err: unknown): err is TombstoneWriteError {
  const e = err as { code?: unknown; sessionDeleted?: unknown } | null | undefined;
  return e?.code === 'TOMBSTONE_WRITE_FAILED' && e.sessionDeleted === true;
}

function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** A tombstone call that did not settle in time; a fresh error each time (callers may decorate it). */
function timedOut(): Error {
  return Object.assign(
    new Error('express-polar-logout: the tombstone store did not answer within tombstoneTimeoutMs.'),
    { code: 'TOMBSTONE_TIMEOUT' },
  );
}

/** Why a tombstone call failed, for debug: the error's name or "timeout", never its message or a key. */
function describeFailure(err: unknown): string {
  if ((err as { code?: unknown } | null)?.code === 'TOMBSTONE_TIMEOUT') return 'no answer within tombstoneTimeoutMs';
  return err instanceof Error ? err.name : typeof err;
}

/**
 * Runs a sync-or-async tombstone call and calls back outside any promise chain, as a callback store would,
 * within `limitMs`: a later answer is ignored. A synchronous call (memory tombstones) starts no timer, nor does
 * a step that bounds itself (`limitMs` undefined: every Redis command of the adapter settles within its bound).
 */
export function settle<T>(
  step: () => T | PromiseLike<T>,
  limitMs: number | undefined,
  callback: (err: unknown, value?: T) => void,
): void {
  let value: T | PromiseLike<T>;
  try {
    value = step();
  } catch (err) {
    return callback(err ?? new Error('tombstone step failed'));
  }
  if (!isPromiseLike<T>(value)) return callback(null, value);
  const running = value;
  if (limitMs === undefined) {
    running.then(
      (result) => process.nextTick(callback, null, result),
      (err: unknown) => process.nextTick(callback, err ?? new Error('tombstone step failed')),
    );
    return;
  }
  // nextTick: the callback runs outside the promise chain, so a throw in it is not turned into a rejection.
  void settleWithin(() => running, limitMs).then((outcome) => {
    if (outcome.kind === 'done') process.nextTick(callback, null, outcome.value);
    else if (outcome.kind === 'late') process.nextTick(callback, timedOut());
    else process.nextTick(callback, outcome.error ?? new Error('tombstone step failed'));
  });
}

/** What the guard needs from a store: express-session's Store. */
export type InnerStore = Store;
const STORE_METHODS = ['get', 'set', 'destroy', 'on', 'regenerate'] as const;

export function isSessionStore(value: unknown): value is InnerStore {
  return isObject(value) && STORE_METHODS.every((name) => typeof (value as Partial<InnerStore>)[name] === 'function');
}

/** The guard; createSessionRegistry() extends it with the per-user index. */
export class GuardedStore extends EventEmitter {
  all?: Store['all'];
  length?: Store['length'];
  clear?: Store['clear'];
  touch?: Store['touch'];
  /** Set by express-session on the store it is given. */
  generate?: (req: Request) => void;

  constructor(
    protected readonly inner: InnerStore,
    protected readonly ttlMs: number,
    protected readonly tombstones: SessionTombstones,
    protected readonly onRefused: SessionStoreGuardOptions['onRefused'],
    protected readonly timeoutMs: number,
  ) {
    super();
    // Reads and bulk operations pass through; only methods the store has are exposed, because
    // express-session checks for touch() and calls it instead of set() when present.
    if (typeof inner.all === 'function') this.all = inner.all.bind(inner);
    if (typeof inner.length === 'function') this.length = inner.length.bind(inner);
    if (typeof inner.clear === 'function') this.clear = inner.clear.bind(inner);
    if (typeof inner.touch === 'function') {
      const touch = inner.touch.bind(inner);
      this.touch = (sid, session, callback) =>
        this.guardedWrite('touch', sid, (cb) => touch(sid, session, cb), callback);
    }
    for (const event of ['connect', 'disconnect']) inner.on(event, (...args: unknown[]) => this.emit(event, ...args));
  }

  protected refused(operation: 'set' | 'touch' | 'get', sid: string): void {
    const sessionIdHash = hashSessionId(sid);
    debug('refused to %s destroyed session %s', operation, sessionIdHash);
    try {
      this.onRefused?.({ operation, sessionIdHash });
    } catch {
      debug('onRefused threw; ignored');
    }
  }

  protected isDestroyed(sid: string, callback: (err: unknown, destroyed?: boolean) => void): void {
    settle(() => this.tombstones.has(tombstoneKey(sid)), this.timeoutMs, callback);
  }

  /** A failed check: reported once per process as a warning, every time to debug; no session id either way. */
  protected unreadable(operation: 'get' | 'set' | 'touch', err: unknown): void {
    const consequence = { get: 'read without the check', set: 'write refused', touch: 'touch skipped' }[operation];
    debug('could not read the tombstones (%s): %s', describeFailure(err), consequence);
    warnOnce(
      'EPL_TOMBSTONES_UNREADABLE',
      'express-polar-logout: guardSessionStore could not read its tombstones (the tombstone store failed or did not ' +
        'answer within tombstoneTimeoutMs). Until it answers, sessions are read without the check and session ' +
        'writes are refused. Check the tombstone store (Redis).',
    );
  }

  /** Check, write, check again; a write that raced a destroy elsewhere is undone. */
  protected guardedWrite(
    operation: 'set' | 'touch',
    sid: string,
    write: (callback: (err?: unknown) => void) => void,
    callback: ((err?: unknown) => void) | undefined,
  ): void {
    const done = (err?: unknown): void => callback?.(err ?? undefined);
    this.isDestroyed(sid, (err, destroyed) => {
      if (err) {
        this.unreadable(operation, err);
        // A touch only extends the expiry of the session this request read: skipping it is safe and keeps
        // reads working. A set could write a destroyed session back: refused.
        return operation === 'touch' ? done() : done(err);
      }
      if (destroyed) {
        this.refused(operation, sid);
        return done();
      }
      write((writeErr) => {
        if (writeErr) return done(writeErr);
        this.isDestroyed(sid, (checkErr, destroyedMeanwhile) => {
          if (checkErr) {
            this.unreadable(operation, checkErr);
            return done(operation === 'touch' ? undefined : checkErr);
          }
          if (!destroyedMeanwhile) return done();
          this.refused(operation, sid);
          this.inner.destroy(sid, (destroyErr?: unknown) => done(destroyErr));
        });
      });
    });
  }

  get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    // The tombstone check runs alongside the read, so a guarded read costs no extra round trip of latency.
    let pending = 2;
    let failure: unknown;
    let destroyed = false;
    let session: SessionData | null | undefined;
    const join = (): void => {
      pending -= 1;
      if (pending > 0) return;
      if (failure) return callback(failure);
      if (!destroyed || !session) return callback(null, destroyed ? null : session);
      // A destroyed session is in the store: an unguarded writer put it back. Remove it again.
      this.refused('get', sid);
      this.inner.destroy(sid, (err?: unknown) => callback(err ?? null, null));
    };
    this.isDestroyed(sid, (err, isDestroyed) => {
      // Fail open: a tombstone store that cannot answer must not make every signed-in request fail.
      if (err) this.unreadable('get', err);
      destroyed = isDestroyed === true;
      join();
    });
    this.inner.get(sid, (err: unknown, value?: SessionData | null) => {
      if (err) failure ??= err;
      session = value;
      join();
    });
  }

  set(sid: string, session: SessionData, callback?: (err?: unknown) => void): void {
    this.guardedWrite('set', sid, (cb) => this.inner.set(sid, session, cb), callback);
  }

  destroy(sid: string, callback?: (err?: unknown) => void): void {
    // The tombstone goes first, so that no write can land between the delete and the tombstone.
    settle(
      () => this.tombstones.add(tombstoneKey(sid), this.ttlMs),
      this.timeoutMs,
      (tombstoneErr) => {
        if (tombstoneErr) {
          debug('could not record the tombstone (%s); destroying the session anyway', describeFailure(tombstoneErr));
          warnOnce(
            'EPL_TOMBSTONE_WRITE_FAILED',
            'express-polar-logout: guardSessionStore deleted a session but could not record its tombstone (the ' +
              'tombstone store failed or did not answer within tombstoneTimeoutMs), so a request in flight may ' +
              'write it back. Check the tombstone store (Redis).',
          );
        }
        // Destroyed even when the tombstone failed (the guard never keeps a session alive), but reported with
        // an error of its own, because a racing request could then bring it back.
        this.inner.destroy(sid, (err?: unknown) =>
          callback?.(err ?? (tombstoneErr ? new TombstoneWriteError() : undefined)),
        );
      },
    );
  }

  regenerate(req: Request, callback: (err?: unknown) => void): void {
    // express-session's own implementation, run against this store: destroy() here, generate() set on this.
    this.inner.regenerate.call(this, req, callback);
  }

  load(sid: string, callback: (err: unknown, session?: SessionData) => void): void {
    this.inner.load.call(this, sid, callback);
  }

  createSession(req: Request, session: SessionData): ReturnType<Store['createSession']> {
    return this.inner.createSession.call(this, req, session);
  }
}

/**
 * Wraps an express-session store so that a session destroyed through it (logout, regenerate) cannot be
 * written back by a request that was in flight. Give the wrapped store to express-session:
 *
 *   app.use(session({ store: guardSessionStore(new RedisStore({ client })), ... }))
 */
export function guardSessionStore(store: Store, options: SessionStoreGuardOptions = {}): Store {
  if (!isSessionStore(store)) {
    throw invalidOption('store', 'must be an express-session store (get, set, destroy; extends session.Store).');
  }
  if (!isObject(options)) {
    throw invalidOption('options', 'must be an object, as in guardSessionStore(store, { ttlMs }).');
  }
  rejectUnknownKeys(options, GUARD_KEYS, 'guardSessionStore');
  const ttlMs = integerInRange(options.ttlMs ?? DEFAULT_TTL_MS, 'ttlMs', 1, MAX_TTL_MS, 'ms');
  const tombstones = options.tombstones ?? createMemoryTombstones();
  if (!isObject(tombstones) || typeof tombstones.add !== 'function' || typeof tombstones.has !== 'function') {
    throw invalidOption('tombstones', 'must have add(key, ttlMs) and has(key), like createRedisTombstones() returns.');
  }
  const onRefused = optionalFunction(options.onRefused, 'onRefused');
  const timeoutMs = integerInRange(
    options.tombstoneTimeoutMs ?? DEFAULT_TOMBSTONE_TIMEOUT_MS,
    'tombstoneTimeoutMs',
    1,
    MAX_TOMBSTONE_TIMEOUT_MS,
    'ms',
  );
  // A look-alike on purpose: express-session only calls a store's methods and never checks `instanceof Store`;
  // extending its Store class would make express-session (a peer dependency) a runtime import of this module.
  // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment -- see the comment above
  return new GuardedStore(store, ttlMs, tombstones, onRefused, timeoutMs);
}
