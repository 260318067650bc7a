/**
 * The connection the adapter opens for a `redis://` URL has no offline queue (a command fails at once while Redis
 * is away, rather than wait for it). Its first commands must still wait for its first connection: before, the first
 * logout after start-up found it "connecting", drew from this process's own budget instead of the shared one, and
 * warned that a healthy Redis was unreachable. A Redis that refuses connections still fails fast.
 */
import { createPolarRevoker } from '../../lib';
import { createRedisAdapter, RedisUnavailableError } from '../../lib/redis';
import { startFakePolar } from '../../lib/testing';
import { describeWithRedis, freePort, startRedisServer, type RedisServer } from '../support/redis-server';

describeWithRedis('the connection opened for a redis:// URL', () => {
  let redis: RedisServer;
  let emitWarning: jest.SpyInstance;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  beforeEach(() => {
    emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  });
  afterEach(() => emitWarning.mockRestore());
  afterAll(async () => {
    await redis.stop();
  });

  it('its first command, sent right after construction, waits for the connection and is answered', async () => {
    const adapter = createRedisAdapter(redis.url, { feature: 'a test' });
    try {
      expect(await adapter.command(['PING'], { timeoutMs: 1000 })).toBe('PONG');
      expect(await adapter.command(['PING'])).toBe('PONG');
    } finally {
      await adapter.close();
    }
    expect(emitWarning).not.toHaveBeenCalled();
  });

  it('the first revocation of a client sharing its budget through Redis draws from Redis, without a warning', async () => {
    const fake = await startFakePolar();
    const revoker = createPolarRevoker({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      rateLimit: { requests: 400, perMs: 60_000 },
      redis: redis.url,
    });
    try {
      const outcome = await revoker.revokeToken(fake.issueTokens().refreshToken, 'refresh_token');
      expect(outcome.status).toBe('revoked');
      expect(await redis.keys('{polar-logout}:budget:*')).toEqual([`{polar-logout}:budget:${new URL(fake.url).host}`]);
      expect(emitWarning).not.toHaveBeenCalled();
    } finally {
      revoker.close();
      await fake.close();
    }
  });

  it('a Redis that refuses connections still fails fast, well within the bound, and is reported', async () => {
    const port = await freePort();
    const adapter = createRedisAdapter(`redis://127.0.0.1:${port}`, { feature: 'a test' });
    try {
      const started = Date.now();
      const error = await adapter.command(['PING'], { timeoutMs: 3000 }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(Date.now() - started).toBeLessThan(1000);
      expect(error).toBeInstanceOf(RedisUnavailableError);
      expect((error as RedisUnavailableError).reason).not.toMatch(/no answer within/);
      expect(emitWarning).toHaveBeenCalledWith(expect.stringContaining(`127.0.0.1:${port} is not reachable`), {
        type: 'PolarLogoutWarning',
        code: 'EPL_REDIS_UNREACHABLE',
      });
    } finally {
      await adapter.close();
    }
  });
});
