/**
 * Sentinel: one master, one replica, three Sentinels. The master is killed (SIGKILL) in the middle of a drain;
 * after the failover every queued token is revoked, none is lost, and the worker makes progress again (what
 * outbox.health() reports) within 30 s.
 */
import type { Redis as IORedisClient } from 'ioredis';
import { createRevocationOutbox, type OutboxSettledEvent } from '../../lib';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import { describeWithRedis } from '../support/redis-server';
import { startRedisSentinelGroup, type RedisSentinelGroup } from '../support/redis-topologies';
import { LIBRARIES, waitFor } from './clients';

jest.setTimeout(90_000);

const TOKENS = 30;

describeWithRedis('Redis Sentinel failover during a drain', () => {
  // A fresh group per test: a failover leaves the old master dead and the new one without a replica.
  let group: RedisSentinelGroup | undefined;
  let fake: FakePolar;

  beforeAll(async () => {
    fake = await startFakePolar();
  });
  afterEach(async () => {
    await group?.stop();
    group = undefined;
  });
  afterAll(async () => {
    await fake.close();
  });

  it.each(LIBRARIES.filter((library) => library.sentinel !== undefined))(
    'with a $name Sentinel client: the master is SIGKILLed mid-drain, every token is revoked, progress within 30 s',
    async (library) => {
      const g = (group = await startRedisSentinelGroup());
      const client = (await library.sentinel!(g.sentinels, g.masterName)) as {
        client: IORedisClient;
        close(): Promise<void>;
      };
      const settled: OutboxSettledEvent[] = [];
      const outbox = createRevocationOutbox({
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
        baseUrl: fake.url,
        timeoutMs: 1000,
        concurrency: 2,
        backoff: { initialDelayMs: 200, maxDelayMs: 1000 },
        redis: client.client,
        worker: false,
        onSettled: (event) => void settled.push(event),
      });
      try {
        const tokens = Array.from({ length: TOKENS }, () => fake.issueTokens().refreshToken);
        for (const token of tokens) await outbox.enqueue(token, 'refresh_token');
        // Acknowledged by the replica too: what a failover can promise to keep.
        expect(Number(await client.client.call('WAIT', '1', '5000'))).toBe(1);

        fake.setLatency(150);
        await outbox.runWorker();
        await waitFor('a few tokens revoked', () => settled.length >= 4);
        const before = g.masterPort;
        await g.killMaster();
        const killedAt = Date.now();
        expect(settled.length).toBeLessThan(TOKENS); // killed mid-drain

        await waitFor(
          'the Sentinels promoted the replica',
          async () => (await g.currentMasterPort()) !== before,
          30_000,
        );
        await waitFor('every token revoked', () => tokens.every((token) => !fake.isActive(token)), 45_000);
        const health = await outbox.health();
        expect(health.ok).toBe(true);
        expect(health.lastProgressAt!.getTime()).toBeGreaterThan(killedAt);
        expect(health.lastProgressAt!.getTime() - killedAt).toBeLessThan(30_000);
        // None lost, none given up on.
        expect(settled.filter((event) => event.outcome !== 'revoked')).toEqual([]);
      } finally {
        fake.setLatency(0);
        await outbox.close();
        await client.close();
      }
    },
  );
});
