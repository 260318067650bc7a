/**
 * Where guardSessionStore() remembers destroyed sessions ("tombstones"): in this process's memory, or in Redis
 * so that every process sharing the session store sees every logout. Keys are hashes of session ids, made by
 * the guard; these stores never see a raw id.
 */
import { performance } from 'node:perf_hooks';
import createDebug from 'debug';
import { invalidOption } from './errors';
import { COMMAND_TIMEOUT_MS, createRedisAdapter, DEFAULT_PREFIX } from './redis';
import { integerInRange, isObject, rejectUnknownKeys } from './validate';

// The guard's namespace: the tombstones are part of it for whoever turns on DEBUG.
const debug = createDebug('express-polar-logout:session-guard');

const DEFAULT_MAX_ENTRIES = 100_000;
const REDIS_KEYS = ['client', 'prefix', 'commandTimeoutMs'] as const;

/** Where the guard remembers destroyed sessions. Keys are SHA-256 hashes of session ids, never raw ids. */
export interface SessionTombstones {
  /** Remembers `key` for `ttlMs`. */
  add(key: string, ttlMs: number): void | Promise<void>;
  /** Whether `key` was added less than its ttl ago. */
  has(key: string): boolean | Promise<boolean>;
}

/** Options of createMemoryTombstones(). */
export interface MemoryTombstonesOptions {
  /**
   * Most tombstones kept; the oldest are dropped beyond it, so that a flood of logouts cannot exhaust memory
   * (every logout, even without a stored session, records one). Default 100000 (about 15 MB).
   */
  maxEntries?: number;
}

/**
 * A connected Redis client: ioredis 5 or 6 (single node, Sentinel, Cluster) or node-redis 5 or 6 (createClient,
 * createCluster). It can be the one your session store uses.
 */
export type RedisTombstoneClient =
  | { call(command: string, ...args: Array<string | number>): Promise<unknown> }
  | { sendCommand(...args: never[]): Promise<unknown> };

/** Options of createRedisTombstones(). */
export interface RedisTombstonesOptions {
  /** A connected ioredis or node-redis client; it can be the one your session store uses. */
  client: RedisTombstoneClient;
  /**
   * Key prefix. Default `'{polar-logout}:tombstone:'`. On a Redis Cluster it must contain a hash tag (`{...}`);
   * each tombstone is one key, the tag keeps them beside the package's other keys.
   */
  prefix?: string;
  /** Time bound of each Redis command in ms: a dead Redis never holds a request longer. Default 1000. */
  commandTimeoutMs?: number;
}

/** Tombstones in this process's memory: a Map in insertion order, swept from its oldest end. */
export function createMemoryTombstones(options: MemoryTombstonesOptions = {}): SessionTombstones {
  rejectUnknownKeys(options, ['maxEntries'], 'createMemoryTombstones');
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw invalidOption('maxEntries', 'must be a positive integer.');
  }
  const expiries = new Map<string, number>();
  let warned = false;

  function sweep(now: number): void {
    for (const [key, expiresAt] of expiries) {
      if (expiresAt > now) break;
      expiries.delete(key);
    }
  }

  return {
    add(key, ttlMs) {
      const now = performance.now();
      expiries.delete(key); // re-adding moves it to the young end
      expiries.set(key, now + ttlMs);
      sweep(now);
      while (expiries.size > maxEntries) {
        expiries.delete(expiries.keys().next().value as string);
        if (!warned) {
          warned = true;
          debug('more than %d tombstones: dropping the oldest (raise maxEntries or lower ttlMs)', maxEntries);
        }
      }
    },
    has(key) {
      const expiresAt = expiries.get(key);
      if (expiresAt === undefined) return false;
      if (expiresAt > performance.now()) return true;
      expiries.delete(key);
      return false;
    },
  };
}

/** Tombstones in Redis (`SET key 1 PX ttl`, `EXISTS key`), shared by every process that uses the same Redis. */
export function createRedisTombstones(options: RedisTombstonesOptions): SessionTombstones {
  if (!isObject(options)) {
    throw invalidOption('options', 'must be an object, as in createRedisTombstones({ client }).');
  }
  rejectUnknownKeys(options, REDIS_KEYS, 'createRedisTombstones');
  if (typeof options.client === 'string') {
    throw invalidOption(
      'client',
      'must be a connected ioredis or node-redis client, not a URL (pass the client your session store uses).',
    );
  }
  // The adapter checks the client (ioredis or node-redis, single node or cluster) and the prefix (a hash tag on
  // a cluster), and bounds every command in time.
  const redis = createRedisAdapter(options.client, {
    option: 'client',
    prefix: options.prefix ?? `${DEFAULT_PREFIX}:tombstone:`,
    prefixOption: 'prefix',
    feature: 'createRedisTombstones()',
  });
  const timeoutMs = integerInRange(options.commandTimeoutMs ?? COMMAND_TIMEOUT_MS, 'commandTimeoutMs', 1, 60_000, 'ms');
  const prefix = redis.prefix;

  return {
    async add(key, ttlMs) {
      await redis.setPx(prefix + key, '1', ttlMs, { timeoutMs });
    },
    async has(key) {
      return redis.exists(prefix + key, { timeoutMs });
    },
  };
}
