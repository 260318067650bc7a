/**
 * Issue 12 §1: the budget or the caller's AbortSignal firing at any point of the retry loop (during a request,
 * between the answer and the next attempt, during a Retry-After wait, before the first attempt) must never leave an
 * unhandled rejection (it crashed the process and printed the axios error, request body and secret included), must
 * send nothing once aborted, and `attempts` must equal the calls Polar received.
 *
 * A tiny server stands in for Polar here because each request needs its own delay and answer (503 with
 * `Retry-After: 0` after 2–12 ms, a hang, ...) and each token its own count of calls received.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPolarRevoker, type PolarRevoker, type TokenOutcome } from '../lib';
import { startFakePolar, type FakePolar } from '../lib/testing';
import { trackUnhandled, type UnhandledTracker } from './reliability/support/process';

/** How the server answers one call: after `delayMs`, with `status` (and Retry-After), or never. */
type Answer = { delayMs: number; status: number; retryAfter?: string } | 'hang';

interface PlannedServer {
  url: string;
  /** Calls received per token: counted once the whole request has arrived, as Polar would act on it. */
  received: Map<string, number>;
  plan(token: string, answer: (call: number) => Answer): void;
  /**
   * Resolves once every connection is closed, so every byte sent has been read and counted. Close the client
   * first: its keep-alive connections would stay open.
   */
  settle(): Promise<void>;
  close(): Promise<void>;
}

async function startPlannedServer(): Promise<PlannedServer> {
  const received = new Map<string, number>();
  const plans = new Map<string, (call: number) => Answer>();
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    let body = '';
    let counted = false;
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    // A request that arrived whole is received, even when the client hung up at once: Node then destroys it
    // before 'end' (data and FIN in one read), so 'close' with `complete` counts too.
    const arrived = (): void => {
      if (counted) return;
      counted = true;
      if (!req.complete) return; // cut off before the end: never received
      const token = new URLSearchParams(body).get('token') ?? '';
      const call = (received.get(token) ?? 0) + 1;
      received.set(token, call);
      const answer = plans.get(token)?.(call) ?? { delayMs: 0, status: 200 };
      if (answer === 'hang' || res.destroyed) return;
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (res.destroyed) return;
        const headers: Record<string, string> = { 'Content-Type': 'application/json' };
        if (answer.retryAfter !== undefined) headers['Retry-After'] = answer.retryAfter;
        res.writeHead(answer.status, headers).end(answer.status === 200 ? '{}' : '{"error":"server_error"}');
      }, answer.delayMs);
      timers.add(timer);
    };
    req.on('end', arrived);
    req.on('close', arrived);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    plan: (token, answer) => void plans.set(token, answer),
    async settle() {
      const open = (): Promise<number> =>
        new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
      for (let i = 0; i < 500 && (await open()) > 0; i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(await open()).toBe(0);
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A seeded generator: a failing run can be replayed with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function pool<T>(count: number, size: number, work: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: size }, async () => {
      while (next < count) {
        const index = next++;
        results[index] = await work(index);
      }
    }),
  );
  return results;
}

const CLIENT = { clientId: 'polar_ci_abort', clientSecret: 'polar_cs_abort_SECRET_abort' };

let unhandled: UnhandledTracker;
beforeEach(() => {
  unhandled = trackUnhandled();
});
afterEach(() => unhandled.stop());

describe('revocations cancelled at every point of the retry loop', () => {
  let server: PlannedServer;
  let revoker: PolarRevoker;
  beforeAll(async () => {
    server = await startPlannedServer();
    revoker = createPolarRevoker({ ...CLIENT, baseUrl: server.url });
    // Warm up (module loading, JIT): a cold first batch takes longer than the budgets below.
    await Promise.all(Array.from({ length: 20 }, (_, i) => revoker.revoke({ accessToken: `warm_${i}` })));
  });
  afterAll(async () => {
    revoker.close();
    await server.close();
  });

  type Scenario = 'budget-503-ra0' | 'budget-backoff' | 'signal-anytime' | 'pre-aborted' | 'signal-in-wait' | 'hang';
  const SCENARIOS: readonly Scenario[] = [
    'budget-503-ra0',
    'budget-backoff',
    'signal-anytime',
    'pre-aborted',
    'signal-in-wait',
    'hang',
  ];
  interface Run {
    scenario: Scenario;
    tokens: [string, string];
    outcomes: [TokenOutcome, TokenOutcome];
    /** From the start, or from the abort when the caller aborted, to the outcome. */
    elapsedMs: number;
    limitMs: number;
  }

  it('~2000 revocations: no unhandled rejection, nothing sent once aborted, attempts == calls received', async () => {
    const seed = Date.now() % 1_000_000;
    const random = prng(seed);
    const between = (min: number, max: number): number => Math.round(min + random() * (max - min));
    const COUNT = 2100;

    const runs = await pool(COUNT, 20, async (i): Promise<Run> => {
      const scenario = SCENARIOS[i % SCENARIOS.length]!;
      const tokens: [string, string] = [`at_${seed}_${i}`, `rt_${seed}_${i}`];
      let timeoutMs = 5000;
      let retries = 10;
      let abortAfterMs: number | undefined;
      let answer: (call: number) => Answer;
      const controller = new AbortController();
      let abortedAt: number | undefined;
      const abort = (): void => {
        if (abortedAt !== undefined) return;
        abortedAt = performance.now();
        controller.abort();
      };
      switch (scenario) {
        case 'budget-503-ra0': // the issue's second reproduction: the budget ends anywhere, often in the 0 ms wait
          timeoutMs = between(15, 120);
          answer = () => ({ delayMs: between(2, 12), status: 503, retryAfter: '0' });
          break;
        case 'budget-backoff': // backoff waits of 50–1000 ms against budgets they may or may not fit
          timeoutMs = between(30, 400);
          answer = () => ({ delayMs: between(0, 20), status: 503 });
          break;
        case 'signal-anytime': // the caller aborts at any time: before, during or between attempts
          abortAfterMs = between(0, 150);
          answer = () => ({ delayMs: between(0, 20), status: 503, ...(random() < 0.5 ? { retryAfter: '0' } : {}) });
          break;
        case 'pre-aborted':
          abortAfterMs = -1;
          answer = () => ({ delayMs: 0, status: 200 });
          break;
        case 'signal-in-wait': // the caller aborts during a Retry-After: 1 wait, 5–40 ms after the first answer
          answer = (call) => {
            if (call === 1) setTimeout(abort, between(5, 40));
            return { delayMs: 0, status: 503, retryAfter: '1' };
          };
          break;
        case 'hang':
          timeoutMs = between(5, 60);
          retries = 1;
          answer = () => 'hang';
          break;
      }
      for (const token of tokens) server.plan(token, answer);

      if (abortAfterMs === -1) abort();
      const timer = abortAfterMs === undefined ? undefined : setTimeout(abort, abortAfterMs);
      const started = performance.now();
      try {
        const result = await revoker.revoke(
          { accessToken: tokens[0], refreshToken: tokens[1] },
          { timeoutMs, retries, signal: controller.signal },
        );
        const ended = performance.now();
        return {
          scenario,
          tokens,
          outcomes: [result.accessToken, result.refreshToken],
          elapsedMs: ended - (abortedAt ?? started),
          limitMs: abortedAt === undefined ? timeoutMs : 0,
        };
      } finally {
        clearTimeout(timer);
      }
    });
    revoker.close();
    await server.settle();

    const problems: string[] = [];
    let sent = 0;
    for (const run of runs) {
      run.tokens.forEach((token, k) => {
        const outcome = run.outcomes[k]!;
        const received = server.received.get(token) ?? 0;
        sent += received;
        const where = `seed ${seed}, ${run.scenario}, ${token}`;
        if (outcome.status !== 'failed') problems.push(`${where}: ${outcome.status}`);
        if (outcome.attempts !== received)
          problems.push(`${where}: attempts ${outcome.attempts}, received ${received}`);
        if (run.scenario === 'pre-aborted' && (received !== 0 || outcome.error?.code !== 'ABORTED')) {
          problems.push(`${where}: ${JSON.stringify(outcome)} after ${received} calls`);
        }
        // One call, then the wait the abort ends (or, on a slow machine, the abort lands before the 503 does).
        if (run.scenario === 'signal-in-wait' && (received !== 1 || outcome.error?.code === 'TIMEOUT')) {
          problems.push(`${where}: ${JSON.stringify(outcome)} after ${received} calls`);
        }
      });
      // Generous (the machine is shared), but shorter than the 1 s Retry-After: no wait outlives the budget or signal.
      if (run.elapsedMs > run.limitMs + 750) problems.push(`${run.scenario}: ${Math.round(run.elapsedMs)} ms late`);
    }
    expect(problems.slice(0, 20)).toEqual([]);
    expect(unhandled.descriptions).toEqual([]);
    // The runs did what they are for: many calls went out, and cancellation happened at many points.
    expect(runs).toHaveLength(COUNT);
    expect(sent).toBeGreaterThan(COUNT);
    const codes = new Set(runs.flatMap((r) => r.outcomes.map((o) => o.error?.code)));
    expect([...codes].sort()).toEqual(['ABORTED', 'SERVER_ERROR', 'TIMEOUT']);
  }, 180_000);

  it('the issue reproduction: timeoutMs 60, retries 10, 503 Retry-After: 0 after 2–12 ms, 20 concurrent', async () => {
    const random = prng(12);
    for (let round = 0; round < 10; round += 1) {
      const client = createPolarRevoker({ ...CLIENT, baseUrl: server.url, timeoutMs: 60, retries: 10 });
      const pairs = Array.from({ length: 20 }, (_, i) => [`r2_${round}_${i}_a`, `r2_${round}_${i}_r`] as const);
      for (const token of pairs.flat()) {
        server.plan(token, () => ({ delayMs: 2 + Math.round(random() * 10), status: 503, retryAfter: '0' }));
      }
      const results = await Promise.all(
        pairs.map(([accessToken, refreshToken]) => client.revoke({ accessToken, refreshToken })),
      );
      client.close();
      await server.settle();
      const mismatched = results.filter((result, i) => {
        const [a, r] = pairs[i]!;
        return (
          result.accessToken.attempts !== (server.received.get(a) ?? 0) ||
          result.refreshToken.attempts !== (server.received.get(r) ?? 0)
        );
      });
      expect(mismatched).toEqual([]);
    }
    expect(unhandled.descriptions).toEqual([]);
  }, 60_000);
});

describe('against the stand-in', () => {
  let fake: FakePolar;
  beforeEach(async () => {
    fake = await startFakePolar();
  });
  afterEach(() => fake.close());

  it('the issue reproduction: timeoutMs 200 with Polar answering 503 Retry-After: 0 after ~195 ms', async () => {
    const client = createPolarRevoker({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      timeoutMs: 200,
    });
    fake.fail({ type: 'status', status: 503, retryAfter: '0' });
    let attempts = 0;
    try {
      for (let round = 0; round < 6; round += 1) {
        const results = await Promise.all(
          Array.from({ length: 5 }, (_, i) => {
            fake.setLatency(190 + ((round * 5 + i) % 8)); // 190–197 ms: the answer lands just before the budget
            return client.revoke(fake.issueTokens());
          }),
        );
        attempts += results.reduce((n, r) => n + r.accessToken.attempts + r.refreshToken.attempts, 0);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      client.close();
    }
    expect(unhandled.descriptions).toEqual([]);
    expect(attempts).toBe(fake.calls.length);
  }, 30_000);

  it('a pre-aborted signal sends nothing and reports ABORTED with 0 attempts', async () => {
    const client = createPolarRevoker({ clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url });
    const pair = fake.issueTokens();
    try {
      const result = await client.revoke(pair, { signal: AbortSignal.abort() });
      const single = await client.revokeToken(pair.refreshToken, 'refresh_token', { signal: AbortSignal.abort() });
      expect(result.accessToken).toMatchObject({ status: 'failed', attempts: 0, error: { code: 'ABORTED' } });
      expect(result.refreshToken).toMatchObject({ status: 'failed', attempts: 0, error: { code: 'ABORTED' } });
      expect(single).toMatchObject({ status: 'failed', attempts: 0, error: { code: 'ABORTED' } });
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      client.close();
    }
    expect(fake.calls).toHaveLength(0);
    expect(fake.connections).toBe(0);
    expect(fake.isActive(pair.accessToken)).toBe(true);
    expect(unhandled.descriptions).toEqual([]);
  });

  it('a signal aborted during a Retry-After wait ends the wait and sends nothing more', async () => {
    const client = createPolarRevoker({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      timeoutMs: 5000,
      retries: 3,
    });
    fake.fail({ type: 'status', status: 503, retryAfter: '2' });
    const controller = new AbortController();
    const started = performance.now();
    const pending = client.revoke(fake.issueTokens(), { signal: controller.signal });
    while (fake.calls.filter((c) => c.answeredAt !== undefined).length < 2) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // The stand-in has answered; give the client time to read both answers and start its 2 s wait (a loaded
    // machine may take a while), so that the abort lands in the wait and not on a request still being read.
    await new Promise((resolve) => setTimeout(resolve, 300));
    controller.abort();
    try {
      const result = await pending;
      expect(performance.now() - started).toBeLessThan(1800); // not the 2 s wait
      for (const outcome of [result.accessToken, result.refreshToken]) {
        // Polar's last answer is the reason; the cancellation that followed sent nothing.
        expect(outcome).toMatchObject({
          status: 'failed',
          attempts: 1,
          error: { code: 'SERVER_ERROR', httpStatus: 503 },
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      client.close();
    }
    expect(fake.calls).toHaveLength(2);
    expect(unhandled.descriptions).toEqual([]);
  });
});
