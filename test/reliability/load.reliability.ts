/**
 * Load: 5,000 logouts of distinct sessions at concurrency 100, with a real Redis session store
 * (connect-redis + node-redis, guarded with Redis tombstones) and 5% of the stand-in's answers failing.
 *
 * The sessions are written straight into Redis with the store's own set() (same serializer, same keys as
 * express-session would produce) and addressed with cookies signed like express-session signs them; one
 * request checks that the app reads them back. Creating them through a login route would add 5,000 HTTP
 * round trips that measure the login, not the logout, and double the run time.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import express, { type ErrorRequestHandler } from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import { polarLogout, type PolarLogoutHandler } from '../../lib';
import { createRedisTombstones, guardSessionStore } from '../../lib';
import { startFakePolar, type FakeFault, type FakePolar, type FakeTokenPair } from '../../lib/testing';
import { figure, info, percentile, skipped } from './support/figures';
import { collectGarbage, trackUnhandled } from './support/process';
import { signedCookie } from './support/race-app';
import {
  connectNodeRedis,
  describeWithRedis,
  keysMatching,
  redisAvailable,
  startRedisServer,
  type NodeRedisClient,
  type RedisServer,
} from '../support/redis-server';

const SECTION = 'Load';
const SESSIONS = 5000;
const CONCURRENCY = 100;
const FAILURE_RATE = 0.05;
const BUDGET_MS = 2000;
const SECRET = 'race-app-cookie-signing-secret'; // the secret signedCookie() signs with
const LIMITS = { durationS: 60, eventLoopP99Ms: 250, heapGrowthMb: 64 };

/** Faults for the failing answers, by weight. */
const FAULT_MIX: ReadonlyArray<readonly [FakeFault, number]> = [
  [{ type: 'status', status: 503 }, 4],
  [{ type: 'status', status: 500 }, 2],
  [{ type: 'reset' }, 2],
  [{ type: 'status', status: 429 }, 1],
  [{ type: 'hang' }, 1],
];

/** A small seeded PRNG, so that every run injects the same faults. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pickFault(random: () => number): FakeFault {
  const total = FAULT_MIX.reduce((sum, [, w]) => sum + w, 0);
  let r = random() * total;
  for (const [fault, weight] of FAULT_MIX) {
    r -= weight;
    if (r < 0) return fault;
  }
  return FAULT_MIX[0]![0];
}

interface Answer {
  status: number;
  body: { loggedOut?: boolean; revocation?: { accessToken: string; refreshToken: string } } | undefined;
  ms: number;
}

function postJson(agent: http.Agent, url: URL, cookie: string): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', agent, headers: { Cookie: cookie, Accept: 'application/json', 'Content-Length': '0' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let body: Answer['body'];
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Answer['body'];
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - started });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

if (!redisAvailable)
  skipped(SECTION, `${SESSIONS} logouts with Redis`, 'redis-server not found; required when CI is set');

describeWithRedis(
  `${SESSIONS} logouts at concurrency ${CONCURRENCY}, Redis sessions, ${FAILURE_RATE * 100}% Polar failures`,
  () => {
    let redis: RedisServer;
    let client: NodeRedisClient;
    let fake: FakePolar;
    let server: http.Server;
    let logout: PolarLogoutHandler;
    const appErrors: unknown[] = [];

    beforeAll(async () => {
      redis = await startRedisServer();
      client = await connectNodeRedis(redis.url);
      fake = await startFakePolar();
    });

    afterAll(async () => {
      // Any of these is still undefined when beforeAll or the test failed before assigning it; the types cannot say so.
      /* eslint-disable @typescript-eslint/no-unnecessary-condition -- see above */
      logout?.close();
      server?.closeAllConnections();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      await fake?.close();
      await client?.close();
      await redis?.stop();
      /* eslint-enable @typescript-eslint/no-unnecessary-condition */
    });

    it('answers every logout, leaves no session and no unreported live token', async () => {
      const inner = new RedisStore({ client, prefix: 'sess:' });
      const store = guardSessionStore(inner, { tombstones: createRedisTombstones({ client }) });
      const app = express();
      app.use(session({ secret: SECRET, store, resave: false, saveUninitialized: false }));
      app.get('/whoami', (req, res) => void res.json({ user: (req.session as { user?: string }).user ?? null }));
      logout = polarLogout({
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
        baseUrl: fake.url,
        timeoutMs: BUDGET_MS,
        retries: 1,
        onRevocationFailure: 'continue',
      });
      app.post('/logout', logout);
      app.use(((err: unknown, _req, res, _next) => {
        appErrors.push(err);
        res.status(500).json({ error: (err as { code?: string }).code ?? 'error' });
      }) as ErrorRequestHandler);
      server = http.createServer(app);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

      // Sessions, written by the store itself.
      const sessions: Array<{ sid: string; cookie: string; tokens: FakeTokenPair }> = [];
      for (let i = 0; i < SESSIONS; i += 1) {
        const sid = randomBytes(24).toString('base64url');
        sessions.push({ sid, cookie: signedCookie(sid), tokens: fake.issueTokens() });
      }
      for (let i = 0; i < SESSIONS; i += 500) {
        await Promise.all(
          sessions.slice(i, i + 500).map(({ sid, tokens }, j) =>
            inner.set(
              sid,
              // The plain JSON a store holds, not a Cookie instance: the assertion says so (without it,
              // no-unsafe-class-instance-assignment objects to the literal).
              // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- see above
              {
                cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' },
                ...tokens,
                user: `user-${i + j}`,
              } as unknown as session.SessionData,
            ),
          ),
        );
      }
      expect((await keysMatching(client, 'sess:*')).length).toBe(SESSIONS);
      const whoami = await fetch(`${base}/whoami`, { headers: { Cookie: sessions[7]!.cookie } });
      expect(await whoami.json()).toEqual({ user: 'user-7' }); // the app reads them as its own

      // The run.
      const random = mulberry32(20240601);
      const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
      const logoutUrl = new URL('/logout', base);
      const answers: Array<Answer | Error> = new Array(SESSIONS);
      const unhandled = trackUnhandled();
      collectGarbage();
      const heapBefore = process.memoryUsage().heapUsed;
      const loop = monitorEventLoopDelay({ resolution: 10 });
      loop.enable();
      const started = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < SESSIONS) {
            const index = next++;
            // Each logout makes two calls: arm a failing answer for each with probability FAILURE_RATE.
            for (let call = 0; call < 2; call += 1)
              if (random() < FAILURE_RATE) fake.fail(pickFault(random), { times: 1 });
            answers[index] = await postJson(agent, logoutUrl, sessions[index]!.cookie).catch(
              (err: unknown) => err as Error,
            );
          }
        }),
      );
      const durationS = (performance.now() - started) / 1000;
      loop.disable();
      unhandled.stop();
      agent.destroy();
      fake.heal();

      // Figures.
      const ok = answers.filter(
        (a): a is Answer => !(a instanceof Error) && a.status === 200 && a.body?.loggedOut === true,
      );
      const transportErrors = answers.filter((a) => a instanceof Error).length;
      const left = (await keysMatching(client, 'sess:*')).length;
      const tombstoneKeys = await keysMatching(client, '{polar-logout}:tombstone:*');
      const sids = new Set(sessions.map((s) => s.sid));
      const rawIdKeys = tombstoneKeys.filter((k) => sids.has(k.slice('{polar-logout}:tombstone:'.length)));

      let liveUnreported = 0;
      let reportedFailed = 0;
      let reportedFailedButRevoked = 0;
      sessions.forEach(({ tokens }, i) => {
        const answer = answers[i];
        const reported = answer instanceof Error ? undefined : answer?.body?.revocation;
        for (const [slot, token] of [
          ['accessToken', tokens.accessToken],
          ['refreshToken', tokens.refreshToken],
        ] as const) {
          const status = reported?.[slot];
          if (status === 'failed') {
            reportedFailed += 1;
            if (!fake.isActive(token)) reportedFailedButRevoked += 1;
          } else if (fake.isActive(token)) liveUnreported += 1;
        }
      });
      const calls = fake.calls.length;
      const failedAnswers = fake.calls.filter((c) => c.result !== 200).length;
      const failedShare = failedAnswers / calls;
      const latencies = ok.map((a) => a.ms).sort((a, b) => a - b);
      const eventLoopP99 = loop.percentile(99) / 1e6;
      collectGarbage();
      collectGarbage();
      const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
      const unhandledErrors = unhandled.count + appErrors.length + transportErrors;

      const checks = [
        figure(
          SECTION,
          'logouts answered (200, loggedOut)',
          `${ok.length}/${SESSIONS}`,
          `${SESSIONS}/${SESSIONS}`,
          ok.length === SESSIONS,
        ),
        figure(SECTION, 'sessions left in Redis', left, '0', left === 0),
        figure(SECTION, 'tokens left active, not reported failed', liveUnreported, '0', liveUnreported === 0),
        figure(
          SECTION,
          'unhandled errors (rejections, next(err), transport)',
          unhandledErrors,
          '0',
          unhandledErrors === 0,
        ),
        figure(
          SECTION,
          'stand-in answers failing',
          `${(failedShare * 100).toFixed(1)}% (${failedAnswers}/${calls})`,
          '4-6%',
          failedShare >= 0.04 && failedShare <= 0.06,
        ),
        figure(
          SECTION,
          'tombstones in Redis / raw session ids in keys',
          `${tombstoneKeys.length} / ${rawIdKeys.length}`,
          `${SESSIONS} / 0`,
          tombstoneKeys.length === SESSIONS && rawIdKeys.length === 0,
        ),
        figure(
          SECTION,
          'event-loop delay p99 (app + stand-in + load client, one process)',
          `${eventLoopP99.toFixed(1)} ms`,
          `<= ${LIMITS.eventLoopP99Ms} ms`,
          eventLoopP99 <= LIMITS.eventLoopP99Ms,
        ),
        figure(
          SECTION,
          'heap growth after GC (incl. stand-in call log)',
          `${heapGrowthMb.toFixed(1)} MB`,
          `<= ${LIMITS.heapGrowthMb} MB`,
          heapGrowthMb <= LIMITS.heapGrowthMb,
        ),
        figure(
          SECTION,
          'duration of the run',
          `${durationS.toFixed(1)} s (${Math.round(SESSIONS / durationS)} logouts/s)`,
          `<= ${LIMITS.durationS} s`,
          durationS <= LIMITS.durationS,
        ),
      ];
      info(
        SECTION,
        'tokens reported failed (of which dead anyway at the stand-in)',
        `${reportedFailed} (${reportedFailedButRevoked})`,
      );
      info(
        SECTION,
        'logout latency p50 / p99 / max',
        `${Math.round(percentile(latencies, 50))} / ${Math.round(percentile(latencies, 99))} / ${Math.round(latencies.at(-1) ?? 0)} ms`,
        `(budget ${BUDGET_MS} ms)`,
      );
      info(SECTION, 'stand-in: most concurrent revocations', fake.maxConcurrent);

      expect(unhandled.descriptions).toEqual([]);
      expect(appErrors).toEqual([]);
      expect(checks).toEqual(checks.map(() => true));
    }, 180_000);
  },
);
