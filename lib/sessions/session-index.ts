/**
 * What the registry's store asks of its index: in Redis (every instance sees every session) or in memory (one
 * process). Both implement the same rules; each operation on a user's entries is atomic (a Lua script, or one
 * synchronous step in memory), so concurrent logins and logouts never lose or resurrect an entry.
 */
import type { SessionTombstones } from '../tombstones';
import type { SessionRef } from './keys';

/**
 * What a read or a write of an indexed session may do. `destroyed`: its tombstone is there (it was ended).
 * `ended`: its request began before the user's latest "not before" mark (a logout everywhere) and it is not the
 * session that mark spared. `ending`: the same, for a session whose entry is still in the index: the logout that
 * set the mark has it and is ending it (reads its tokens, revokes them, destroys it), so it is refused but left
 * in the store for that logout; destroyed here first, its tokens would never be revoked.
 */
export type Verdict = 'ok' | 'destroyed' | 'ended' | 'ending';

/** One entry of a user's index. */
export interface IndexEntry {
  handle: string;
  sid: string;
  createdAt: number;
  lastSeenAt: number;
  userAgent: string | undefined;
}

/** Times of one session, in ms since the epoch (each instance's clock: keep them in sync, as NTP does). */
export interface SessionTimes {
  now: number;
  /** When the index may forget the session: its expiry in the store, plus a margin. */
  expiresAt: number;
}

export interface SessionIndex extends SessionTombstones {
  /**
   * True when every call settles or fails on its own within the limits the store would wait (the Redis index:
   * every command is bounded by the adapter), so that the store starts no timer of its own on a request's path.
   */
  readonly bounded?: boolean;
  /**
   * A read of an indexed session: its verdict; on `ok`, lastSeenAt and the expiry are refreshed (at most once a
   * minute), and a session the index does not know (stored before the registry was installed) is adopted.
   */
  check(ref: SessionRef, times: SessionTimes, userAgent: string | undefined): Verdict | Promise<Verdict>;
  /**
   * A read that writes nothing and needs no session data (so it can be sent with the store's read): the verdict,
   * or 'unknown' when check() must run (a session the index does not know, or whose lastSeenAt is due). Only
   * indexes that cost a round trip have it.
   */
  peek?(ref: SessionRef, now: number): Promise<Verdict | 'unknown'>;
  /** Before a write of an indexed session: its verdict; on `ok` the entry is written (created or refreshed). */
  admit(
    ref: SessionRef,
    times: SessionTimes & { createdAt: number },
    userAgent: string | undefined,
  ): Verdict | Promise<Verdict>;
  /** After the write: whether it was ended meanwhile (by another instance). */
  recheck(ref: SessionRef): Verdict | Promise<Verdict>;
  /** Sets the user's "not before" mark (sparing `except`), and returns the entries to end. */
  mark(user: string, now: number, except: string | undefined, ttlMs: number): IndexEntry[] | Promise<IndexEntry[]>;
  /** The user's entries, expired ones pruned. */
  entries(user: string, now: number): IndexEntry[] | Promise<IndexEntry[]>;
  /**
   * Removes an entry; with `tombstoneTtlMs`, records the session's tombstone in the same step. True when this call
   * removed it: of two logouts ending the same session at once, only that one ends it (revokes, counts).
   */
  drop(ref: SessionRef, now: number, tombstoneTtlMs?: number): boolean | Promise<boolean>;
  close(): Promise<void>;
}

/** How often lastSeenAt is written: at most once a minute per session, never on every request. */
export const SEEN_EVERY_MS = 60_000;
/** The index keeps an entry this long after the session's expiry as last seen (the store may extend it meanwhile). */
export const EXPIRY_MARGIN_MS = 2 * SEEN_EVERY_MS;
/**
 * Writes (a login, a change of the session) wait at least this long for the index: refusing one fails the request,
 * so a loaded Redis must not turn into failed logins. Reads fail open and keep the shorter `timeoutMs`.
 */
export const WRITE_WAIT_MS = 1000;
/** The longest User-Agent kept. */
export const MAX_USER_AGENT = 512;
