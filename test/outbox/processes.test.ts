/**
 * Durability across real processes on a real redis-server: an app killed with SIGKILL, a worker killed in
 * the middle of a call, a web process that only enqueues and a worker process (the bin) that drains.
 * The children load the library bundled from the same sources (see support/children.ts).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRevocationOutbox, type RevocationOutbox } from '../../lib';
import { lockTimings } from '../../lib/outbox/bullmq-queue';
import { startFakePolar, type FakePolar, type FakeTokenPair } from '../../lib/testing';
import { sleep, waitFor } from './support/app';
import { bundleLibrary, startChild, type Bundle, type Child } from './support/children';
import { describeWithRedis, startRedisServer, type RedisServer } from '../support/redis-server';

const FIXTURES = path.join(__dirname, 'fixtures');
// The children's per-call budget: lock 2 s, stall check 1 s. OUTBOX_TEST_TIMEOUT_MS=5000 measures the defaults.
const TIMEOUT_MS = Number(process.env.OUTBOX_TEST_TIMEOUT_MS ?? 1000);

describeWithRedis('the Redis outbox across processes', () => {
  let bundle: Bundle;
  let redis: RedisServer;
  let fake: FakePolar;
  const children: Child[] = [];
  const outboxes: RevocationOutbox[] = [];
  const secrets = new Set<string>();

  beforeAll(async () => {
    [bundle, redis] = await Promise.all([bundleLibrary(), startRedisServer()]);
  });
  afterAll(async () => {
    bundle.remove();
    await redis.stop();
  });
  beforeEach(async () => {
    fake = await startFakePolar();
    secrets.add(fake.clientSecret);
  });
  afterEach(async () => {
    // Nothing secret in anything a child printed (debug output included).
    for (const child of children) {
      const output = child.output();
      for (const secret of secrets) expect(output).not.toContain(secret);
    }
    await Promise.all(children.splice(0).map((c) => c.kill('SIGKILL')));
    await Promise.all(outboxes.splice(0).map((o) => o.close()));
    await fake.close();
  });

  const polarEnv = (): Record<string, string> => ({
    POLAR_CLIENT_ID: fake.clientId,
    POLAR_CLIENT_SECRET: fake.clientSecret,
    POLAR_BASE_URL: fake.url,
    REDIS_URL: redis.url,
  });

  async function webApp(worker: boolean): Promise<{ child: Child; url: string }> {
    const child = startChild(path.join(FIXTURES, 'web-app.cjs'), {
      ...polarEnv(),
      EPL_DIST: bundle.cjs,
      OUTBOX_WORKER: String(worker),
      OUTBOX_TIMEOUT_MS: String(TIMEOUT_MS),
    });
    children.push(child);
    const { port } = await child.waitFor((r) => r.type === 'listening', 15_000, 'the app to listen');
    return { child, url: `http://127.0.0.1:${String(port)}` };
  }

  async function workerBin(): Promise<Child> {
    const child = startChild(bundle.bin, {
      ...polarEnv(),
      POLAR_OUTBOX_TIMEOUT_MS: String(TIMEOUT_MS),
      POLAR_OUTBOX_BACKOFF_INITIAL_MS: '200',
      POLAR_OUTBOX_BACKOFF_MAX_MS: '1000',
    });
    children.push(child);
    await child.waitFor((r) => r.msg === 'worker ready', 15_000, 'the worker to be ready');
    return child;
  }

  /** Logs in at the child app and logs out; returns the tokens and the logout's audit event. */
  async function loginAndLogout(app: {
    child: Child;
    url: string;
  }): Promise<{ tokens: FakeTokenPair; event: Record<string, unknown> }> {
    const tokens = fake.issueTokens();
    secrets.add(tokens.accessToken).add(tokens.refreshToken);
    const login = await fetch(`${app.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(tokens),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.getSetCookie()[0]!.split(';', 1)[0]!;
    const sessionId = decodeURIComponent(cookie.split('=')[1]!).slice(2).split('.')[0]!;
    secrets.add(sessionId).add(cookie);

    const started = Date.now();
    const logout = await fetch(`${app.url}/logout`, { method: 'POST', headers: { cookie }, redirect: 'manual' });
    expect(logout.status).toBe(303);
    expect(Date.now() - started).toBeLessThan(2000);
    const { event } = (await app.child.waitFor((r) => r.type === 'logout', 5000, 'the audit event')) as {
      event: Record<string, unknown>;
    };
    return { tokens, event };
  }

  const callsFor = (token: string) => fake.calls.filter((c) => c.token === token);
  const inactive = (tokens: FakeTokenPair) => () =>
    !fake.isActive(tokens.accessToken) && !fake.isActive(tokens.refreshToken);

  it('a token queued by an app killed with SIGKILL is revoked by the next process on the same Redis', async () => {
    fake.fail({ type: 'status', status: 503 });
    const first = await webApp(true);
    const { tokens, event } = await loginAndLogout(first);
    const revocation = event.revocation as Record<string, { status: string; queued?: boolean }>;
    expect(revocation.accessToken).toMatchObject({ status: 'failed', queued: true });
    expect(revocation.refreshToken).toMatchObject({ status: 'failed', queued: true });
    await waitFor(() => callsFor(tokens.accessToken).length >= 3, 5000, 'an outbox attempt');

    // What sits in Redis while Polar is down holds no token, secret or session id in clear.
    const dump = await redis.dump();
    expect(dump).toMatch(/\{polar-logout\}:revocations-[0-9a-f]{16}:rv-[0-9a-f]{32}/);
    for (const secret of secrets) expect(dump).not.toContain(secret);

    await first.child.kill('SIGKILL');
    fake.heal();
    expect(fake.isActive(tokens.accessToken)).toBe(true);

    const second = await webApp(true);
    const took = await waitFor(inactive(tokens), 20_000, 'revocation by the new process');
    const settled = await second.child.waitFor((r) => r.type === 'settled', 5000, 'onSettled in the new process');
    expect(settled.event).toMatchObject({ outcome: 'revoked', sessionIdHash: event.sessionIdHash });
    console.log(`SIGKILLed app: revoked ${took} ms after the new process listened`);
  });

  /** A web process's outbox: enqueues into the shared Redis, runs no worker; closed after the test. */
  function producerOutbox(): ReturnType<typeof createRevocationOutbox> {
    const producer = createRevocationOutbox({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      redis: redis.url,
      worker: false,
    });
    outboxes.push(producer);
    return producer;
  }

  it('a worker killed in the middle of a call leaves the job to the next worker, within lock + stall check', async () => {
    const producer = producerOutbox();
    const tokens = fake.issueTokens();
    secrets.add(tokens.accessToken).add(tokens.refreshToken);
    fake.fail({ type: 'hang' }, { times: 1 });

    const first = await workerBin();
    await producer.enqueue(tokens.refreshToken, 'refresh_token', {});
    await waitFor(() => callsFor(tokens.refreshToken).some((c) => c.result === 'hang'), 5000, 'the call to hang');
    expect(await producer.counts()).toMatchObject({ active: 1 });

    await first.kill('SIGKILL');
    const killedAt = Date.now();
    const second = await workerBin();
    await waitFor(inactive(tokens), 20_000, 'revocation by the second worker');
    const took = Date.now() - killedAt;
    const { lockDuration, stalledInterval } = lockTimings(TIMEOUT_MS);
    // The lock expires, the stall check (at the new worker's start, then every interval) takes the job back.
    expect(took).toBeLessThan(lockDuration + 2 * stalledInterval + 4000);
    const settled = await second.waitFor((r) => r.msg === 'revocation settled', 5000, 'the settled line');
    expect(settled).toMatchObject({ outcome: 'revoked', tokenType: 'refresh_token' });
    expect(callsFor(tokens.refreshToken).map((c) => c.result)).toEqual(['hang', 200]);
    // onSettled runs just before the job is marked done in Redis.
    await waitFor(
      async () => JSON.stringify(await producer.counts()) === '{"waiting":0,"delayed":0,"active":0}',
      3000,
      'the job to complete',
    );
    console.log(
      `worker SIGKILLed mid-call: revoked ${took} ms after the kill (lock ${lockDuration} ms, stall check ${stalledInterval} ms)`,
    );
  });

  it('a web process with worker: false only enqueues; the worker bin drains, and stops cleanly on SIGTERM', async () => {
    fake.fail({ type: 'status', status: 503 });
    const web = await webApp(false);
    const { tokens, event } = await loginAndLogout(web);
    expect((event.revocation as Record<string, { queued?: boolean }>).accessToken!.queued).toBe(true);
    fake.heal();
    await sleep(1500);
    expect(fake.isActive(tokens.accessToken)).toBe(true);
    expect(callsFor(tokens.accessToken)).toHaveLength(2); // the logout's own, nothing since
    const producer = producerOutbox();
    expect(await producer.counts()).toEqual({ waiting: 2, delayed: 0, active: 0 });

    const worker = await workerBin();
    await waitFor(inactive(tokens), 10_000, 'the worker to drain');
    await waitFor(
      () => worker.records.filter((r) => r.msg === 'revocation settled').length === 2,
      5000,
      'two settled lines',
    );
    for (const line of worker.records.filter((r) => r.msg === 'revocation settled')) {
      expect(line).toMatchObject({
        level: 'info',
        outcome: 'revoked',
        attempts: 1,
        sessionIdHash: event.sessionIdHash,
      });
    }
    expect(web.child.records.some((r) => r.type === 'settled')).toBe(false);

    await worker.kill('SIGTERM');
    expect(worker.process.exitCode).toBe(0);
    expect(worker.records.some((r) => r.msg === 'worker stopped')).toBe(true);
  });

  it('the worker bin refuses bad settings with a message naming the option, and exits 2', async () => {
    const child = startChild(bundle.bin, { ...polarEnv(), POLAR_CLIENT_SECRET: '', POLAR_OUTBOX_CONCURRENCY: '10' });
    children.push(child);
    expect(await child.exited()).toBe(2);
    expect(child.records[0]).toMatchObject({
      level: 'error',
      msg: expect.stringContaining('option `clientSecret`') as string,
    });
    const noRedis = startChild(bundle.bin, { ...polarEnv(), REDIS_URL: '' });
    children.push(noRedis);
    expect(await noRedis.exited()).toBe(2);
    expect(noRedis.records[0]!.msg).toMatch(/REDIS_URL is required/);
  });

  it('loads bullmq and ioredis only for Redis, in CommonJS and as an ES module', async () => {
    const cjs = startChild(path.join(FIXTURES, 'lazy-load.cjs'), { EPL_DIST: bundle.cjs, REDIS_URL: redis.url });
    const esm = startChild(path.join(FIXTURES, 'esm-enqueue.mjs'), {
      EPL_DIST_ESM: pathToFileURL(bundle.esm).href,
      REDIS_URL: redis.url,
    });
    children.push(cjs, esm);
    expect(await cjs.exited()).toBe(0);
    expect(cjs.records[0]).toEqual({
      afterMemory: { bullmq: false, ioredis: false },
      afterRedis: { bullmq: true, ioredis: true },
    });
    expect(await esm.exited()).toBe(0);
    expect(esm.records[0]).toEqual({ mode: 'redis', counts: { waiting: 1, delayed: 0, active: 0 } });
  });

  it('without bullmq and ioredis installed, the memory outbox works and a Redis one is refused at construction', async () => {
    const child = startChild(path.join(FIXTURES, 'missing-peers.cjs'), { EPL_DIST: bundle.cjs });
    children.push(child);
    expect(await child.exited()).toBe(0);
    expect(child.records[0]).toEqual({
      memory: 'ok',
      error: {
        name: 'PolarLogoutError',
        code: 'INVALID_OPTION',
        message:
          'express-polar-logout: option `redis` needs bullmq and ioredis for the Redis outbox (optional peers of express-polar-logout, not installed): npm install bullmq ioredis.',
      },
    });
  });
});
