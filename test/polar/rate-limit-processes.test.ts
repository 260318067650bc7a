/**
 * The budget shared through Redis: three worker processes drain one queue against a stand-in limited to N calls per
 * window (Polar's per-address limit), each with the budget at N. Together they stay within N, without a 429, and
 * still use the budget; and a live logout whose shared budget's Redis is gone is answered within its time budget.
 */
import path from 'node:path';
import express from 'express';
import session from 'express-session';
import request from 'supertest';
import { createRevocationOutbox, polarLogout, type LogoutEvent } from '../../lib';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import { bundleLibrary, startChild, type Bundle, type Child } from '../outbox/support/children';
import { waitFor } from '../outbox/support/app';
import { describeWithRedis, startRedisServer, type RedisServer } from '../support/redis-server';
import { busiestWindow } from '../support/windows';

describeWithRedis('a rate budget shared through Redis', () => {
  let redis: RedisServer;
  let fake: FakePolar;
  let bundle: Bundle;
  const children: Child[] = [];

  beforeAll(async () => {
    [redis, bundle] = await Promise.all([startRedisServer(), bundleLibrary()]);
  }, 60_000);
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => c.kill('SIGTERM')));
    await fake.close();
  });
  afterAll(async () => {
    await redis.stop();
    bundle.remove();
  });

  it('three worker processes drain 300 tokens within N per window together: zero 429s, ≥ 0.9 of N', async () => {
    const N = 300;
    const PER_MS = 3000;
    fake = await startFakePolar({ rateLimit: { requests: N, perMs: PER_MS } });
    const client = { clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url };
    const producer = createRevocationOutbox({ ...client, redis: redis.url, worker: false });
    const tokens = Array.from({ length: 300 }, () => fake.issueTokens().refreshToken);
    try {
      for (const token of tokens) await producer.enqueue(token, 'refresh_token');
    } finally {
      await producer.close();
    }
    const env = {
      EPL_DIST: bundle.cjs,
      POLAR_CLIENT_ID: fake.clientId,
      POLAR_CLIENT_SECRET: fake.clientSecret,
      POLAR_BASE_URL: fake.url,
      REDIS_URL: redis.url,
      RATE_REQUESTS: String(N),
      RATE_PER_MS: String(PER_MS),
    };
    const script = path.join(__dirname, 'fixtures', 'drain-worker.cjs');
    for (let i = 0; i < 3; i += 1) children.push(startChild(script, env));
    await Promise.all(children.map((c) => c.waitFor((r) => r.type === 'running', 20_000, 'the worker running')));
    await waitFor(() => tokens.every((t) => !fake.isActive(t)), 30_000, 'all 300 revoked');

    expect(fake.rejected429).toBe(0);
    const times = fake.calls.map((c) => c.receivedAt).sort((a, b) => a - b);
    expect(times).toHaveLength(300);
    expect(busiestWindow(times, PER_MS)).toBeLessThanOrEqual(N);
    // More than one process did the work, and the budget was used: 300 calls in at most 300 / (0.9 N) windows.
    const busy = children.filter((c) => c.records.some((r) => r.type === 'settled')).length;
    expect(busy).toBeGreaterThanOrEqual(2);
    const spanMs = times[times.length - 1]! - times[0]!;
    expect(300 / (spanMs / PER_MS)).toBeGreaterThanOrEqual(0.9 * N);
    // The budget is one key per Polar host, in the library's hash slot.
    expect(await redis.keys('{polar-logout}:budget:*')).toEqual([`{polar-logout}:budget:${new URL(fake.url).host}`]);
  }, 90_000);

  it('its Redis gone: a live logout still revokes from the local budget, answered within timeoutMs', async () => {
    fake = await startFakePolar();
    const own = await startRedisServer();
    const events: LogoutEvent[] = [];
    const app = express();
    app.use(session({ secret: 'budget-redis-test', resave: false, saveUninitialized: false }));
    app.post('/login', (req, res) => {
      Object.assign(req.session, fake.issueTokens());
      req.session.save(() => res.sendStatus(204));
    });
    const logout = polarLogout({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      rateLimit: { requests: 400, perMs: 60_000 },
      redis: own.url,
      timeoutMs: 1000,
      onLogout: (event) => void events.push(event),
    });
    app.post('/logout', logout);
    try {
      const login = await request(app).post('/login').expect(204);
      const cookie = (login.headers['set-cookie'] as unknown as string[])[0]!.split(';', 1)[0]!;
      await own.kill();
      const started = performance.now();
      await request(app).post('/logout').set('Cookie', cookie).expect(303);
      expect(performance.now() - started).toBeLessThan(1000);
      expect(events[0]!.revocation.refreshToken.status).toBe('revoked');
      expect(events[0]!.revocation.accessToken.status).toBe('revoked');
    } finally {
      logout.close();
      await own.stop();
    }
  });
});
