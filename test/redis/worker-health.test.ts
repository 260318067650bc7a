/**
 * outbox.health() must notice a worker that stopped taking jobs while its jobs wait in `delayed` (retries after a
 * failure at Polar: the usual state of a queue during an outage). Its idle heartbeat counted "no job waiting" as
 * progress, so such a worker looked healthy for ever: the state a cluster node restart left it in (see
 * cluster-restart.test.ts). The worker's fetch is made to hang here, as the ioredis reconnect did.
 */
import { createRequire } from 'node:module';
import { createRevocationOutbox } from '../../lib';
import { startFakePolar } from '../../lib/testing';
import { describeWithRedis, startRedisServer } from '../support/redis-server';
import { waitFor } from './clients';

type WorkerProto = { waitForJob(...args: unknown[]): Promise<unknown> };

describeWithRedis('outbox.health() with a stuck worker', () => {
  it('reports it once a retry is overdue, although no job is waiting', async () => {
    const [redis, fake] = await Promise.all([startRedisServer(), startFakePolar()]);
    // The BullMQ the library loads (Node's own module cache, not jest's registry).
    const Worker = (createRequire(__filename)('bullmq') as { Worker: { prototype: WorkerProto } }).Worker;
    const waitForJob = Worker.prototype.waitForJob;
    let release = (): void => undefined;
    const hung = new Promise<number>((resolve) => (release = () => resolve(0)));
    fake.fail({ type: 'status', status: 503 });
    const outbox = createRevocationOutbox({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      timeoutMs: 1000,
      backoff: { initialDelayMs: 300, maxDelayMs: 300 },
      redis: redis.url,
    });
    try {
      const token = fake.issueTokens().refreshToken;
      await outbox.enqueue(token, 'refresh_token');
      await waitFor('a first attempt', () => fake.calls.length >= 1);
      // From now on the worker does not read its queue (until released at the end, so that it can close), and
      // the job's retry falls due in 300 ms.
      Worker.prototype.waitForJob = () => hung;
      const stuckSince = Date.now();

      // Longer than the idle heartbeat's period (5 s), which counts progress while nothing is overdue.
      const stuckAfterMs = 8000;
      await waitFor(
        'health() saying so',
        async () => !(await outbox.health({ stuckAfterMs })).ok,
        40_000, // the retry overdue by 15 s (until then the heartbeat counts progress), then 8 s without any
      );
      const health = await outbox.health({ stuckAfterMs });
      expect(health).toMatchObject({ ok: false, worker: true, redisReachable: true });
      expect(await outbox.counts()).toMatchObject({ waiting: 0, delayed: 1 });
      expect(fake.isActive(token)).toBe(true);
      // Progress was counted while the retry might still have been taken (15 s), and not after.
      expect(health.lastProgressAt!.getTime() - stuckSince).toBeGreaterThan(5000);
      expect(health.lastProgressAt!.getTime() - stuckSince).toBeLessThan(15_000 + 5000 + 1000);
    } finally {
      Worker.prototype.waitForJob = waitForJob;
      release();
      await outbox.close();
      await Promise.all([fake.close(), redis.stop()]);
    }
  }, 60_000);
});
