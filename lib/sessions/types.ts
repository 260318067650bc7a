/**
 * The public face of the session registry (log out everywhere). The names are the contract.
 */
import type { Store } from 'express-session';
import type { RevocationQueue, RevocationResult, SharedRedis, TokenPair } from '../types';

/** The stored session data as the app's store keeps it (express-session's SessionData, loosely). */
export type StoredSession = Record<string, unknown>;

/** Options of createSessionRegistry(). */
export interface SessionRegistryOptions {
  /** The app's express-session store, any kind (connect-redis, MemoryStore, …). Required. */
  store: Store;
  /**
   * Where the per-user index, the tombstones and the "not before" marks live: a `redis://` URL or an ioredis or
   * node-redis client (it can be the one your session store uses). Omitted: this process's memory, which works
   * for one process only.
   */
  redis?: SharedRedis;
  /**
   * Who a stored session belongs to: a non-empty string or a finite number; anything else (undefined) means the
   * session is anonymous and not indexed. Called with the session data on every write and on reads. Required.
   */
  userIdOf: (data: StoredSession) => unknown;
  /**
   * Reads the Polar tokens of another session from its stored data, for `scope: 'others' | 'everywhere'` and
   * `logoutUser()`. Default: `data.accessToken` and `data.refreshToken` (what polarLogout's default getTokens reads).
   */
  tokensOf?: (data: StoredSession) => TokenPair;
  /**
   * Where the tokens of sessions the "not before" mark refuses go, to be revoked: a session the index never listed
   * (a login whose request began before a logout everywhere) is refused and destroyed when it is read or written,
   * and its tokens, which no logout has, are queued here. Without it they stay valid at Polar (reported once as
   * `EPL_SESSIONS_TOKENS_LEFT`).
   */
  outbox?: RevocationQueue;
  /** Key prefix in Redis. Default `'{polar-logout}'`; on a Redis Cluster it must hold a hash tag. */
  prefix?: string;
  /** How long an ended session id stays refused, in ms. Longer than your slowest request. Default 600000. */
  tombstoneTtlMs?: number;
  /**
   * How long a user's "not before" mark is kept, in ms: a session created before a logout everywhere is refused
   * for this long even if the index missed it. Make it at least your sessions' longest life. Default 30 days.
   */
  notBeforeTtlMs?: number;
  /** The life of a session whose cookie has no expiry (a browser-session cookie), for the index. Default 1 day. */
  defaultSessionTtlMs?: number;
  /**
   * Longest wait for the index when a session is read, in ms (a read without an answer fails open). Default 300.
   * Writes wait at least 1000 ms: refusing one fails the request (a login).
   */
  timeoutMs?: number;
  /**
   * Seals the session ids the Redis index keeps (AES-256-GCM, bound to each entry), so that reading Redis does not
   * give away sessions: a string of at least 32 random characters or a Buffer of 32 bytes, or a list of them, the
   * current key first, then older ones (a rotation keeps older entries readable). Default: ids kept in clear, as
   * the session store itself keeps them. Only with `redis`.
   */
  encryptionKey?: string | Uint8Array | ReadonlyArray<string | Uint8Array>;
  /** Called when a write to an ended session is refused, or an ended session is found in the store. Errors ignored. */
  onRefused?: (info: { operation: 'set' | 'touch' | 'get'; sessionIdHash: string | undefined }) => void;
}

/** One session of a user, as list() returns it: nothing secret, no session id. */
export interface SessionInfo {
  /** An opaque handle for logoutSession() and `except`: not the session id, and no way to find it. */
  id: string;
  /** When the request that signed the session in began. */
  createdAt: Date;
  /** Last request seen with this session, to the minute (updated at most once a minute). */
  lastSeenAt: Date;
  /** The User-Agent of the request that signed the session in (at most 512 characters), if it had one. */
  userAgent: string | undefined;
}

/** What ending sessions did. Token counts: every token the ended sessions held, by what happened to it. */
export interface SessionsLogoutSummary {
  /** Sessions ended (removed from the store, tombstoned). */
  sessions: number;
  /** Tokens Polar confirmed revoked. */
  revoked: number;
  /** Tokens that could not be revoked now and were handed to the outbox. */
  queued: number;
  /** Tokens that could not be revoked and are not queued (no outbox, a refusal that will not pass, a full outbox). */
  failed: number;
}

/** What can revoke tokens: createPolarRevoker()'s result. */
export interface SessionRevoker {
  revoke(tokens: TokenPair, options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<RevocationResult>;
}

/** Options of logoutUser() and logoutSession(). */
export interface EndSessionsOptions {
  /** Revokes the ended sessions' tokens at Polar. At least one of `revoker` and `outbox` is required. */
  revoker?: SessionRevoker;
  /** Takes the tokens that cannot be revoked now (or all of them, without a revoker). */
  outbox?: RevocationQueue;
  /** logoutUser only: a session handle (from list() or idOf()) to keep. */
  except?: string;
  /** Longest wait for Polar, in ms (what is not revoked by then is queued). Default: the revoker's timeoutMs. */
  timeoutMs?: number;
  /** Cancels the wait for Polar; the sessions are ended all the same. */
  signal?: AbortSignal;
}

export interface SessionRegistry {
  /** The app's store, wrapped: give it to express-session. Keeps ended sessions ended and keeps the index. */
  readonly store: Store;
  /** The user's live sessions, most recently seen first. */
  list(userId: string | number): Promise<SessionInfo[]>;
  /** The handle of the request's own session (as list() names it), or undefined when it has none. */
  idOf(req: { sessionID?: unknown }): string | undefined;
  /** Ends every session of the user (but `except`) on every instance sharing the Redis, and revokes their tokens. */
  logoutUser(userId: string | number, options: EndSessionsOptions): Promise<SessionsLogoutSummary>;
  /** Ends one session of the user ("sign out that device") and revokes its tokens. `sessions` is 0 or 1. */
  logoutSession(userId: string | number, id: string, options: EndSessionsOptions): Promise<SessionsLogoutSummary>;
  /** Closes the Redis connection the registry opened for a URL; a client you passed stays open. */
  close(): Promise<void>;
}
