/**
 * One budget per Polar host on a Redis, whatever the prefix of the part drawing from it: an outbox with a prefix of
 * its own (the documented drain of 0.1.0 jobs uses `prefix: 'express-polar-logout'`) shares the key of polarLogout
 * and createPolarRevoker, since Polar counts the caller's address, not the client. Real Redis, real stand-in.
 */
import { createPolarRevoker, createRevocationOutbox } from '../../lib';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import { waitFor } from '../outbox/support/app';
import {
  connectNodeRedis,
  describeWithRedis,
  keysMatching,
  startRedisServer,
  type NodeRedisClient,
  type RedisServer,
} from '../support/redis-server';

describeWithRedis('the shared rate budget key', () => {
  let redis: RedisServer;
  let inspector: NodeRedisClient;
  let fake: FakePolar;

  beforeAll(async () => {
    redis = await startRedisServer();
    inspector = await connectNodeRedis(redis.url);
    fake = await startFakePolar();
  });
  afterAll(async () => {
    inspector.destroy();
    await fake.close();
    await redis.stop();
  });

  it('an outbox with a prefix of its own draws from the same key as the revoker', async () => {
    const client = { clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url };
    const rateLimit = { requests: 600, perMs: 60_000 };
    const revoker = createPolarRevoker({ ...client, redis: redis.url, rateLimit, timeoutMs: 2000 });
    const outbox = createRevocationOutbox({
      ...client,
      redis: redis.url,
      prefix: '{custom-outbox}',
      rateLimit,
      timeoutMs: 2000,
    });
    const [live, queued] = [fake.issueTokens(), fake.issueTokens()];
    try {
      const result = await revoker.revokeToken(live.accessToken, 'access_token');
      expect(result.status).toBe('revoked');
      await outbox.enqueue(queued.refreshToken, 'refresh_token');
      await waitFor(() => !fake.isActive(queued.refreshToken), 15_000, 'the outbox revoking its token');
      // Both calls reached Polar, each through its part's budget (both have a rateLimit and a Redis)...
      expect(fake.calls.filter((c) => c.result === 200)).toHaveLength(2);
      // ...and there is one budget key on this Redis: both drew from it. The outbox's own keys are under its
      // prefix; with the budget there too, a second key `{custom-outbox}:budget:<host>` would be listed.
      expect((await keysMatching(inspector, '{custom-outbox}*')).length).toBeGreaterThan(0);
      const host = new URL(fake.url).host;
      expect((await keysMatching(inspector, '*budget*')).sort()).toEqual([`{polar-logout}:budget:${host}`]);
    } finally {
      revoker.close();
      await outbox.close();
    }
  });
});
