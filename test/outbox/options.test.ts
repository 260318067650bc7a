/**
 * createRevocationOutbox() checks its options at construction, like polarLogout(): the client options with
 * the very same rules, then its own, with messages that name the option and never echo a secret.
 */
import { createRevocationOutbox, polarLogout, PolarLogoutError, type RevocationOutboxOptions } from '../../lib';
import { deriveKeyring, jobIdOf, seal, unseal } from '../../lib/outbox/crypto';
import { resolveOutboxConfig } from '../../lib/outbox/options';

const SECRET = 'polar_cs_options_test_0123456789abcdef';
const base = { clientId: 'polar_ci_options', clientSecret: SECRET, baseUrl: 'http://127.0.0.1:9' };

function error(options: unknown): PolarLogoutError {
  try {
    createRevocationOutbox(options as RevocationOutboxOptions);
  } catch (err) {
    expect(err).toBeInstanceOf(PolarLogoutError);
    return err as PolarLogoutError;
  }
  throw new Error('expected createRevocationOutbox() to throw');
}

describe('createRevocationOutbox() options', () => {
  it.each<[string, Record<string, unknown>, string, RegExp]>([
    ['missing clientId', { clientId: undefined }, 'clientId', /is required/],
    ['empty clientSecret', { clientSecret: ' ' }, 'clientSecret', /is required/],
    ['http baseUrl off loopback', { baseUrl: 'http://polar.example' }, 'baseUrl', /must use https/],
    ['bad server', { baseUrl: undefined, server: 'staging' }, 'server', /'production', 'sandbox'/],
    ['bad clientAuth', { clientAuth: 'private_key_jwt' }, 'clientAuth', /client_secret_post/],
    [
      'unknown option',
      { redisUrl: 'redis://x' },
      'redisUrl',
      /not an option of createRevocationOutbox\(\)\. Known options: .*redis/,
    ],
    ['retries', { retries: 3 }, 'retries', /spaces attempts with `backoff`/],
    ['timeoutMs 0', { timeoutMs: 0 }, 'timeoutMs', /integer from 1 to 120000/],
    ['redis not a URL', { redis: 'localhost:6379' }, 'redis', /redis:\/\/ or rediss:\/\/ URL/],
    ['redis http URL', { redis: 'http://127.0.0.1:6379' }, 'redis', /got a http: URL/],
    ['redis number', { redis: 6379 }, 'redis', /an ioredis client .*a node-redis client .*; got number/],
    ['redis keyPrefix', { redis: { host: '127.0.0.1', keyPrefix: 'app:' } }, 'redis', /keyPrefix/],
    [
      'redis client with keyPrefix',
      {
        redis: {
          status: 'ready',
          call: () => undefined,
          defineCommand: () => undefined,
          duplicate: () => undefined,
          options: { keyPrefix: 'a:' },
        },
      },
      'redis',
      /keyPrefix/,
    ],
    ['worker not boolean', { worker: 'no' }, 'worker', /true or false/],
    ['worker false in memory', { worker: false }, 'worker', /only be false together with `redis`/],
    ['concurrency 0', { concurrency: 0 }, 'concurrency', /integer from 1 to 1000/],
    ['concurrency 2.5', { concurrency: 2.5 }, 'concurrency', /integer/],
    ['backoff number', { backoff: 1000 }, 'backoff', /must be an object/],
    ['backoff unknown key', { backoff: { factor: 3 } }, 'backoff.factor', /Known: initialDelayMs, maxDelayMs/],
    ['backoff initial 0', { backoff: { initialDelayMs: 0 } }, 'backoff.initialDelayMs', /integer/],
    [
      'backoff max < initial',
      { backoff: { initialDelayMs: 5000, maxDelayMs: 1000 } },
      'backoff.maxDelayMs',
      /at least backoff.initialDelayMs/,
    ],
    ['maxAgeMs negative', { maxAgeMs: -1 }, 'maxAgeMs', /integer from 100/],
    ['maxAgeMs string', { maxAgeMs: '10d' }, 'maxAgeMs', /integer/],
    ['onSettled not a function', { onSettled: 'audit' }, 'onSettled', /must be a function/],
    ['encryptionKey short string', { encryptionKey: 'short-key' }, 'encryptionKey', /at least 32 characters/],
    ['encryptionKey short buffer', { encryptionKey: Buffer.alloc(16) }, 'encryptionKey', /at least 32 random bytes/],
    ['encryptionKey number', { encryptionKey: 42 }, 'encryptionKey', /string of at least 32 characters or a Buffer/],
    ['encryptionKey empty list', { encryptionKey: [] }, 'encryptionKey', /at least one key: \[currentKey/],
    ['encryptionKey short in list', { encryptionKey: ['short-key'] }, 'encryptionKey[0]', /at least 32 characters/],
    [
      'encryptionKey short older key',
      { encryptionKey: ['k'.repeat(32), Buffer.alloc(8)] },
      'encryptionKey[1]',
      /at least 32 random bytes/,
    ],
    ['encryptionKey number in list', { encryptionKey: ['k'.repeat(32), 7] }, 'encryptionKey[1]', /or a Buffer/],
  ])('%s', (_name, override, option, message) => {
    const err = error({ ...base, ...override });
    expect(err.code).toBe('INVALID_OPTION');
    expect(err.message).toContain(`option \`${option}\``);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain(SECRET);
  });

  it('refuses a non-object', () => {
    expect(error(undefined).message).toContain('option `options`');
    expect(error('redis://x').message).toContain('option `options`');
  });

  it('validates the client options exactly as polarLogout() does', () => {
    const cases: Record<string, unknown>[] = [
      { clientId: '' },
      { clientSecret: 42 },
      { baseUrl: 'https://user:pw@api.polar.sh' },
      { baseUrl: 'https://api.polar.sh/?x=1' },
      { baseUrl: 'ftp://127.0.0.1' },
      { server: 'prod', baseUrl: undefined },
    ];
    for (const override of cases) {
      let expected: unknown;
      try {
        polarLogout({ ...base, ...override } as never);
      } catch (err) {
        expected = (err as Error).message;
      }
      expect(expected).toBeDefined();
      expect(error({ ...base, ...override }).message).toBe(expected);
    }
  });

  it('never echoes a Redis URL (it may hold a password)', () => {
    const err = error({ ...base, redis: 'http://user:hunter2@10.0.0.1:6379' });
    expect(err.message).not.toContain('hunter2');
    expect(err.message).not.toContain('10.0.0.1');
  });

  it('accepts a full set of valid options', async () => {
    const outbox = createRevocationOutbox({
      ...base,
      clientAuth: 'client_secret_basic',
      timeoutMs: 2000,
      concurrency: 50,
      backoff: { initialDelayMs: 500, maxDelayMs: 60_000 },
      maxAgeMs: 3_600_000,
      onSettled: () => undefined,
      encryptionKey: [Buffer.alloc(32, 7), 'an-older-key-of-at-least-32-characters'],
    });
    expect(outbox.mode).toBe('memory');
    expect(await outbox.counts()).toEqual({ waiting: 0, delayed: 0, active: 0 });
    await outbox.close();
  });

  it('never echoes an encryption key', () => {
    const key = 'short-but-secret-key-value';
    expect(error({ ...base, encryptionKey: key }).message).not.toContain(key);
    expect(error({ ...base, encryptionKey: ['k'.repeat(32), key] }).message).not.toContain(key);
  });

  it('accepts a keyring; the current key is the first', () => {
    const ring = deriveKeyring(
      resolveOutboxConfig({ ...base, encryptionKey: ['n'.repeat(32), 'o'.repeat(32)] }).keyMaterials,
    );
    expect(ring.all).toHaveLength(2);
    expect(ring.current.id).toBe(deriveKeyring([Buffer.from('n'.repeat(32))]).current.id);
  });

  it('rotating clientSecret: encryptionKey [newKey, oldClientSecret] opens jobs queued under the old secret', () => {
    const token = 'polar_rt_rotation_test_token';
    const before = deriveKeyring(resolveOutboxConfig(base).keyMaterials);
    const id = jobIdOf(before.current, token);
    const sealed = seal(before, token, id, 'refresh_token');
    const newSecret = 'polar_cs_the_new_secret_0123456789abcdef';
    const after = deriveKeyring(resolveOutboxConfig({ ...base, clientSecret: newSecret }).keyMaterials);
    expect(unseal(after, sealed, id, 'refresh_token')).toBeUndefined();
    const ring = deriveKeyring(
      resolveOutboxConfig({ ...base, clientSecret: newSecret, encryptionKey: ['n'.repeat(32), SECRET] }).keyMaterials,
    );
    expect(unseal(ring, sealed, id, 'refresh_token')).toBe(token);
  });
});
