/**
 * 1,000 sessions of one user and a stand-in limited to N calls per window, the library's rate budget at the same N.
 * The app runs in a child process (connect-redis and the registry on a real redis-server, the memory outbox with the
 * same budget), so that the stand-in, in this process, sees calls when they arrive. 'everywhere' ends all 1,000
 * sessions, sends Polar no more than the budget allows (zero 429s), queues the tokens beyond it in the outbox, which
 * revokes them within the budget too.
 */
import path from 'node:path';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import type { SessionsLogoutSummary } from '../../lib';
import { busiestWindow } from '../support/windows';
import { bundleLibrary, startChild, type Bundle, type Child } from '../outbox/support/children';
import {
  connectNodeRedis,
  describeWithRedis,
  keysMatching,
  startRedisServer,
  type NodeRedisClient,
  type RedisServer,
} from '../support/redis-server';
import { list, login, logout, revokedAtPolar, waitUntil, type AppHandle, type Browser } from './support/client';
import { indexKeyHolding, indexKeys, keysWithoutExpiry } from './support/redis-keys';

const SESSIONS = 1000;
const RATE = { requests: 400, perMs: 1000 };

describeWithRedis('1,000 sessions of one user, a rate-limited Polar', () => {
  let redis: RedisServer;
  let bundle: Bundle;
  let inspect: NodeRedisClient;
  let fake: FakePolar;
  let child: Child;
  let app: AppHandle;

  beforeAll(async () => {
    [redis, bundle, fake] = await Promise.all([
      startRedisServer(),
      bundleLibrary(),
      startFakePolar({ rateLimit: RATE }),
    ]);
    inspect = await connectNodeRedis(redis.url);
    child = startChild(path.join(__dirname, 'fixtures', 'child.cjs'), {
      EPL_DIST: bundle.cjs,
      POLAR_CLIENT_ID: fake.clientId,
      POLAR_CLIENT_SECRET: fake.clientSecret,
      POLAR_BASE_URL: fake.url,
      REDIS_URL: redis.url,
      OUTBOX: 'memory', // one process: the logout and the outbox draw from this process's one budget
      RATE_REQUESTS: String(RATE.requests),
      RATE_PER_MS: String(RATE.perMs),
      LOGOUT_TIMEOUT_MS: '3000',
    });
    const { port } = await child.waitFor((r) => r.type === 'listening', 20_000, 'the app to listen');
    app = { name: 'app', url: `http://127.0.0.1:${String(port)}`, records: child.records, waitFor: child.waitFor };
  }, 60_000);
  afterAll(async () => {
    await child.kill('SIGTERM');
    inspect.destroy();
    await redis.stop();
    bundle.remove();
    await fake.close();
  });

  it("'everywhere' ends all 1,000, zero 429s, tokens beyond the budget queued and revoked later", async () => {
    const user = 'many-sessions@example.com';
    const browsers: Browser[] = [];
    // Signed in through the app, 25 at a time.
    for (let i = 0; i < SESSIONS; i += 25) {
      browsers.push(...(await Promise.all(Array.from({ length: 25 }, () => login(app, fake, user)))));
    }
    expect(await keysMatching(inspect, 'sess:*')).toHaveLength(SESSIONS);
    const indexKey = await indexKeyHolding(inspect, browsers[0]!.handle!);
    expect(await inspect.zCard(indexKey)).toBe(SESSIONS);
    expect(await list(app, user)).toHaveLength(SESSIONS);
    expect(fake.calls).toHaveLength(0);

    const started = performance.now();
    const res = await logout(app, browsers[500]!.cookie, 'everywhere', true);
    const tookMs = performance.now() - started;
    expect(res.status).toBe(200);
    const { sessions } = (await res.json()) as { sessions: SessionsLogoutSummary };
    expect(sessions.sessions).toBe(SESSIONS);
    expect(sessions.failed).toBe(0);
    expect(sessions.revoked + sessions.queued).toBe(2 * SESSIONS);
    // What went out at once stayed within the budget; the rest waits in the outbox.
    expect(sessions.revoked).toBeGreaterThan(0);
    expect(sessions.queued).toBeGreaterThan(0);
    expect(fake.calls.filter((c) => c.result === 200).length).toBeGreaterThanOrEqual(sessions.revoked);
    expect(fake.rejected429).toBe(0);
    // Every session is gone from the store, and the index with them.
    expect(await keysMatching(inspect, 'sess:*')).toEqual([]);
    expect(await indexKeys(inspect)).toEqual([]);
    expect(await list(app, user)).toEqual([]);
    expect(await keysWithoutExpiry(inspect)).toEqual([]);
    const event = (await app.waitFor((r) => r.type === 'logout', 5000, 'the audit event')).event;
    expect(event).toMatchObject({ scope: 'everywhere', sessions });

    // The outbox revokes the rest, within the same budget.
    const tokens = browsers.flatMap((b) => [b.tokens.accessToken, b.tokens.refreshToken]);
    const drainMs = await waitUntil(() => tokens.every((t) => revokedAtPolar(fake, t)), 40_000, 'the outbox to drain');
    expect(fake.rejected429).toBe(0);
    const times = fake.calls.map((c) => c.receivedAt).sort((a, b) => a - b);
    const busiest = busiestWindow(times, RATE.perMs);
    console.log(
      `logout everywhere, ${SESSIONS} sessions: answered in ${Math.round(tookMs)} ms, ${sessions.revoked} revoked ` +
        `at once, ${sessions.queued} queued; the outbox revoked the rest in ${drainMs} ms; ${fake.calls.length} ` +
        `calls, busiest ${RATE.perMs} ms window ${busiest} (limit ${RATE.requests})`,
    );
    expect(busiest).toBeLessThanOrEqual(RATE.requests);
  }, 90_000);
});
