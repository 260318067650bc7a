/**
 * One Redis client for everything, as apps with connect-redis 9 run it: the app's node-redis client serves
 * the session store, the tombstones (guardSessionStore, or the session registry with its per-user index), the
 * outbox's producer and the shared rate budget. A logout while Polar is down keeps the session destroyed
 * (tombstone), draws from the budget in Redis, queues the token, and a worker revokes it later. The connections are
 * counted with CLIENT LIST: producer-only processes open none of their own; a worker opens only what BullMQ needs
 * to block.
 */
import { createHash } from 'node:crypto';
import express from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import request from 'supertest';
import * as nodeRedis5 from 'redis';
import * as nodeRedis6 from 'redis6';
import {
  createRedisTombstones,
  createRevocationOutbox,
  createSessionRegistry,
  guardSessionStore,
  polarLogout,
  type SessionRegistry,
} from '../../lib';
import { startFakePolar, type FakePolar, type FakeTokenPair } from '../../lib/testing';
import { describeWithRedis, startRedisServer, type RedisServer } from '../support/redis-server';
import { waitFor } from './clients';

declare module 'express-session' {
  interface SessionData {
    accessToken?: unknown;
    refreshToken?: unknown;
  }
}

const LIBS = [
  ['node-redis 5', nodeRedis5],
  ['node-redis 6', nodeRedis6 as unknown as typeof nodeRedis5],
] as const;
/** What keeps destroyed sessions destroyed: the guard with its tombstones, or the session registry (which does too). */
const GUARDS = ['guardSessionStore', 'createSessionRegistry'] as const;
const CASES = LIBS.flatMap(([name, lib]) => GUARDS.map((guard) => [name, guard, lib] as const));
const RATE_LIMIT = { requests: 1000, perMs: 60_000 };
const userIdOf = (data: Record<string, unknown>): unknown => (data.user as { id?: unknown } | undefined)?.id;

describeWithRedis('one node-redis client for the session store, tombstones, outbox and rate budget', () => {
  let redis: RedisServer;
  let fake: FakePolar;
  beforeAll(async () => {
    [redis, fake] = await Promise.all([startRedisServer(), startFakePolar()]);
  });
  afterAll(async () => {
    await Promise.all([redis.stop(), fake.close()]);
  });

  it.each(CASES)('%s with connect-redis 9 and %s', async (_name, guard, lib) => {
    const inspector = lib.createClient({ url: redis.url });
    const client = lib.createClient({ url: redis.url });
    inspector.on('error', () => undefined);
    client.on('error', () => undefined);
    await Promise.all([inspector.connect(), client.connect()]);
    await inspector.clientSetName('inspector');
    /** Connections other than the inspector's. */
    const connections = async (): Promise<string[]> =>
      (await inspector.clientList()).filter((c) => c.name !== 'inspector').map((c) => `${c.id} ${c.name}`);
    expect(await connections()).toHaveLength(1); // the app's client

    const web = createRevocationOutbox({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      timeoutMs: 1000,
      backoff: { initialDelayMs: 100, maxDelayMs: 300 },
      redis: client,
      worker: false,
    });
    const registry: SessionRegistry | undefined =
      guard === 'createSessionRegistry'
        ? createSessionRegistry({ store: new RedisStore({ client }), redis: client, userIdOf, timeoutMs: 2000 })
        : undefined;
    const store =
      registry?.store ??
      guardSessionStore(new RedisStore({ client }), { tombstones: createRedisTombstones({ client }) });
    const app = express();
    app.use(session({ secret: 'one-client-cookie-secret', resave: false, saveUninitialized: false, store }));
    let next: FakeTokenPair | undefined;
    app.post('/login', (req, res) => {
      Object.assign(req.session, next, { user: { id: 'one-client-user' } });
      req.session.save(() => res.json({ sessionId: req.sessionID }));
    });
    app.post(
      '/logout',
      polarLogout({
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
        baseUrl: fake.url,
        timeoutMs: 500,
        retries: 0,
        outbox: web,
        // The shared rate budget, on the same client.
        rateLimit: RATE_LIMIT,
        redis: client,
        ...(registry && { sessions: registry }),
      }),
    );

    const worker = createRevocationOutbox({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      timeoutMs: 1000,
      backoff: { initialDelayMs: 100, maxDelayMs: 300 },
      rateLimit: RATE_LIMIT,
      redis: client,
      worker: false,
    });
    const budgetKey = `{polar-logout}:budget:${new URL(fake.url).host}`;
    try {
      next = fake.issueTokens();
      const login = await request(app).post('/login').expect(200);
      const cookie = login.headers['set-cookie']![0]!.split(';')[0]!;
      const sid = (login.body as { sessionId: string }).sessionId;
      expect(await client.exists(`sess:${sid}`)).toBe(1);
      const ownerKey = `{polar-logout}:owner:${createHash('sha256').update(sid).digest('base64url')}`;
      if (registry) {
        // The registry's index is on the app's client: the session is listed, its owner key written.
        expect(await registry.list('one-client-user')).toHaveLength(1);
        expect(await client.exists(ownerKey)).toBe(1);
      }
      await client.del(budgetKey); // left by an earlier case: this logout must write it

      fake.fail({ type: 'status', status: 503 });
      await request(app)
        .post('/logout')
        .set('Cookie', cookie)
        .expect((res) => expect(res.status).toBeLessThan(400));
      expect(await client.exists(`sess:${sid}`)).toBe(0);
      expect(fake.isActive(next.refreshToken)).toBe(true);
      expect((await web.counts()).waiting + (await web.counts()).delayed).toBeGreaterThan(0);
      const tombstone = `{polar-logout}:tombstone:${createHash('sha256').update(sid).digest('base64url')}`;
      expect(await inspector.pTTL(tombstone)).toBeGreaterThan(60_000);
      // The handler took its call from the budget in Redis (a hash per Polar host, with an expiry).
      expect(await inspector.type(budgetKey)).toBe('hash');
      expect(await inspector.pTTL(budgetKey)).toBeGreaterThan(0);
      if (registry) {
        expect(await registry.list('one-client-user')).toEqual([]);
        expect(await inspector.exists(ownerKey)).toBe(0);
      }
      // Session store, tombstones (or registry index), producer and rate budget: still the app's one connection.
      expect(await connections()).toHaveLength(1);

      fake.heal();
      await worker.runWorker();
      await waitFor(
        'queued tokens revoked',
        () => !fake.isActive(next!.refreshToken) && !fake.isActive(next!.accessToken),
      );
      // The worker's blocking connections are its own (never the app's client), and node-redis's: no ioredis.
      const withWorker = await inspector.clientList();
      expect(withWorker.length - 2).toBeGreaterThanOrEqual(1);
      expect(withWorker.length - 2).toBeLessThanOrEqual(2);
      for (const c of withWorker) expect(c.libName ?? 'node-redis').toMatch(/node-redis|^$/);
    } finally {
      fake.heal();
      await Promise.all([web.close(), worker.close(), registry?.close()]);
      // The app's client is the app's: the outboxes never close it.
      expect(client.isOpen).toBe(true);
      expect(await connections()).toHaveLength(1);
      await client.close();
      await inspector.close();
    }
  });
});
