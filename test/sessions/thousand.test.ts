/**
 * 1,000 sessions of one user (connect-redis and the registry on a real redis-server) and a stand-in limited to N calls
 * per window, the library's rate budget at the same N: 'everywhere' ends all 1,000 sessions, sends Polar no more than
 * the budget allows (zero 429s), queues the tokens beyond it in the outbox, which revokes them within the budget too.
 */
import { RedisStore } from 'connect-redis';
import * as lib from '../../lib';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import { busiestWindow } from '../support/windows';
import {
  connectNodeRedis,
  describeWithRedis,
  keysMatching,
  startRedisServer,
  type NodeRedisClient,
  type RedisServer,
} from '../support/redis-server';
import { login, logout, startInProcessApp, waitUntil, type Browser, type InProcessApp } from './support/client';
import { indexKeyHolding, indexKeys, keysWithoutExpiry } from './support/redis-keys';

const SESSIONS = 1000;
const RATE = { requests: 400, perMs: 1000 };

describeWithRedis('1,000 sessions of one user, a rate-limited Polar', () => {
  let redis: RedisServer;
  let client: NodeRedisClient;
  let fake: FakePolar;
  let registry: lib.SessionRegistry;
  let outbox: lib.RevocationOutbox;
  let app: InProcessApp;

  beforeAll(async () => {
    [redis, fake] = await Promise.all([startRedisServer(), startFakePolar({ rateLimit: RATE })]);
    client = await connectNodeRedis(redis.url);
    const polar = { clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url };
    registry = lib.createSessionRegistry({
      store: new RedisStore({ client, prefix: 'sess:' }),
      redis: client,
      userIdOf: (data) => (data.user as { id?: unknown } | undefined)?.id,
    });
    outbox = lib.createRevocationOutbox({ ...polar, rateLimit: RATE, timeoutMs: 2000, concurrency: 20 });
    app = await startInProcessApp(lib, {
      store: registry.store,
      sessions: registry,
      polar,
      outbox,
      rateLimit: RATE, // one process: the handler and the outbox share this process's budget
      timeoutMs: 3000,
    });
  });
  afterAll(async () => {
    await app.close();
    await outbox.close();
    await registry.close();
    client.destroy();
    await redis.stop();
    await fake.close();
  });

  it("'everywhere' ends all 1,000, zero 429s, tokens beyond the budget queued and revoked later", async () => {
    const user = 'many-sessions@example.com';
    const browsers: Browser[] = [];
    // Signed in through the app, 25 at a time.
    for (let i = 0; i < SESSIONS; i += 25) {
      browsers.push(...(await Promise.all(Array.from({ length: 25 }, () => login(app, fake, user)))));
    }
    expect(await keysMatching(client, 'sess:*')).toHaveLength(SESSIONS);
    const indexKey = await indexKeyHolding(client, browsers[0]!.handle!);
    expect(await client.zCard(indexKey)).toBe(SESSIONS);
    expect((await registry.list(user)).length).toBe(SESSIONS);
    expect(fake.calls).toHaveLength(0);

    const started = performance.now();
    const res = await logout(app, browsers[500]!.cookie, 'everywhere', true);
    const tookMs = performance.now() - started;
    expect(res.status).toBe(200);
    const { sessions } = (await res.json()) as { sessions: lib.SessionsLogoutSummary };
    expect(sessions.sessions).toBe(SESSIONS);
    expect(sessions.failed).toBe(0);
    expect(sessions.revoked + sessions.queued).toBe(2 * SESSIONS);
    // What went out at once stayed within the budget; the rest waits in the outbox.
    expect(sessions.revoked).toBeGreaterThan(0);
    expect(sessions.revoked).toBeLessThanOrEqual(RATE.requests);
    expect(sessions.queued).toBeGreaterThanOrEqual(2 * SESSIONS - RATE.requests);
    expect(fake.rejected429).toBe(0);
    // Every session is gone from the store, and the index with them.
    expect(await keysMatching(client, 'sess:*')).toEqual([]);
    expect(await indexKeys(client)).toEqual([]);
    expect(await registry.list(user)).toEqual([]);
    expect(await keysWithoutExpiry(client)).toEqual([]);
    console.log(
      `logout everywhere, ${SESSIONS} sessions: answered in ${Math.round(tookMs)} ms, ` +
        `${sessions.revoked} revoked at once, ${sessions.queued} queued`,
    );

    // The outbox revokes the rest, within the same budget.
    const tokens = browsers.flatMap((b) => [b.tokens.accessToken, b.tokens.refreshToken]);
    const drainMs = await waitUntil(() => tokens.every((t) => !fake.isActive(t)), 40_000, 'the outbox to drain');
    expect(fake.rejected429).toBe(0);
    const times = fake.calls.map((c) => c.receivedAt).sort((a, b) => a - b);
    expect(busiestWindow(times, RATE.perMs)).toBeLessThanOrEqual(RATE.requests);
    console.log(
      `outbox drained the rest in ${drainMs} ms, ${fake.calls.length} calls, busiest window ${busiestWindow(times, RATE.perMs)}`,
    );
  }, 90_000);
});
