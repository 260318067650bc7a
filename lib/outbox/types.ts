import type { PolarClientOptions, RevocationErrorCode, RevocationQueue, TokenTypeHint } from '../types';

/**
 * An ioredis client (5 or 6: `new Redis()`, a Sentinel client, `new Redis.Cluster()`) or a node-redis client
 * (5 or 6: `createClient()`, `createCluster()`). The outbox never closes it; it opens what it needs beside it
 * (a blocking connection for the worker, and with ioredis a fail-fast one for enqueueing).
 */
export interface OutboxRedisClient {
  duplicate(...args: never[]): unknown;
  on(event: string, listener: (...args: never[]) => void): unknown;
}

/** ioredis connection options (`{ host, port, password, tls, ... }`). */
export interface OutboxRedisConnectionOptions {
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  db?: number;
  tls?: unknown;
  [option: string]: unknown;
}

/** Where queued revocations live: a `redis://` or `rediss://` URL, an ioredis or node-redis client, or ioredis options. */
export type OutboxRedis = string | OutboxRedisClient | OutboxRedisConnectionOptions;

/** What `health()` says about the outbox's worker and its Redis. */
export interface OutboxHealth {
  /** False when this process runs a worker that made no progress for `stuckAfterMs`, or Redis is not reachable. */
  ok: boolean;
  /** Whether a worker runs in this process. */
  worker: boolean;
  /**
   * Last time the worker made progress: settled or retried a job, or found nothing due while it was idle (an
   * idle heartbeat every few seconds: no job waiting, no retry overdue by more than 15 s). Undefined before the first.
   */
  lastProgressAt: Date | undefined;
  /** Whether this process can reach Redis now (memory outbox: always true). */
  redisReachable: boolean;
}

/** How retries are spaced: exponential from `initialDelayMs`, ±25 % jitter, capped at `maxDelayMs`. */
export interface OutboxBackoffOptions {
  /** First retry delay in ms. Default 1000. */
  initialDelayMs?: number;
  /** Longest delay between two attempts in ms (a Polar `Retry-After` may ask for longer). Default 300000 (5 min). */
  maxDelayMs?: number;
}

/** Why a queued token was refused, or the last failure before it was abandoned. */
export type OutboxErrorCode =
  | RevocationErrorCode
  /**
   * No key of this worker's `encryptionKey` (or `clientSecret`) opens the queued token: it was sealed under a key
   * this worker does not list. The job is kept for a worker that has the key; it never settles `rejected` for this.
   */
  | 'UNREADABLE_JOB';

/** The end of one queued token, handed to `onSettled`. Nothing secret: no token, no session id. */
export interface OutboxSettledEvent {
  tokenType: TokenTypeHint;
  /**
   * `revoked`: Polar confirmed. `rejected`: Polar refused the token itself for good (400, e.g. `invalid_grant`).
   * `abandoned`: an access token older than `maxAgeMs` that could not be revoked (it has expired at Polar by
   * then). Refresh tokens never expire at Polar and are never abandoned. A fault of this worker's configuration
   * (`INVALID_CLIENT`, `UNREADABLE_JOB`) never settles a job: it is kept and retried, and a warning says what to fix.
   */
  outcome: 'revoked' | 'rejected' | 'abandoned';
  /** Calls the outbox made to Polar for this token (the logout's own calls are not counted). */
  attempts: number;
  /** When the token was queued (ISO 8601). */
  queuedAt: string;
  /** When it settled (ISO 8601). */
  settledAt: string;
  /** The logout's `sessionIdHash`, to correlate with its LogoutEvent. */
  sessionIdHash: string | undefined;
  /** For `rejected`, why; for `abandoned`, the last failure (absent when no attempt was made). */
  error?: { code: OutboxErrorCode; httpStatus?: number };
}

/** One key: at least 32 characters of random text, or at least 32 random bytes. */
export type OutboxEncryptionKey = string | Uint8Array;

/** Options of createRevocationOutbox(). */
export interface RevocationOutboxOptions extends PolarClientOptions {
  /** Jobs live in this Redis (BullMQ) and survive restarts. Without it the outbox is in memory: lost on restart. */
  redis?: OutboxRedis;
  /** Run a worker in this process. Default `true`; `false` (Redis only) for processes that only enqueue. */
  worker?: boolean;
  /** Revocations in flight per worker. Default 10. */
  concurrency?: number;
  /** How retries are spaced. A `Retry-After` from Polar is honoured. */
  backoff?: OutboxBackoffOptions;
  /**
   * Give a queued access token up (`abandoned`) after this many ms: by then it has expired at Polar (10 days for
   * the authorization-code grant). Refresh tokens never expire at Polar: they are retried until revoked, whatever
   * this says. Default 10 days.
   */
  maxAgeMs?: number;
  /** Budget in ms for one call to Polar. Default 5000. It also sizes the worker's lock (see the README). */
  timeoutMs?: number;
  /** Audit hook for each queued token's end; awaited at most `timeoutMs`; its errors go to `debug` only. */
  onSettled?: (event: OutboxSettledEvent) => void | Promise<void>;
  /**
   * Prefix of every Redis key of the outbox. Default `'{polar-logout}'`. On a Redis Cluster it must contain a
   * hash tag (`{...}`) so that BullMQ's multi-key scripts stay in one slot.
   */
  prefix?: string;
  /**
   * Key material (each at least 32 bytes or characters) for encrypting queued tokens. Default: derived from
   * `clientSecret`. A list is a keyring, `[currentKey, ...olderKeys]`: tokens are sealed under the first, and
   * opened with whichever key sealed them, so workers can drain jobs queued before a rotation.
   */
  encryptionKey?: OutboxEncryptionKey | readonly OutboxEncryptionKey[];
}

/** Jobs not settled yet. */
export interface OutboxCounts {
  /** Due now, waiting for a free worker slot. */
  waiting: number;
  /** Waiting for their next attempt (backoff). */
  delayed: number;
  /** Being revoked right now. */
  active: number;
}

/** What createRevocationOutbox() returns: pass it to polarLogout({ outbox }). */
export interface RevocationOutbox extends RevocationQueue {
  /** `'redis'` when jobs live in Redis, `'memory'` when they live in this process only. */
  readonly mode: 'redis' | 'memory';
  /**
   * Queues a token for revocation. Resolves once the job is stored; the same token queued twice is one job.
   * Rejects with a RevocationOutboxError (`OUTBOX_UNAVAILABLE`, `OUTBOX_CLOSED`, `INVALID_TOKEN`).
   */
  enqueue(token: string, hint: TokenTypeHint, context?: { sessionIdHash?: string }): Promise<void>;
  /** Starts a worker in this process if none runs (for `worker: false`); resolves once it takes jobs. */
  runWorker(): Promise<void>;
  /** Jobs not settled yet (for health checks and tests). */
  counts(): Promise<OutboxCounts>;
  /**
   * Liveness: `ok` is false when this process's worker made no progress for `stuckAfterMs` (default 60000)
   * while work was due, or Redis cannot be reached. Never rejects. The worker bin exits non-zero on it.
   */
  health(options?: { stuckAfterMs?: number }): Promise<OutboxHealth>;
  /** Stops the worker (waiting for calls in flight) and closes connections. Memory jobs left are lost. */
  close(): Promise<void>;
}
