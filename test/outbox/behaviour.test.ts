/**
 * The outbox's behaviour, the same table for both queues: in memory, and on a real redis-server. The Polar
 * stand-in answers over real HTTP; the logout runs in a real Express app with a real session store.
 */
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import {
  createRevocationOutbox,
  type OutboxSettledEvent,
  type RevocationOutbox,
  type RevocationOutboxOptions,
} from '../../lib';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import { createOutboxApp, debugOutput, sleep, waitFor, type OutboxApp } from './support/app';
import { describeWithRedis, startRedisServer, type RedisServer } from '../support/redis-server';
import { startSwitch, type PortSwitch } from './support/switch';

type Mode = 'memory' | 'redis';

/** Every secret the tests handled, and everything the tests saw (events, errors, warnings), for the scans. */
const secrets = new Set<string>();
const seen: string[] = [];

/**
 * Process warnings of this library (once per code per process). Watched at process.emitWarning, which still
 * runs: jest's sandboxed `process` does not deliver 'warning' events to listeners added here.
 */
const warnings: { message: string; type: unknown; code: unknown }[] = [];
const emitWarning = jest.spyOn(process, 'emitWarning');
const warned = (code: string) => {
  for (const [message, options] of emitWarning.mock.calls.splice(0)) {
    const { type, code: c } = (typeof options === 'object' ? options : {}) as { type?: unknown; code?: unknown };
    warnings.push({ message: String(message), type, code: c });
  }
  return warnings.filter((w) => w.code === code && w.type === 'PolarLogoutWarning');
};

function suite(mode: Mode): void {
  let redis: RedisServer | undefined;
  let fake: FakePolar;
  let settled: OutboxSettledEvent[];
  const outboxes: RevocationOutbox[] = [];
  const apps: OutboxApp[] = [];
  const switches: PortSwitch[] = [];
  const inspectors: Redis[] = [];

  beforeAll(async () => {
    if (mode === 'redis') redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.stop();
  });
  beforeEach(async () => {
    fake = await startFakePolar();
    secrets.add(fake.clientSecret);
    settled = [];
  });
  afterEach(async () => {
    seen.push(JSON.stringify(settled));
    for (const a of apps)
      seen.push(JSON.stringify(a.events), ...a.errors.map((e) => `${String(e)} ${JSON.stringify(e)}`));
    await Promise.all(outboxes.splice(0).map((o) => o.close()));
    for (const app of apps.splice(0)) app.close();
    await Promise.all(switches.splice(0).map((s) => s.close()));
    for (const client of inspectors.splice(0)) client.disconnect();
    await fake.close();
  });

  function outbox(extra: Partial<RevocationOutboxOptions> = {}): RevocationOutbox {
    const o = createRevocationOutbox({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      timeoutMs: 1000,
      backoff: { initialDelayMs: 100, maxDelayMs: 400 },
      onSettled: (event) => void settled.push(event),
      ...(mode === 'redis' ? { redis: redis!.url } : {}),
      ...extra,
    });
    outboxes.push(o);
    return o;
  }

  function app(o: RevocationOutbox, options: Parameters<typeof createOutboxApp>[2] = {}): OutboxApp {
    const a = createOutboxApp(fake, o, options);
    apps.push(a);
    return a;
  }

  async function login(a: OutboxApp): ReturnType<OutboxApp['login']> {
    const session = await a.login();
    secrets.add(session.tokens.accessToken).add(session.tokens.refreshToken).add(session.sessionId);
    return session;
  }

  function issue(): string {
    const { accessToken, refreshToken } = fake.issueTokens();
    secrets.add(accessToken).add(refreshToken);
    return accessToken;
  }

  /** A refresh token: Polar looks a token up by its hint, so a refresh_token job must hold one. */
  function issueRefresh(): string {
    const { accessToken, refreshToken } = fake.issueTokens();
    secrets.add(accessToken).add(refreshToken);
    return refreshToken;
  }

  const callsFor = (token: string) => fake.calls.filter((c) => c.token === token);
  const pending = async (o: RevocationOutbox) => {
    const c = await o.counts();
    return c.waiting + c.delayed + c.active;
  };

  // First: their ioredis reconnect timers (2 s after close) are long gone when the file ends.
  if (mode === 'redis') {
    it('a Redis outage at enqueue time leaves the logout answered and reports it', async () => {
      const own = await startRedisServer();
      try {
        // worker: false: a web process; a worker's blocking read would keep BullMQ's 6 s watchdog after close.
        const o = outbox({ redis: own.url, worker: false });
        const a = app(o);
        await o.counts(); // connected
        const { sessionId, cookie } = await login(a);
        fake.fail({ type: 'status', status: 503 });
        await own.kill();

        const before = debugOutput.length;
        const started = performance.now();
        await a.logout(cookie).expect(303);
        expect(performance.now() - started).toBeLessThan(2500); // 1 s budget + at most 1 s for Redis
        expect(await a.sessionIds()).not.toContain(sessionId);
        const { accessToken, refreshToken } = a.events[0]!.revocation;
        expect(accessToken).toMatchObject({ status: 'failed', queued: false });
        expect(refreshToken).toMatchObject({ status: 'failed', queued: false });
        const lines = debugOutput.slice(before).join('\n');
        expect(lines).toMatch(/access_token not queued: OUTBOX_UNAVAILABLE/);
        expect(lines).toMatch(/could not queue the refresh_token/);

        // A health check answers too, and says Redis is away, instead of hanging.
        const counted = performance.now();
        await expect(o.counts()).rejects.toMatchObject({ code: 'OUTBOX_UNAVAILABLE' });
        expect(performance.now() - counted).toBeLessThan(1500);
      } finally {
        await own.stop();
      }
    });

    it('an unreachable Redis from the start fails enqueue within its bound', async () => {
      const o = outbox({ redis: 'redis://127.0.0.1:1', worker: false });
      const started = performance.now();
      await expect(o.enqueue(issue(), 'access_token', {})).rejects.toMatchObject({ code: 'OUTBOX_UNAVAILABLE' });
      expect(performance.now() - started).toBeLessThan(1500);
      await o.close();
    });
  }

  it('Polar answering 503 at logout: the user is answered within the budget, then the outbox revokes once Polar heals', async () => {
    const o = outbox();
    const a = app(o);
    const { tokens, sessionId, cookie } = await login(a);
    fake.fail({ type: 'status', status: 503 });

    const started = performance.now();
    const res = await a.logout(cookie).expect(303);
    const elapsed = performance.now() - started;

    expect(elapsed).toBeLessThan(1500); // timeoutMs 1000, and 503s come back at once
    expect(res.headers.location).toBe('/');
    expect(await a.sessionIds()).not.toContain(sessionId);
    expect(a.events).toHaveLength(1);
    const { revocation, loggedOut, sessionIdHash } = a.events[0]!;
    expect(loggedOut).toBe(true);
    for (const outcome of [revocation.accessToken, revocation.refreshToken]) {
      expect(outcome).toMatchObject({
        status: 'failed',
        queued: true,
        error: { code: 'SERVER_ERROR', httpStatus: 503 },
      });
    }
    expect(fake.isActive(tokens.accessToken)).toBe(true);
    expect(fake.isActive(tokens.refreshToken)).toBe(true);

    // While Polar is down the outbox keeps trying, and stores nothing in clear.
    await waitFor(() => callsFor(tokens.accessToken).length >= 4, 5000, 'outbox retries');
    expect(await pending(o)).toBe(2);
    if (redis) {
      const dump = await redis.dump();
      expect(dump).toContain('{polar-logout}:revocations-');
      for (const secret of secrets) expect(dump).not.toContain(secret);
    }

    fake.heal();
    const took = await waitFor(
      () => !fake.isActive(tokens.accessToken) && !fake.isActive(tokens.refreshToken),
      5000,
      'revocation',
    );
    expect(took).toBeLessThan(2000); // backoff capped at 400 ms in this test
    await waitFor(() => settled.length === 2, 2000, 'onSettled');
    expect(settled.map((e) => e.tokenType).sort()).toEqual(['access_token', 'refresh_token']);
    for (const event of settled) {
      expect(event).toEqual({
        tokenType: event.tokenType,
        outcome: 'revoked',
        attempts: expect.any(Number) as number,
        queuedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as string,
        settledAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as string,
        sessionIdHash,
      });
      // Every call after the logout's own two (one retry within its budget) was the outbox's.
      const token = event.tokenType === 'access_token' ? tokens.accessToken : tokens.refreshToken;
      expect(event.attempts).toBe(callsFor(token).length - 2);
      expect(event.attempts).toBeGreaterThanOrEqual(2);
      expect(Date.parse(event.settledAt)).toBeGreaterThanOrEqual(Date.parse(event.queuedAt));
    }
    // The answers Polar gave the outbox: 503s, then one 200 per token, and nothing after it.
    const accessCalls = callsFor(tokens.accessToken);
    expect(accessCalls.at(-1)!.result).toBe(200);
    expect(accessCalls.filter((c) => c.result === 200)).toHaveLength(1);
    expect(accessCalls.every((c) => c.authenticated && c.hint === 'access_token')).toBe(true);
    expect(await pending(o)).toBe(0);
  });

  it('Polar refusing connections at logout: answered at once, revoked when Polar is reachable again', async () => {
    const port = await startSwitch(fake.url);
    switches.push(port);
    const o = outbox({ baseUrl: port.url });
    const a = app(o, { baseUrl: port.url });
    const { tokens, sessionId, cookie } = await login(a);
    await port.down();

    const started = performance.now();
    await a.logout(cookie).expect(303);
    expect(performance.now() - started).toBeLessThan(1500);
    expect(await a.sessionIds()).not.toContain(sessionId);
    expect(a.events[0]!.revocation.accessToken).toMatchObject({
      status: 'failed',
      queued: true,
      error: { code: 'NETWORK_ERROR' },
    });
    expect(a.events[0]!.revocation.refreshToken).toMatchObject({
      status: 'failed',
      queued: true,
      error: { code: 'NETWORK_ERROR' },
    });
    await sleep(500);
    expect(fake.calls).toHaveLength(0);
    expect(fake.isActive(tokens.refreshToken)).toBe(true);

    await port.up();
    await waitFor(() => !fake.isActive(tokens.accessToken) && !fake.isActive(tokens.refreshToken), 5000, 'revocation');
    await waitFor(() => settled.length === 2, 2000, 'onSettled');
    expect(settled.every((e) => e.outcome === 'revoked')).toBe(true);
  });

  it.each([
    [400, 'REJECTED', JSON.stringify({ error: 'invalid_request' })],
    [401, 'INVALID_CLIENT', JSON.stringify({ error: 'invalid_client' })],
  ])('a %d answer at logout is reported, not queued', async (status, code, body) => {
    const o = outbox();
    const a = app(o);
    const { cookie } = await login(a);
    fake.fail({ type: 'status', status, body });

    await a.logout(cookie).expect(303);
    const { accessToken, refreshToken } = a.events[0]!.revocation;
    expect(accessToken).toMatchObject({ status: 'failed', error: { code, httpStatus: status } });
    expect(accessToken.queued).toBeUndefined();
    expect(refreshToken.queued).toBeUndefined();
    expect(await pending(o)).toBe(0);
    await sleep(400);
    expect(fake.calls).toHaveLength(2); // the logout's own calls, nothing from the outbox
    expect(settled).toEqual([]);
  });

  it("with onRevocationFailure 'fail' nothing is queued and the session is kept", async () => {
    const o = outbox();
    const a = app(o, { logout: { onRevocationFailure: 'fail' } });
    const { sessionId, cookie } = await login(a);
    fake.fail({ type: 'status', status: 503 });
    await a.logout(cookie).expect(502);
    expect(await a.sessionIds()).toContain(sessionId);
    expect(a.events[0]!.revocation.accessToken.queued).toBeUndefined();
    expect(await pending(o)).toBe(0);
  });

  it('a 400 answer to the outbox (the token itself refused) settles the job as rejected, without retrying', async () => {
    const o = outbox();
    const token = issue();
    fake.fail({ type: 'status', status: 400, body: JSON.stringify({ error: 'invalid_grant' }) });
    await o.enqueue(token, 'access_token', { sessionIdHash: '0123456789abcdef' });
    await waitFor(() => settled.length === 1, 5000, 'onSettled');
    expect(settled[0]).toMatchObject({
      tokenType: 'access_token',
      outcome: 'rejected',
      attempts: 1,
      sessionIdHash: '0123456789abcdef',
      error: { code: 'REJECTED', httpStatus: 400 },
    });
    await sleep(400);
    expect(callsFor(token)).toHaveLength(1);
    expect(fake.isActive(token)).toBe(true);
    expect(await pending(o)).toBe(0);
  });

  it('credentials Polar refuses (401 invalid_client) keep the job, retried with the longest backoff, and warn', async () => {
    const wrongSecret = 'polar_cs_wrong_secret_for_this_test_0123456789';
    secrets.add(wrongSecret);
    const before = debugOutput.length;
    const o = outbox({ clientSecret: wrongSecret, encryptionKey: 'k'.repeat(32) });
    const token = issueRefresh();
    await o.enqueue(token, 'refresh_token', {});
    await waitFor(() => callsFor(token).length >= 3, 5000, 'retries with bad credentials');
    const calls = callsFor(token);
    expect(calls.every((c) => c.result === 401 && !c.authenticated)).toBe(true);
    // The longest step (400 ms, jittered down by at most 25 %), not the first (100 ms).
    for (let i = 1; i < calls.length; i += 1) {
      expect(calls[i]!.receivedAt - calls[i - 1]!.answeredAt!).toBeGreaterThanOrEqual(290);
    }
    expect(settled).toEqual([]); // never "rejected": the fault is this worker's, not the token's
    expect(await pending(o)).toBe(1);
    expect(fake.isActive(token)).toBe(true);
    // Warned once per process, with a stable code and what to fix; debug sees every occurrence.
    expect(warned('EPL_OUTBOX_INVALID_CLIENT')).toHaveLength(1);
    expect(warned('EPL_OUTBOX_INVALID_CLIENT')[0]!.message).toMatch(/check clientId, clientSecret/);
    expect(
      debugOutput.slice(before).filter((l) => l.includes('EPL_OUTBOX_INVALID_CLIENT')).length,
    ).toBeGreaterThanOrEqual(2);
    if (redis) {
      // A worker with the right credentials (same encryptionKey) revokes it.
      await o.close();
      const good: OutboxSettledEvent[] = [];
      outbox({ encryptionKey: 'k'.repeat(32), onSettled: (e) => void good.push(e) });
      await waitFor(() => !fake.isActive(token), 5000, 'revocation by a well-configured worker');
      await waitFor(() => good.length === 1, 2000, 'onSettled');
      expect(good[0]).toMatchObject({ outcome: 'revoked', attempts: callsFor(token).length });
    }
  });

  it("maxAgeMs: an access token Polar never confirms is given up as 'abandoned'", async () => {
    const o = outbox({ maxAgeMs: 1200 });
    const token = issue();
    fake.fail({ type: 'status', status: 503 });
    await o.enqueue(token, 'access_token', {});
    await waitFor(() => settled.length === 1, 5000, 'abandonment');
    const [event] = settled;
    expect(event).toMatchObject({
      tokenType: 'access_token',
      outcome: 'abandoned',
      error: { code: 'SERVER_ERROR', httpStatus: 503 },
    });
    expect(event!.sessionIdHash).toBeUndefined();
    expect(event!.attempts).toBe(callsFor(token).length);
    expect(event!.attempts).toBeGreaterThanOrEqual(3);
    const age = Date.parse(event!.settledAt) - Date.parse(event!.queuedAt);
    expect(age).toBeGreaterThanOrEqual(1200);
    expect(age).toBeLessThan(2500);
    const calls = callsFor(token).length;
    await sleep(500);
    expect(callsFor(token)).toHaveLength(calls);
    expect(fake.isActive(token)).toBe(true);
    expect(await pending(o)).toBe(0);
  });

  it('maxAgeMs never gives up on a refresh token: Polar keeps it valid until it is revoked', async () => {
    const o = outbox({ maxAgeMs: 600 });
    const { accessToken, refreshToken } = fake.issueTokens();
    secrets.add(accessToken).add(refreshToken);
    fake.fail({ type: 'status', status: 503 });
    await o.enqueue(refreshToken, 'refresh_token', {});
    await o.enqueue(accessToken, 'access_token', {});
    await waitFor(() => settled.length === 1, 5000, 'the access token abandoned');
    expect(settled[0]).toMatchObject({ tokenType: 'access_token', outcome: 'abandoned' });
    // Well past maxAgeMs the refresh token is still queued and still tried.
    await sleep(1000);
    const callsSoFar = callsFor(refreshToken).length;
    await waitFor(() => callsFor(refreshToken).length > callsSoFar, 3000, 'a later attempt');
    expect(settled).toHaveLength(1);
    expect(await pending(o)).toBe(1);
    fake.heal();
    await waitFor(() => settled.length === 2, 5000, 'the refresh token revoked');
    const event = settled[1]!;
    expect(event).toMatchObject({ tokenType: 'refresh_token', outcome: 'revoked' });
    expect(Date.parse(event.settledAt) - Date.parse(event.queuedAt)).toBeGreaterThan(1200);
    expect(event.attempts).toBe(callsFor(refreshToken).length);
    expect(fake.isActive(refreshToken)).toBe(false);
    expect(await pending(o)).toBe(0);
  });

  it('the same token queued twice is one job', async () => {
    const o = outbox();
    const token = issue();
    fake.fail({ type: 'status', status: 503 });
    await Promise.all([o.enqueue(token, 'access_token', {}), o.enqueue(token, 'access_token', {})]);
    await o.enqueue(token, 'access_token', {});
    expect(await pending(o)).toBe(1);
    if (redis) {
      const keys = await redis.keys('{polar-logout}:revocations-*:rv-*');
      expect(keys.filter((k) => /:rv-[0-9a-f]{32}$/.test(k))).toHaveLength(1);
    }
    await waitFor(() => callsFor(token).length >= 2, 3000, 'retries');
    fake.heal();
    await waitFor(() => settled.length === 1, 5000, 'onSettled');
    await sleep(400);
    expect(settled).toHaveLength(1);
    expect(callsFor(token).filter((c) => c.result === 200)).toHaveLength(1);
  });

  it("honours Polar's Retry-After over its own backoff", async () => {
    const o = outbox();
    const token = issue();
    fake.fail({ type: 'status', status: 503, retryAfter: '2' }, { times: 1 });
    await o.enqueue(token, 'access_token', {});
    await waitFor(() => settled.length === 1, 6000, 'onSettled');
    const [first, second] = callsFor(token);
    expect(first!.result).toBe(503);
    expect(second!.result).toBe(200);
    expect(second!.receivedAt - first!.answeredAt!).toBeGreaterThanOrEqual(1950); // backoff alone: ~100 ms
    expect(settled[0]).toMatchObject({ outcome: 'revoked', attempts: 2 });
  });

  it('spaces attempts exponentially with jitter, capped at maxDelayMs', async () => {
    const o = outbox({ backoff: { initialDelayMs: 100, maxDelayMs: 300 } });
    const token = issue();
    fake.fail({ type: 'status', status: 503 }, { times: 6 });
    await o.enqueue(token, 'access_token', {});
    await waitFor(() => settled.length === 1, 6000, 'onSettled');
    const calls = callsFor(token);
    expect(calls).toHaveLength(7);
    const gaps = calls.slice(1).map((c, i) => c.receivedAt - calls[i]!.answeredAt!);
    // Steps of 100, 200, 300 (capped), 300, ... ms, each ±25 %, never above the cap.
    expect(gaps[0]).toBeGreaterThanOrEqual(70);
    expect(gaps[1]).toBeGreaterThanOrEqual(145);
    expect(gaps[1]! + gaps[2]!).toBeGreaterThan(2 * gaps[0]!);
    for (const gap of gaps.slice(2)) {
      expect(gap).toBeGreaterThanOrEqual(220);
      expect(gap).toBeLessThan(300 + 250); // the cap, plus generous scheduling slack
    }
  });

  it('a throwing onSettled is reported through debug and changes nothing', async () => {
    const o = outbox({
      onSettled: () => {
        throw new Error('audit sink exploded');
      },
    });
    const token = issue();
    fake.fail({ type: 'status', status: 503 }, { times: 1 });
    await o.enqueue(token, 'access_token', {});
    await waitFor(() => !fake.isActive(token), 5000, 'revocation');
    await waitFor(
      () => debugOutput.some((l) => l.includes('onSettled failed: Error: audit sink exploded')),
      2000,
      'debug line',
    );
    await sleep(400);
    expect(callsFor(token)).toHaveLength(2);
    expect(await pending(o)).toBe(0);
  });

  it('keeps at most `concurrency` revocations in flight', async () => {
    const o = outbox({ concurrency: 3 });
    fake.setLatency(150);
    const tokens = Array.from({ length: 9 }, () => issue());
    for (const token of tokens) await o.enqueue(token, 'access_token', {});
    await waitFor(() => tokens.every((t) => !fake.isActive(t)), 8000, 'all revoked');
    expect(fake.maxConcurrent).toBeLessThanOrEqual(3);
    expect(fake.maxConcurrent).toBeGreaterThanOrEqual(2);
  });

  it('refuses bad arguments and works no more after close()', async () => {
    const o = outbox();
    await expect(o.enqueue('', 'access_token', {})).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
    await expect(o.enqueue('x', 'id_token' as never, {})).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
    await o.close();
    await expect(o.enqueue(issue(), 'access_token', {})).rejects.toMatchObject({
      name: 'RevocationOutboxError',
      code: 'OUTBOX_CLOSED',
    });
    await o.close(); // twice is fine
  });

  if (mode === 'memory') {
    it('says at construction, through debug, that it lives in this process only', () => {
      const before = debugOutput.length;
      outbox();
      expect(debugOutput.slice(before).join('\n')).toMatch(/in-memory outbox: .*lost on restart/);
    });
  }

  if (mode === 'redis') {
    it('takes an ioredis client (left open) or ioredis options instead of a URL', async () => {
      const client = new Redis(redis!.url);
      try {
        const viaClient = outbox({ redis: client });
        const viaOptions = outbox({ redis: { host: '127.0.0.1', port: redis!.port } });
        const [a, b] = [issue(), issue()];
        await viaClient.enqueue(a, 'access_token', {});
        await viaOptions.enqueue(b, 'access_token', {});
        await waitFor(() => !fake.isActive(a) && !fake.isActive(b), 5000, 'revocations');
        await viaClient.close();
        await viaOptions.close();
        expect(client.status).toBe('ready');
        expect(await client.ping()).toBe('PONG');
      } finally {
        client.disconnect();
      }
    });

    it('a job sealed under a key this worker lacks stays in Redis, warned about, until a worker with the key revokes it', async () => {
      const [k1, k2] = ['1'.repeat(32), '2'.repeat(32)];
      const inspect = new Redis(redis!.url);
      inspectors.push(inspect);
      const producer = outbox({ worker: false, encryptionKey: k1 });
      const token = issueRefresh();
      await producer.enqueue(token, 'refresh_token', { sessionIdHash: 'abcdef0123456789' });
      const [jobKey] = (await redis!.keys('{polar-logout}:revocations-*:rv-*')).filter((k) =>
        /:rv-[0-9a-f]{32}$/.test(k),
      );
      expect(jobKey).toBeDefined();
      const queueKey = jobKey!.slice(0, jobKey!.lastIndexOf(':'));
      const jobId = jobKey!.slice(queueKey.length + 1);

      const before = debugOutput.length;
      const wrong = outbox({ encryptionKey: k2 });
      await waitFor(
        () => debugOutput.slice(before).some((l) => l.includes('attempt 0 failed (UNREADABLE_JOB)')),
        5000,
        'the worker without the key to try it',
      );
      await wrong.close();
      // Kept: the job's hash is still there, delayed for a later try, not completed nor failed for good.
      expect(await inspect.exists(jobKey!)).toBe(1);
      expect(await inspect.zscore(`${queueKey}:delayed`, jobId)).not.toBeNull();
      expect(await inspect.zscore(`${queueKey}:failed`, jobId)).toBeNull();
      expect(await inspect.hget(jobKey!, 'failedReason')).toBe('revocation failed: UNREADABLE_JOB; calls: 0');
      expect(settled).toEqual([]);
      expect(fake.calls).toHaveLength(0);
      const [warning] = warned('EPL_OUTBOX_UNREADABLE_JOB');
      expect(warning).toBeDefined();
      expect(warning!.message).toMatch(/encryptionKey: \[newKey, oldKey\]/);
      for (const key of [k1, k2]) expect(warning!.message).not.toContain(key);

      // A worker that lists both keys (the new one first) opens it and revokes it at Polar.
      const ring = outbox({ encryptionKey: [k2, k1] });
      await waitFor(() => !fake.isActive(token), 5000, 'revocation by the worker with the keyring');
      await waitFor(() => settled.length === 1, 2000, 'onSettled');
      expect(settled[0]).toMatchObject({
        tokenType: 'refresh_token',
        outcome: 'revoked',
        attempts: 1, // the runs that could not open it made no call
        sessionIdHash: 'abcdef0123456789',
      });
      expect(callsFor(token)).toEqual([expect.objectContaining({ result: 200, authenticated: true })]);
      await waitFor(async () => (await inspect.exists(jobKey!)) === 0, 3000, 'the job removed once done');
      expect(await pending(ring)).toBe(0);
    });

    it('with the same encryptionKey, a job queued by one outbox is revoked by another', async () => {
      const key = Buffer.alloc(32, 9);
      const producer = outbox({ worker: false, encryptionKey: key });
      const token = issue();
      await producer.enqueue(token, 'access_token', { sessionIdHash: '0123456789abcdef' });
      await sleep(300);
      expect(fake.isActive(token)).toBe(true);
      expect(await pending(producer)).toBe(1);
      // A second, independent instance with its own connections and worker, as another process would have.
      const other: OutboxSettledEvent[] = [];
      const consumer = outbox({ encryptionKey: Buffer.from(key), onSettled: (e) => void other.push(e) });
      await waitFor(() => !fake.isActive(token), 5000, 'revocation by the other outbox');
      await waitFor(() => other.length === 1, 2000, "the other outbox's onSettled");
      expect(other[0]).toMatchObject({ outcome: 'revoked', attempts: 1, sessionIdHash: '0123456789abcdef' });
      expect(settled).toEqual([]); // the producer ran no worker, so its hook saw nothing
      expect(callsFor(token)).toHaveLength(1);
      // onSettled runs inside the job's run: the job leaves Redis just after it.
      await waitFor(async () => (await pending(consumer)) === 0, 3000, 'the job removed once done');
      expect(await pending(producer)).toBe(0);
    });
  }
}

describe('in-memory outbox', () => suite('memory'));
describeWithRedis('Redis outbox (BullMQ)', () => suite('redis'));

afterAll(() => {
  warned('');
  emitWarning.mockRestore();
  // Nothing the tests handled leaked into debug output, audit events, settled events, errors or warnings.
  const everything = [...debugOutput, ...seen, ...warnings.map((w) => `${w.message} ${String(w.code)}`)].join('\n');
  for (const secret of secrets) expect(everything).not.toContain(secret);
});
