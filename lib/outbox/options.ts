/**
 * createRevocationOutbox() options: the client options are checked exactly as polarLogout() checks them,
 * then the outbox's own. Messages name the option; none echoes a secret, a key or a Redis URL.
 */
import { invalidOption } from '../errors';
import { CLIENT_OPTION_KEYS, resolveClientConfig, type RevokerConfig } from '../options';
import { createRedisAdapter, type RedisAdapter } from '../redis';
import type { RevocationOutboxOptions } from './types';
import { isPlainObject, optionalFunction, optionalInteger, rejectUnknownKeys, requireObject } from '../validate';

const FACTORY = 'createRevocationOutbox';
const OUTBOX_KEYS = [
  ...CLIENT_OPTION_KEYS,
  'timeoutMs',
  'redis',
  'worker',
  'concurrency',
  'backoff',
  'maxAgeMs',
  'onSettled',
  'encryptionKey',
  'prefix',
] as const;

export const DEFAULT_MAX_AGE_MS = 10 * 24 * 60 * 60 * 1000;
const MAX_MAX_AGE_MS = 366 * 24 * 60 * 60 * 1000;
const MIN_KEY_LENGTH = 32;

export interface OutboxConfig {
  /** One attempt per job run: the outbox schedules its own retries. */
  revoker: RevokerConfig;
  redis: RedisAdapter | undefined;
  worker: boolean;
  concurrency: number;
  backoff: { initialDelayMs: number; maxDelayMs: number };
  maxAgeMs: number;
  timeoutMs: number;
  onSettled: RevocationOutboxOptions['onSettled'];
  /** Key material for HKDF, current first: encryptionKey's keys, or the client secret. */
  keyMaterials: Buffer[];
  clientId: string;
}

/** The Redis adapter, built and checked here: a wrong client, a missing peer or a bad prefix fails now. */
function resolveRedis(value: unknown, prefix: unknown): RedisAdapter | undefined {
  if (value === undefined) {
    if (prefix !== undefined) throw invalidOption('prefix', 'only applies together with `redis`.');
    return undefined;
  }
  return createRedisAdapter(value, {
    option: 'redis',
    prefix,
    feature: 'the Redis outbox',
    peers: ['bullmq'],
    acceptOptions: true,
  });
}

function resolveBackoff(value: unknown): OutboxConfig['backoff'] {
  if (value === undefined) return { initialDelayMs: 1000, maxDelayMs: 300_000 };
  if (!isPlainObject(value))
    throw invalidOption('backoff', 'must be an object such as { initialDelayMs: 1000, maxDelayMs: 300000 }.');
  for (const key of Object.keys(value)) {
    if (key !== 'initialDelayMs' && key !== 'maxDelayMs') {
      throw invalidOption(`backoff.${key}`, 'is not a backoff option. Known: initialDelayMs, maxDelayMs.');
    }
  }
  const initialDelayMs = optionalInteger(value.initialDelayMs, 'backoff.initialDelayMs', 1000, 1, 3_600_000);
  const maxDelayMs = optionalInteger(
    value.maxDelayMs,
    'backoff.maxDelayMs',
    Math.max(300_000, initialDelayMs),
    1,
    86_400_000,
  );
  if (maxDelayMs < initialDelayMs) {
    throw invalidOption('backoff.maxDelayMs', 'must be at least backoff.initialDelayMs.');
  }
  return { initialDelayMs, maxDelayMs };
}

export function resolveKey(value: unknown, option: string): Buffer {
  if (typeof value === 'string') {
    if (value.length < MIN_KEY_LENGTH) {
      throw invalidOption(
        option,
        `must be at least ${MIN_KEY_LENGTH} characters of random text (e.g. openssl rand -base64 32).`,
      );
    }
    return Buffer.from(value, 'utf8');
  }
  if (value instanceof Uint8Array) {
    if (value.byteLength < MIN_KEY_LENGTH) {
      throw invalidOption(option, `must be at least ${MIN_KEY_LENGTH} random bytes.`);
    }
    return Buffer.from(value);
  }
  throw invalidOption(
    option,
    `must be a string of at least ${MIN_KEY_LENGTH} characters or a Buffer of at least ${MIN_KEY_LENGTH} bytes` +
      (option === 'encryptionKey' ? ', or an array of them (the current key first, then older ones).' : '.'),
  );
}

/** The keyring's material, current first: `encryptionKey` (one key or a list), or the client secret. */
function resolveKeyMaterials(value: unknown, clientSecret: string): Buffer[] {
  if (value === undefined) return [Buffer.from(clientSecret, 'utf8')];
  if (!Array.isArray(value)) return [resolveKey(value, 'encryptionKey')];
  if (value.length === 0) {
    throw invalidOption('encryptionKey', 'must list at least one key: [currentKey, ...olderKeys].');
  }
  return value.map((key: unknown, index) => resolveKey(key, `encryptionKey[${index}]`));
}

export function resolveOutboxConfig(options: RevocationOutboxOptions): OutboxConfig {
  requireObject(options, `${FACTORY}({ clientId, clientSecret, redis })`);
  if ((options as { retries?: unknown }).retries !== undefined) {
    throw invalidOption(
      'retries',
      `is not an option of ${FACTORY}(): the outbox makes one call per attempt and spaces attempts with \`backoff\`.`,
    );
  }
  rejectUnknownKeys(options, OUTBOX_KEYS, FACTORY);
  const client = resolveClientConfig(options);
  const timeoutMs = optionalInteger(options.timeoutMs, 'timeoutMs', 5000, 1, 120_000);
  const redis = resolveRedis(options.redis, options.prefix);

  const worker = options.worker ?? true;
  if (typeof worker !== 'boolean') throw invalidOption('worker', 'must be true or false.');
  if (!worker && !redis) {
    throw invalidOption(
      'worker',
      'can only be false together with `redis`: an in-memory outbox is drained by its own process.',
    );
  }
  const onSettled = optionalFunction(options.onSettled, 'onSettled');

  return {
    // The outbox's Redis also shares the rate budget with every process on it (logouts included, when they are
    // given the same Redis).
    revoker: {
      ...client,
      timeoutMs,
      retries: 0,
      rateRedis: client.rateLimit ? redis : undefined,
      ownsRateRedis: false,
    },
    redis,
    worker,
    concurrency: optionalInteger(options.concurrency, 'concurrency', 10, 1, 1000),
    backoff: resolveBackoff(options.backoff),
    maxAgeMs: optionalInteger(options.maxAgeMs, 'maxAgeMs', DEFAULT_MAX_AGE_MS, 100, MAX_MAX_AGE_MS),
    timeoutMs,
    onSettled,
    keyMaterials: resolveKeyMaterials(options.encryptionKey, client.clientSecret),
    clientId: client.clientId,
  };
}
