/**
 * A Redis Cluster node restart during a drain (issue 14): the master that serves the `{polar-logout}` slot is
 * stopped while the worker runs and tokens wait for Polar, and started again on its port with its nodes.conf and
 * its data (AOF, fsync on every write, as a node that must not lose queued work runs). With no replicas the slot is
 * unavailable until the node is back, and the whole cluster answers CLUSTERDOWN once the others mark it failed.
 * Afterwards every queued token is revoked at the stand-in, none is lost, and the worker made progress within 30 s
 * of the node answering again.
 *
 * Once per way BullMQ gets its connections: from an ioredis 5 and an ioredis 6 Cluster (duplicates of the app's
 * client), and from a node-redis cluster (an ioredis twin on the same nodes; node-redis 5 and 6 give the same).
 * About one restart in six left the worker stopped for good (ioredis never settled the reconnect BullMQ awaits, see
 * lib/redis/adapter.ts); the first test shows that mechanism alone, deterministically.
 */
import IORedis, { type Cluster } from 'ioredis';
import { createRevocationOutbox, type OutboxSettledEvent } from '../../lib';
import { createRedisAdapter } from '../../lib/redis';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import { describeWithRedis } from '../support/redis-server';
import { startRedisCluster, type RedisCluster } from '../support/redis-topologies';
import { LIBRARIES, waitFor } from './clients';

const TOKENS = 20;
/** How long the cluster stays down (after the other masters marked the node failed, 2 s after it went away). */
const DOWN_MS = 1000;
const RESUME_WITHIN_MS = 30_000;

/** Each way BullMQ's connections are made, and how the node is stopped (both ways a node goes away are covered). */
const CASES = [
  { library: LIBRARIES[0]!, signal: 'SIGKILL' as const },
  { library: LIBRARIES[1]!, signal: 'SIGTERM' as const },
  { library: LIBRARIES[3]!, signal: 'SIGKILL' as const },
].map((c) => ({ ...c, name: c.library.name }));

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

jest.setTimeout(45_000);

describeWithRedis('a Redis Cluster node restart', () => {
  let cluster: RedisCluster;
  let fake: FakePolar;

  beforeAll(async () => {
    [cluster, fake] = await Promise.all([startRedisCluster({ persistent: true }), startFakePolar()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([cluster.stop(), fake.close()]);
  });

  /** Stops the slot's master, waits until another master says the cluster is down, and returns its port. */
  async function takeDownSlotOwner(signal: 'SIGKILL' | 'SIGTERM'): Promise<number> {
    const port = await cluster.ownerOf('{polar-logout}');
    const other = new IORedis(
      cluster.ports.find((p) => p !== port)!,
      '127.0.0.1',
      { lazyConnect: true },
    );
    other.on('error', () => undefined);
    try {
      await cluster.stopNode(port, signal);
      await waitFor('the cluster down', async () => /cluster_state:fail/.test(await other.cluster('INFO')));
    } finally {
      other.disconnect();
    }
    return port;
  }

  it('the connection BullMQ renews while a master is down settles once the node is back', async () => {
    const app = await LIBRARIES[0]!.cluster(cluster.nodes);
    const adapter = createRedisAdapter(app.client, { feature: 'a test' });
    // The worker's connection as BullMQ gets it (its blocking one is a duplicate of it, with the same options).
    const connection = adapter.bullmqConnection('worker') as unknown as Cluster;
    let port: number | undefined;
    try {
      await waitFor('the connection ready', () => connection.status === 'ready');
      port = await takeDownSlotOwner('SIGKILL');
      // What BullMQ does when its blocking read does not come back in time: disconnect, then connect again.
      await new Promise((resolve) => {
        connection.once('end', resolve);
        connection.disconnect();
      });
      const reconnect = connection.connect().then(
        () => 'connected',
        () => 'failed',
      );
      await sleep(500);
      await cluster.startNode(port);
      port = undefined;
      // BullMQ awaits this promise before it reads again: pending for ever meant a worker stopped for good.
      expect(await Promise.race([reconnect, sleep(10_000).then(() => 'pending')])).not.toBe('pending');
      await waitFor('the connection ready again', () => connection.status === 'ready');
    } finally {
      if (port !== undefined) await cluster.startNode(port);
      await adapter.close();
      await app.close();
    }
  });

  it.each(CASES)(
    'with a $name cluster client: the slot’s master is stopped ($signal) mid-drain and started again; every token revoked',
    async ({ library, signal }) => {
      const client = await library.cluster(cluster.nodes);
      const settled: Array<OutboxSettledEvent & { at: number }> = [];
      fake.resetCalls();
      fake.fail({ type: 'status', status: 503 });
      const outbox = createRevocationOutbox({
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
        baseUrl: fake.url,
        timeoutMs: 1000,
        concurrency: 2,
        backoff: { initialDelayMs: 200, maxDelayMs: 1000 },
        redis: client.client as never,
        onSettled: (event) => void settled.push({ ...event, at: Date.now() }),
      });
      let port: number | undefined;
      try {
        const tokens = Array.from({ length: TOKENS }, () => fake.issueTokens().refreshToken);
        // Each token under its own sessionIdHash, so that each one's end can be told apart.
        const hashOf = (i: number): string => i.toString(16).padStart(16, '0');
        for (const [i, token] of tokens.entries()) {
          await outbox.enqueue(token, 'refresh_token', { sessionIdHash: hashOf(i) });
        }
        // Every job met Polar's 503 at least once: the worker runs, and all of them wait in Redis for a retry.
        await waitFor('every job tried once', () => new Set(fake.calls.map((c) => c.token)).size === TOKENS);

        port = await takeDownSlotOwner(signal);
        await sleep(DOWN_MS);
        fake.heal();
        expect(tokens.every((token) => fake.isActive(token))).toBe(true); // nothing could run meanwhile
        await cluster.startNode(port);
        port = undefined;
        const backAt = Date.now();

        await waitFor('every token revoked', () => tokens.every((token) => !fake.isActive(token)), RESUME_WITHIN_MS);
        // Progress after the node came back, within 30 s of it: the first revocation, and what health() says.
        const after = settled.filter((event) => event.at >= backAt);
        expect(after.length).toBeGreaterThan(0);
        expect(after[0]!.at - backAt).toBeLessThan(RESUME_WITHIN_MS);
        const health = await outbox.health();
        expect(health).toMatchObject({ ok: true, worker: true, redisReachable: true });
        expect(health.lastProgressAt!.getTime()).toBeGreaterThanOrEqual(backAt);
        expect(health.lastProgressAt!.getTime() - backAt).toBeLessThan(RESUME_WITHIN_MS);
        // None lost, none given up on: every token settled revoked, and the queue is empty.
        await waitFor('every token settled', () => new Set(settled.map((e) => e.sessionIdHash)).size === TOKENS);
        expect(settled.filter((event) => event.outcome !== 'revoked')).toEqual([]);
        expect(new Set(settled.map((e) => e.sessionIdHash))).toEqual(new Set(tokens.map((_, i) => hashOf(i))));
        await waitFor('the queue empty', async () => {
          const counts = await outbox.counts();
          return counts.waiting + counts.delayed + counts.active === 0;
        });
      } finally {
        fake.heal();
        if (port !== undefined) await cluster.startNode(port);
        await outbox.close();
        await client.close();
      }
    },
  );
});
