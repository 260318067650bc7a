/**
 * The outbox's telemetry in Redis mode (BullMQ, a real redis-server): the depth gauge reads counts() from Redis
 * (mode `redis`), and the worker's settlements are counted and published like the in-memory queue's.
 */
import dc from 'node:diagnostics_channel';
import { CHANNELS, createRevocationOutbox, type OutboxMessage, type RevocationOutbox } from '../../lib';
import { createHarness, sleep, type Harness } from '../support/harness';
import { describeWithRedis, startRedisServer, type RedisServer } from '../support/redis-server';
import { installOtel, total, type TestOtel } from './support/otel';

describeWithRedis('the Redis outbox', () => {
  let redis: RedisServer;
  let otel: TestOtel;
  let h: Harness;
  let outbox: RevocationOutbox;
  const messages: OutboxMessage[] = [];
  const onMessage = (m: unknown): void => void messages.push({ ...(m as OutboxMessage) });

  beforeAll(async () => {
    redis = await startRedisServer();
    otel = installOtel();
    const queue = { enqueue: (...args: Parameters<RevocationOutbox['enqueue']>) => outbox.enqueue(...args) };
    h = await createHarness({ logout: { retries: 0, outbox: queue } });
    outbox = createRevocationOutbox({
      clientId: h.fake.clientId,
      clientSecret: h.fake.clientSecret,
      baseUrl: h.fake.url,
      redis: redis.url,
      timeoutMs: 1000,
      backoff: { initialDelayMs: 2500, maxDelayMs: 2500 },
    });
    await outbox.runWorker();
    dc.subscribe(CHANNELS.outbox, onMessage);
  });
  afterAll(async () => {
    dc.unsubscribe(CHANNELS.outbox, onMessage);
    await outbox.close();
    await h.close();
    await otel.shutdown();
    await redis.stop();
  });

  async function until(check: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(25);
    }
  }

  it('gauge with mode redis while tokens wait; settlements counted and published once Polar is back', async () => {
    h.fake.fail({ type: 'status', status: 503 });
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    // The logout's two calls, then the worker's first two, which fail too: both jobs wait 2.5 s (±25 %).
    await until(() => h.fake.calls.length >= 4, 'the first outbox calls');
    await sleep(100);
    const during = await otel.collect();
    expect(
      total(during, 'polar_logout.outbox.jobs', {
        'polar_logout.outbox.mode': 'redis',
        'polar_logout.outbox.state': 'delayed',
      }),
    ).toBe(2);
    expect(total(during, 'polar_logout.outbox.jobs', { 'polar_logout.outbox.mode': 'memory' })).toBe(0);

    h.fake.heal();
    await until(() => messages.length === 2, 'two outbox messages');
    const after = await otel.collect();
    expect(total(after, 'polar_logout.outbox.settlements', { 'polar_logout.outcome': 'revoked' })).toBe(2);
    expect(total(after, 'polar_logout.outbox.jobs', { 'polar_logout.outbox.mode': 'redis' })).toBe(0);
    expect(messages.map((m) => [m.outcome, m.attempts])).toEqual([
      ['revoked', 2],
      ['revoked', 2],
    ]);
  });
});
