/**
 * Issue 15: "when [the budget] is spent, [live logouts] are THROTTLED and queued, answered within 50 ms of arrival".
 * Measured server-side, from the handler's start to the answer (the audit event's durationMs), over 40 logouts
 * arriving one after another while the outbox drains, with the budget in this process and a memory outbox, and with the budget shared
 * through Redis and BullMQ's outbox on that Redis (the setup of a real deployment). A loaded CI machine can stall
 * any single request for tens of ms, so the 50 ms bound is on the median and the 95th percentile, and every one must
 * be within 250 ms.
 *
 * And when the budget is spent while its Redis is unreachable (killed, or hung: it accepts connections and never
 * answers), a logout is still answered within timeoutMs: the budget falls back to this process's own bucket, and
 * the tokens it cannot cover are handed to the outbox within what is left of that time.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createRevocationOutbox, type LogoutEvent, type PolarLogoutOptions, type RevocationOutbox } from '../../lib';
import { hashSessionId } from '../../lib/audit';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import { createOutboxApp, waitFor, type OutboxApp } from '../outbox/support/app';
import { connectNodeRedis, describeWithRedis, startRedisServer, type RedisServer } from '../support/redis-server';

/** Burst 1, then one call every ~3 s, all of it for the drain (no reserve): live logouts find it spent. */
const RATE = { requests: 20, perMs: 60_000, reserve: 0 };
const LOGOUTS = 40;
const PROMPT_MS = 50;
const LOOSE_MS = 250;

/** Nearest-rank percentile. */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const bothThrottled = (event: LogoutEvent): boolean =>
  [event.revocation.accessToken, event.revocation.refreshToken].every((o) => o.error?.code === 'THROTTLED');

describe('a spent budget: live logouts are THROTTLED, queued, and answered within 50 ms', () => {
  let fake: FakePolar;
  let redis: RedisServer | undefined;
  let outbox: RevocationOutbox | undefined;
  let app: OutboxApp | undefined;
  afterEach(async () => {
    app?.close();
    await outbox?.close();
    await Promise.all([fake.close(), redis?.stop()]);
    [app, outbox, redis] = [undefined, undefined, undefined];
  });

  async function logoutsDuringADrain(shared: { redis: string } | Record<string, never>): Promise<void> {
    fake = await startFakePolar();
    outbox = createRevocationOutbox({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      rateLimit: RATE,
      timeoutMs: 1000,
      ...shared,
    });
    const logout: Partial<PolarLogoutOptions> = { rateLimit: RATE, ...shared };
    app = createOutboxApp(fake, outbox, { logout });
    const a = app;

    // The drain under way: queued tokens take the burst, then wait for every call the budget refills.
    const drained = Array.from({ length: 5 }, () => fake.issueTokens().refreshToken);
    for (const token of drained) await outbox.enqueue(token, 'refresh_token');
    await waitFor(() => fake.calls.length >= 1, 10_000, 'the drain took the burst');

    const users: Array<Awaited<ReturnType<OutboxApp['login']>>> = [];
    for (let i = 0; i < LOGOUTS; i += 1) users.push(await a.login());
    // How long this process's event loop was held up meanwhile (by GC, or other processes on a loaded machine):
    // not asserted, printed with the durations when they fail, to tell a stall of the machine from the library.
    const stalls = monitorEventLoopDelay({ resolution: 5 });
    stalls.enable();
    for (const u of users) await a.logout(u.cookie).expect(303);
    stalls.disable();

    // Every logout ended the session; those the budget could not cover sent nothing and queued both tokens.
    expect(await a.sessionIds()).toEqual([]);
    const throttled = a.events.filter(bothThrottled);
    expect(throttled.length).toBeGreaterThanOrEqual(LOGOUTS - 3); // a refill may let the odd call through
    for (const event of throttled) {
      for (const outcome of [event.revocation.accessToken, event.revocation.refreshToken]) {
        expect(outcome).toMatchObject({ status: 'failed', attempts: 0, queued: true });
      }
    }
    // Polar never saw their tokens, and the outbox holds them (besides what the drain still has).
    const sent = new Set(fake.calls.map((c) => c.token));
    const hashes = new Set(throttled.map((e) => e.sessionIdHash));
    const throttledUsers = users.filter((u) => hashes.has(hashSessionId(u.sessionId)));
    expect(throttledUsers).toHaveLength(throttled.length);
    for (const u of throttledUsers) {
      expect(sent.has(u.tokens.accessToken) || sent.has(u.tokens.refreshToken)).toBe(false);
    }
    const counts = await outbox.counts();
    expect(counts.waiting + counts.delayed + counts.active).toBeGreaterThanOrEqual(2 * throttled.length);

    const durations = throttled.map((e) => e.durationMs);
    const median = percentile(durations, 50);
    const p95 = percentile(durations, 95);
    const max = Math.max(...durations);
    // median ≤ 50, p95 ≤ 50, max ≤ 250 in one assertion, so that a failure prints the whole distribution.
    const measured = {
      median,
      p95,
      max,
      durations: durations.join(' '),
      eventLoopStallMaxMs: Math.round(stalls.max / 1e6),
    };
    expect(measured).toEqual({
      ...measured,
      median: Math.min(median, PROMPT_MS),
      p95: Math.min(p95, PROMPT_MS),
      max: Math.min(max, LOOSE_MS),
    });
  }

  it('with the budget in this process and a memory outbox', async () => {
    await logoutsDuringADrain({});
  }, 30_000);

  describeWithRedis('on Redis', () => {
    it('with the budget shared through Redis and the outbox on BullMQ', async () => {
      redis = await startRedisServer();
      await logoutsDuringADrain({ redis: redis.url });
      // The live path drew from the shared budget: one key per Polar host.
      expect(await redis.keys('{polar-logout}:budget:*')).toEqual([`{polar-logout}:budget:${new URL(fake.url).host}`]);
    }, 30_000);
  });
});

describeWithRedis('a spent budget while its Redis is unreachable', () => {
  const TIMEOUT_MS = 1000;
  /** Timers fire late on a loaded machine; the old hand-over alone took a second more than this. */
  const TIMER_SLACK_MS = 100;

  /** redis-server's own pid, as it reports it (the test started it). */
  async function pidOf(server: RedisServer): Promise<number> {
    const client = await connectNodeRedis(server.url);
    try {
      return Number(/^process_id:(\d+)/m.exec(await client.info('server'))?.[1]);
    } finally {
      await client.close();
    }
  }

  it.each(['killed', 'hung'] as const)(
    'Redis %s: the budget falls back to this process’s own bucket, and once that is spent too the logout is still answered within timeoutMs',
    async (how) => {
      const redis = await startRedisServer();
      const fake = await startFakePolar();
      const outbox = createRevocationOutbox({
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
        baseUrl: fake.url,
        rateLimit: RATE,
        timeoutMs: TIMEOUT_MS,
        redis: redis.url,
        worker: false,
      });
      const app = createOutboxApp(fake, outbox, {
        logout: { rateLimit: RATE, redis: redis.url, timeoutMs: TIMEOUT_MS },
      });
      let stopped: number | undefined;
      try {
        const users = [await app.login(), await app.login(), await app.login()];
        // With Redis: the shared budget's burst (one call) goes to the first logout, its other token is queued.
        await app.logout(users[0]!.cookie).expect(303);
        const first = app.events[0]!.revocation;
        expect([first.accessToken.status, first.refreshToken.status].sort()).toEqual(['failed', 'revoked']);
        expect([first.accessToken, first.refreshToken].find((o) => o.status === 'failed')).toMatchObject({
          error: { code: 'THROTTLED' },
          queued: true,
        });

        if (how === 'killed') await redis.kill();
        else process.kill((stopped = await pidOf(redis)), 'SIGSTOP'); // accepts connections, never answers

        const answeredMs: number[] = [];
        for (const user of users.slice(1)) {
          const started = performance.now();
          await app.logout(user.cookie).expect(303);
          answeredMs.push(performance.now() - started);
        }
        // The second logout drew this process's own bucket (one call); the third found it spent as well: nothing
        // sent, and not queued either (the outbox's Redis is away too), but logged out and answered in time.
        const [second, third] = app.events.slice(1).map((e) => e.revocation);
        expect([second!.accessToken.status, second!.refreshToken.status]).toContain('revoked');
        for (const outcome of [third!.accessToken, third!.refreshToken]) {
          expect(outcome).toMatchObject({ status: 'failed', attempts: 0, error: { code: 'THROTTLED' }, queued: false });
        }
        const sent = new Set(fake.calls.map((c) => c.token));
        expect(sent.has(users[2]!.tokens.accessToken) || sent.has(users[2]!.tokens.refreshToken)).toBe(false);
        expect(await app.sessionIds()).toEqual([]);
        for (const event of app.events.slice(1))
          expect(event.durationMs).toBeLessThanOrEqual(TIMEOUT_MS + TIMER_SLACK_MS);
        expect(Math.max(...answeredMs)).toBeLessThan(TIMEOUT_MS + 2 * TIMER_SLACK_MS);
      } finally {
        if (stopped !== undefined) process.kill(stopped, 'SIGCONT');
        app.close();
        await outbox.close();
        await Promise.all([fake.close(), redis.stop()]);
      }
    },
    30_000,
  );
});
