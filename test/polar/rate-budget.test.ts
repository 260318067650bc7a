/**
 * The rate budget: never more than `requests` calls in any window of `perMs` (in memory with a simulated clock,
 * and in a real Redis shared by two clients), the drain stops at the reserve yet uses the whole refill when
 * alone, a 429 pauses every sharer, and a Redis that does not answer never holds a caller beyond its bound.
 */
import { createRedisAdapter } from '../../lib/redis';
import {
  bucketShape,
  createMemoryBucket,
  createRateBudget,
  createRedisBucket,
  type BucketStore,
  type RedisEval,
} from '../../lib/polar/rate-budget';
import { WARNING_TYPE } from '../../lib/warnings';
import {
  connectNodeRedis,
  describeWithRedis,
  startRedisServer,
  type NodeRedisClient,
  type RedisServer,
} from '../support/redis-server';
import { busiestWindow } from '../support/windows';

describe('bucketShape', () => {
  it.each([
    [400, 60_000, 20],
    [80, 60_000, 4],
    [3000, 60_000, 150],
    [5, 1000, 1],
  ])('%i per %i ms: burst %i, refill so that burst + refill per window = requests', (requests, perMs, capacity) => {
    const shape = bucketShape(requests, perMs);
    expect(shape.capacity).toBe(capacity);
    expect(shape.capacity + shape.refillPerMs * (perMs + 50)).toBeCloseTo(requests, 6);
    expect(shape.reserve).toBe(Math.floor(capacity / 2));
  });
});

describe('memory bucket with a simulated clock', () => {
  const shape = bucketShape(400, 60_000);

  it('hammered every 10 ms for 5 minutes, no window of 60 s holds more than 400 calls', async () => {
    let now = 0;
    const bucket = createMemoryBucket(shape, () => now);
    const grants: number[] = [];
    for (now = 0; now < 300_000; now += 10) {
      const { granted } = await bucket.take(5, 0);
      for (let i = 0; i < granted; i += 1) grants.push(now);
    }
    expect(busiestWindow(grants, 60_000)).toBeLessThanOrEqual(400);
    // ... and the budget is used: the steady state runs at the refill rate.
    expect(grants.length).toBeGreaterThanOrEqual(0.9 * 400 * 5);
  });

  it('the drain alone runs at ≥ 0.9 of the budget; it never takes the reserve, which live calls can', async () => {
    let now = 0;
    const bucket = createMemoryBucket(shape, () => now);
    let drained = 0;
    for (now = 0; now < 120_000; now += 50) drained += (await bucket.take(1, shape.reserve)).granted;
    expect(drained).toBeGreaterThanOrEqual(0.9 * 400 * 2);
    // The drain stopped at the reserve: live calls still find those tokens at once.
    expect((await bucket.take(shape.reserve, 0)).granted).toBe(shape.reserve);
    const refused = await bucket.take(1, shape.reserve);
    expect(refused.granted).toBe(0);
    expect(refused.retryInMs).toBeGreaterThan(0);
  });

  it('a pause refuses everything until it ends, then resumes paced (no burst)', async () => {
    let now = 1000;
    const bucket = createMemoryBucket(shape, () => now);
    await bucket.pause(2000);
    const during = await bucket.take(1, 0);
    expect(during).toEqual({ granted: 0, retryInMs: 2000 });
    now += 2000 + 150; // 150 ms after the pause: 150 * refill ≈ 0.95 tokens at 380/min
    expect((await bucket.take(10, 0)).granted).toBeLessThanOrEqual(1);
  });
});

/** node-redis `eval`, as the Redis adapter's eval runs it. */
function sendOf(client: NodeRedisClient): RedisEval {
  return (script, keys, args) => client.eval(script, { keys, arguments: args });
}

describeWithRedis('Redis bucket', () => {
  let redis: RedisServer;
  let clients: NodeRedisClient[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterEach(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    clients = [];
  });
  afterAll(async () => {
    await redis.stop();
  });

  async function client(): Promise<NodeRedisClient> {
    const c = await connectNodeRedis(redis.url);
    clients.push(c);
    return c;
  }

  it('two processes sharing one key stay within requests per window, and use ≥ 0.9 of it', async () => {
    const shape = bucketShape(60, 1000); // 60 a second: burst 3, refill 57/s
    const key = '{polar-logout}:budget:test-shared';
    const stores: BucketStore[] = [
      createRedisBucket(sendOf(await client()), key, shape),
      createRedisBucket(sendOf(await client()), key, shape),
    ];
    const grants: number[] = [];
    const until = Date.now() + 3000;
    await Promise.all(
      stores.map(async (store) => {
        while (Date.now() < until) {
          const { granted, retryInMs } = await store.take(2, 0);
          for (let i = 0; i < granted; i += 1) grants.push(Date.now());
          if (granted < 2) await new Promise((r) => setTimeout(r, Math.min(retryInMs, 20)));
        }
      }),
    );
    grants.sort((a, b) => a - b);
    // Timestamps are taken after the reply: allow one call of slack for the measurement itself.
    expect(busiestWindow(grants, 1000)).toBeLessThanOrEqual(60 + 1);
    expect(grants.length).toBeGreaterThanOrEqual(0.9 * 60 * 3 - 3);
    expect(await redis.keys('{polar-logout}:budget:*')).toEqual([key]);
  });

  it('a pause through one budget holds every other budget on the same Redis', async () => {
    const shape = bucketShape(600, 1000);
    const key = '{polar-logout}:budget:test-pause';
    // Two hosts' names for one key: each budget has a process bucket of its own, as two processes would, so that
    // only Redis can carry the pause from one to the other.
    const a = createRateBudget(shape, 'polar.test.a', createRedisBucket(sendOf(await client()), key, shape));
    const b = createRateBudget(shape, 'polar.test.b', createRedisBucket(sendOf(await client()), key, shape));
    a.pause(400);
    await new Promise((r) => setTimeout(r, 50));
    const refused = await b.take(1, 'live');
    expect(refused.granted).toBe(0);
    expect(refused.retryInMs).toBeGreaterThan(250);
    await new Promise((r) => setTimeout(r, refused.retryInMs + 50));
    expect((await b.take(1, 'live')).granted).toBe(1);
  });

  it('a 429 pauses its own process at once, before the pause has reached Redis', async () => {
    const c = await client();
    // A Redis that has not seen the pause script yet: the adapter's EVALSHA meets NOSCRIPT and sends EVAL after it,
    // behind a take already on the wire (CI saw ten calls slip through a pause that way).
    await c.scriptFlush();
    const adapter = createRedisAdapter(c, { feature: 'a test' });
    const evaluate: RedisEval = (script, keys, args) => adapter.eval(script, keys, args);
    const shape = bucketShape(600, 1000);
    const budget = createRateBudget(
      shape,
      'polar.test.first-pause',
      createRedisBucket(evaluate, '{polar-logout}:budget:test-first-pause', shape),
    );
    expect((await budget.take(1, 'live')).granted).toBe(1);
    budget.pause(2000);
    const next = await budget.take(1, 'live');
    expect(next.granted).toBe(0);
    expect(next.retryInMs).toBeGreaterThan(1500);
  });

  it('without Retry-After, repeated 429s back off longer each time', async () => {
    const shape = bucketShape(600, 1000);
    const key = '{polar-logout}:budget:test-backoff';
    const budget = createRateBudget(shape, 'polar.test', createRedisBucket(sendOf(await client()), key, shape));
    budget.pause(undefined);
    await new Promise((r) => setTimeout(r, 30));
    const first = (await budget.take(1, 'live')).retryInMs;
    budget.pause(undefined);
    await new Promise((r) => setTimeout(r, 30));
    const second = (await budget.take(1, 'live')).retryInMs;
    expect(first).toBeGreaterThan(800);
    expect(second).toBeGreaterThan(first);
  });

  it('a Redis that does not answer: take() returns within its bound from a local budget, reported once', async () => {
    const shape = bucketShape(600, 1000);
    const hanging: RedisEval = () => new Promise(() => undefined);
    // Fresh modules: warnings are once per process, and a slow moment in an earlier test may have used this one.
    let fresh!: typeof import('../../lib/polar/rate-budget');
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a fresh module registry needs require
      fresh = require('../../lib/polar/rate-budget') as typeof import('../../lib/polar/rate-budget');
    });
    const budget = fresh.createRateBudget(
      shape,
      'polar.test',
      fresh.createRedisBucket(hanging, '{polar-logout}:budget:x', shape),
    );
    const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const started = Date.now();
      const grants = await Promise.all([budget.take(2, 'live', 100), budget.take(2, 'live', 100)]);
      expect(Date.now() - started).toBeLessThan(400);
      expect(grants.map((g) => g.granted)).toEqual([2, 2]);
      expect(emitWarning).toHaveBeenCalledTimes(1);
      expect(emitWarning.mock.calls[0]![1]).toEqual({ type: WARNING_TYPE, code: 'EPL_RATE_BUDGET_UNAVAILABLE' });
    } finally {
      emitWarning.mockRestore();
    }
  });

  it('a Redis that refuses (killed): the same, never a rejection', async () => {
    const own = await startRedisServer();
    const c = await connectNodeRedis(own.url);
    const shape = bucketShape(600, 1000);
    // Its own host: the process bucket of 'polar.test' may still be paused by the tests above.
    const budget = createRateBudget(
      shape,
      'polar.killed',
      createRedisBucket(sendOf(c), '{polar-logout}:budget:y', shape),
    );
    expect((await budget.take(1, 'live')).granted).toBe(1);
    await own.kill();
    const grant = await budget.take(1, 'live', 100);
    expect(grant.granted).toBe(1);
    c.destroy();
    await own.stop();
  });
});
