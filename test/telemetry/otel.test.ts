/**
 * OpenTelemetry, end to end: a real app and the real stand-in, with a real SDK registered. Every logout outcome,
 * every kind of fault at Polar and every outbox path produces the documented metrics and spans, with the
 * documented attributes, and nothing else.
 */
import session from 'express-session';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import request from 'supertest';
import { createRevocationOutbox, type OutboxSettledEvent, type RevocationOutbox } from '../../lib';
import { recordThrottled } from '../../lib/telemetry';
import type { FakeFault } from '../../lib/testing';
import { createHarness, sleep, type Harness } from '../support/harness';
import { attributeSets, installOtel, total, type Point, type TestOtel } from './support/otel';

const LOGOUTS = 'polar_logout.logouts';
const LOGOUT_DURATION = 'polar_logout.logout.duration';
const REQUESTS = 'polar_logout.revocation.requests';
const REQUEST_DURATION = 'polar_logout.revocation.duration';
const SETTLEMENTS = 'polar_logout.outbox.settlements';
const JOBS = 'polar_logout.outbox.jobs';

let otel: TestOtel;
beforeAll(() => {
  otel = installOtel();
});
afterAll(() => otel.shutdown());

function byName(spans: ReadableSpan[], name: string): ReadableSpan[] {
  return spans.filter((s) => s.name === name);
}

/** The logout span and the revoke spans, checking that every revoke span is its child. */
function logoutTree(spans: ReadableSpan[]): { logout: ReadableSpan; revokes: ReadableSpan[] } {
  const logouts = byName(spans, 'polar_logout.logout');
  expect(logouts).toHaveLength(1);
  const logout = logouts[0]!;
  const revokes = byName(spans, 'polar_logout.revoke');
  for (const revoke of revokes) {
    expect(revoke.parentSpanContext?.spanId).toBe(logout.spanContext().spanId);
    expect(revoke.spanContext().traceId).toBe(logout.spanContext().traceId);
  }
  return { logout, revokes };
}

describe('logouts with an OpenTelemetry SDK registered', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ logout: { retries: 1, timeoutMs: 600 } });
  });
  afterAll(() => h.close());
  beforeEach(async () => {
    h.fake.heal();
    h.fake.resetCalls();
    await otel.collect();
    otel.takeSpans();
  });

  it('a successful logout: one logout, two revocation requests, a logout span with a child span per request', async () => {
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    const points = await otel.collect();

    expect(attributeSets(points, LOGOUTS)).toEqual([
      { 'polar_logout.outcome': 'logged_out', 'polar_logout.scope': 'session' },
    ]);
    const duration = points.find((p) => p.name === LOGOUT_DURATION)!;
    expect(duration).toMatchObject({ unit: 's', value: 1 });
    expect(duration.sum).toBeGreaterThan(0);
    expect(duration.sum).toBeLessThan(10); // seconds, not ms
    expect(
      attributeSets(points, REQUESTS).sort((a, b) =>
        String(a['polar_logout.token_type']).localeCompare(String(b['polar_logout.token_type'])),
      ),
    ).toEqual([
      { 'polar_logout.token_type': 'access_token', 'polar_logout.outcome': 'revoked' },
      { 'polar_logout.token_type': 'refresh_token', 'polar_logout.outcome': 'revoked' },
    ]);
    expect(total(points, REQUEST_DURATION)).toBe(2);
    expect(points.find((p) => p.name === REQUEST_DURATION)!.unit).toBe('s');

    const { logout, revokes } = logoutTree(otel.takeSpans());
    expect(logout.kind).toBe(SpanKind.INTERNAL);
    expect(logout.status.code).toBe(SpanStatusCode.UNSET);
    expect(logout.attributes).toEqual({
      'polar_logout.outcome': 'logged_out',
      'polar_logout.scope': 'session',
      'polar_logout.access_token.status': 'revoked',
      'polar_logout.refresh_token.status': 'revoked',
    });
    expect(revokes).toHaveLength(2);
    const port = Number(new URL(h.fake.url).port);
    for (const revoke of revokes) {
      expect(revoke.kind).toBe(SpanKind.CLIENT);
      expect(revoke.status.code).toBe(SpanStatusCode.UNSET);
      expect(revoke.attributes).toEqual({
        'polar_logout.token_type': expect.stringMatching(/^(access|refresh)_token$/),
        'polar_logout.attempt': 1,
        'polar_logout.outcome': 'revoked',
        'http.request.method': 'POST',
        'server.address': '127.0.0.1',
        'server.port': port,
      });
    }
    // What the stand-in received matches what the spans say.
    expect(h.fake.calls).toHaveLength(2);
  });

  const faults: Array<{ name: string; fault: FakeFault; code: string; status?: number; attempts: number }> = [
    { name: '503', fault: { type: 'status', status: 503 }, code: 'SERVER_ERROR', status: 503, attempts: 2 },
    {
      name: '429',
      fault: { type: 'status', status: 429, retryAfter: '0' },
      code: 'RATE_LIMITED',
      status: 429,
      attempts: 2,
    },
    {
      name: '400',
      fault: { type: 'status', status: 400, body: '{"error":"invalid_request"}' },
      code: 'REJECTED',
      status: 400,
      attempts: 1,
    },
    {
      name: '401 invalid_client',
      fault: { type: 'status', status: 401, body: '{"error":"invalid_client"}' },
      code: 'INVALID_CLIENT',
      status: 401,
      attempts: 1,
    },
    {
      name: 'an HTML page',
      fault: { type: 'status', status: 200, contentType: 'text/html', body: '<html>' },
      code: 'UNEXPECTED_RESPONSE',
      status: 200,
      attempts: 1,
    },
    { name: 'a reset connection', fault: { type: 'reset' }, code: 'NETWORK_ERROR', attempts: 2 },
    { name: 'no answer', fault: { type: 'hang' }, code: 'TIMEOUT', attempts: 1 },
  ];

  it.each(faults)(
    'Polar fault "$name": $code on every request and span, the logout still logged out',
    async ({ fault, code, status, attempts }) => {
      h.fake.fail(fault);
      const { cookie } = await h.login();
      await h.post(cookie).expect(303);
      const points = await otel.collect();

      expect(attributeSets(points, LOGOUTS)).toEqual([
        { 'polar_logout.outcome': 'logged_out', 'polar_logout.scope': 'session' },
      ]);
      const failed = {
        'polar_logout.outcome': 'failed',
        'error.type': code,
        ...(status === undefined ? {} : { 'http.response.status_code': status }),
      };
      expect(total(points, REQUESTS, { ...failed, 'polar_logout.token_type': 'access_token' })).toBe(attempts);
      expect(total(points, REQUESTS, { ...failed, 'polar_logout.token_type': 'refresh_token' })).toBe(attempts);
      expect(total(points, REQUESTS)).toBe(2 * attempts);
      for (const attributes of attributeSets(points, REQUESTS)) {
        expect(Object.keys(attributes).sort()).toEqual(
          Object.keys({ ...failed, 'polar_logout.token_type': '' }).sort(),
        );
      }

      const { logout, revokes } = logoutTree(otel.takeSpans());
      expect(logout.attributes).toMatchObject({
        'polar_logout.outcome': 'logged_out',
        'polar_logout.access_token.status': 'failed',
        'polar_logout.refresh_token.status': 'failed',
      });
      expect(logout.attributes['error.type']).toBeUndefined();
      expect(revokes).toHaveLength(2 * attempts);
      expect(revokes.map((s) => s.attributes['polar_logout.attempt']).sort()).toEqual(
        [1, 1, 2, 2].slice(0, 2 * attempts).sort(),
      );
      for (const revoke of revokes) {
        expect(revoke.status.code).toBe(SpanStatusCode.ERROR);
        expect(revoke.attributes).toMatchObject(failed);
      }
      if (fault.type !== 'hang') expect(h.fake.calls).toHaveLength(2 * attempts);
    },
  );

  it('a logout with no tokens in the session: logged out, no request, no revoke span', async () => {
    const { cookie } = await h.login({ user: 'ada' });
    await h.post(cookie).expect(303);
    const points = await otel.collect();
    expect(total(points, LOGOUTS, { 'polar_logout.outcome': 'logged_out' })).toBe(1);
    expect(total(points, REQUESTS)).toBe(0);
    const { logout, revokes } = logoutTree(otel.takeSpans());
    expect(revokes).toEqual([]);
    expect(logout.attributes['polar_logout.access_token.status']).toBe('absent');
  });
});

describe('logouts that do not log out', () => {
  beforeEach(async () => {
    await otel.collect();
    otel.takeSpans();
  });

  async function expectFailedLogout(outcome: string, errorType: string): Promise<ReadableSpan> {
    const points = await otel.collect();
    expect(attributeSets(points, LOGOUTS)).toEqual([
      { 'polar_logout.outcome': outcome, 'polar_logout.scope': 'session' },
    ]);
    expect(total(points, LOGOUT_DURATION, { 'polar_logout.outcome': outcome })).toBe(1);
    const { logout } = logoutTree(otel.takeSpans());
    expect(logout.status.code).toBe(SpanStatusCode.ERROR);
    expect(logout.attributes).toMatchObject({ 'polar_logout.outcome': outcome, 'error.type': errorType });
    return logout;
  }

  it("onRevocationFailure 'fail' and Polar down: revocation_failed, REVOCATION_FAILED on the logout span", async () => {
    const h = await createHarness({ logout: { onRevocationFailure: 'fail', retries: 0 } });
    try {
      h.fake.fail({ type: 'status', status: 503 });
      const { cookie, sessionId } = await h.login();
      await h.post(cookie).expect(502);
      expect(await h.sessionIds()).toContain(sessionId);
      const logout = await expectFailedLogout('revocation_failed', 'REVOCATION_FAILED');
      expect(logout.attributes['polar_logout.access_token.status']).toBe('failed');
    } finally {
      await h.close();
    }
  });

  it('the session store fails to destroy: session_destroy_failed', async () => {
    class FailingStore extends session.MemoryStore {
      override destroy(_sid: string, cb?: (err?: unknown) => void): void {
        cb?.(new Error('store down'));
      }
    }
    const h = await createHarness({ store: new FailingStore() });
    try {
      const { cookie } = await h.login();
      await h.post(cookie).expect(500);
      const logout = await expectFailedLogout('session_destroy_failed', 'SESSION_DESTROY_FAILED');
      expect(logout.attributes['polar_logout.refresh_token.status']).toBe('revoked');
    } finally {
      await h.close();
    }
  });

  it('getTokens() throws: get_tokens_failed, no request to Polar', async () => {
    const h = await createHarness({
      logout: {
        getTokens: () => {
          throw new Error('app bug');
        },
      },
    });
    try {
      const { cookie } = await h.login();
      await h.post(cookie).expect(500);
      const logout = await expectFailedLogout('get_tokens_failed', 'GET_TOKENS_FAILED');
      expect(logout.attributes['polar_logout.access_token.status']).toBeUndefined();
      expect(h.fake.calls).toEqual([]);
    } finally {
      await h.close();
    }
  });

  it('express-session not mounted: session_unavailable', async () => {
    const h = await createHarness({ withoutSession: true });
    try {
      await h.post().expect(500);
      await expectFailedLogout('session_unavailable', 'SESSION_UNAVAILABLE');
    } finally {
      await h.close();
    }
  });

  it('a refused request (wrong method) is not a logout: nothing recorded', async () => {
    const h = await createHarness({ mount: 'use' });
    try {
      await otel.collect();
      otel.takeSpans();
      await request(h.app).get('/logout').expect(405);
      expect(total(await otel.collect(), LOGOUTS)).toBe(0);
      expect(otel.takeSpans()).toEqual([]);
    } finally {
      await h.close();
    }
  });
});

describe('the outbox', () => {
  let h: Harness;
  let outbox: RevocationOutbox;
  const settled: OutboxSettledEvent[] = [];

  async function until(check: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  }

  beforeEach(async () => {
    settled.length = 0;
    await otel.collect();
    otel.takeSpans();
  });
  afterEach(async () => {
    await outbox.close();
    await h.close();
  });

  async function setUp(options: { backoffMs?: number; maxAgeMs?: number } = {}): Promise<void> {
    // The harness builds the stand-in; the outbox needs its address: the logout reaches the outbox through this.
    const queue = { enqueue: (...args: Parameters<RevocationOutbox['enqueue']>) => outbox.enqueue(...args) };
    h = await createHarness({ logout: { retries: 0, outbox: queue } });
    outbox = createRevocationOutbox({
      clientId: h.fake.clientId,
      clientSecret: h.fake.clientSecret,
      baseUrl: h.fake.url,
      timeoutMs: 1000,
      backoff: { initialDelayMs: options.backoffMs ?? 100, maxDelayMs: Math.max(400, options.backoffMs ?? 100) },
      ...(options.maxAgeMs ? { maxAgeMs: options.maxAgeMs } : {}),
      onSettled: (event) => void settled.push(event),
    });
  }

  it('revoked: a settlement per token; the outbox calls are revoke spans of their own, not under the logout', async () => {
    await setUp();
    h.fake.fail({ type: 'status', status: 503 }, { times: 2 });
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    await until(() => settled.length === 2, 'two settlements');
    const points = await otel.collect();
    expect(total(points, SETTLEMENTS)).toBe(2);
    expect(
      total(points, SETTLEMENTS, { 'polar_logout.outcome': 'revoked', 'polar_logout.token_type': 'access_token' }),
    ).toBe(1);
    expect(
      total(points, SETTLEMENTS, { 'polar_logout.outcome': 'revoked', 'polar_logout.token_type': 'refresh_token' }),
    ).toBe(1);
    expect(attributeSets(points, SETTLEMENTS).every((a) => a['error.type'] === undefined)).toBe(true);
    // Two failed requests during the logout, two successful ones from the outbox.
    expect(total(points, REQUESTS, { 'polar_logout.outcome': 'failed', 'error.type': 'SERVER_ERROR' })).toBe(2);
    expect(total(points, REQUESTS, { 'polar_logout.outcome': 'revoked' })).toBe(2);

    const spans = otel.takeSpans();
    const logout = byName(spans, 'polar_logout.logout')[0]!;
    const revokes = byName(spans, 'polar_logout.revoke');
    expect(revokes).toHaveLength(4);
    const underLogout = revokes.filter((s) => s.parentSpanContext?.spanId === logout.spanContext().spanId);
    expect(underLogout.map((s) => s.attributes['error.type'])).toEqual(['SERVER_ERROR', 'SERVER_ERROR']);
    expect(
      revokes.filter((s) => s.attributes['polar_logout.outcome'] === 'revoked' && s.parentSpanContext === undefined),
    ).toHaveLength(2);
  });

  it('rejected: Polar refuses the queued token for good (400): REJECTED', async () => {
    await setUp();
    h.fake.fail({ type: 'status', status: 400 });
    h.fake.fail({ type: 'status', status: 503 }, { times: 2 }); // the logout's own calls
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    await until(() => settled.length === 2, 'two settlements');
    const points = await otel.collect();
    expect(total(points, SETTLEMENTS, { 'polar_logout.outcome': 'rejected', 'error.type': 'REJECTED' })).toBe(2);
  });

  it('expired: maxAgeMs passes while Polar stays down; the depth gauge shows the job delayed meanwhile', async () => {
    await setUp({ backoffMs: 700, maxAgeMs: 1200 });
    h.fake.fail({ type: 'status', status: 503 });
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    // Both tokens queued; their first outbox call fails and they wait 700 ms (±25 %) for the next.
    await until(() => h.fake.calls.length >= 4, 'the first outbox calls');
    await sleep(50);
    const during = await otel.collect();
    expect(attributeSets(during, JOBS).length).toBe(3);
    expect(total(during, JOBS, { 'polar_logout.outbox.state': 'delayed', 'polar_logout.outbox.mode': 'memory' })).toBe(
      2,
    );
    expect(total(during, JOBS, { 'polar_logout.outbox.state': 'waiting' })).toBe(0);
    expect(total(during, JOBS, { 'polar_logout.outbox.state': 'active' })).toBe(0);

    await until(() => settled.length === 2, 'two settlements');
    const points = await otel.collect();
    expect(total(points, SETTLEMENTS, { 'polar_logout.outcome': 'expired', 'error.type': 'SERVER_ERROR' })).toBe(2);
    expect(total(points, JOBS)).toBe(0);

    await outbox.close();
    // A closed outbox is no longer observed.
    expect(attributeSets(await otel.collect(), JOBS)).toEqual([]);
  });
});

describe('the unwired throttle counter', () => {
  it('polar_logout.throttled counts by token type', async () => {
    await otel.collect();
    recordThrottled('refresh_token');
    const points: Point[] = await otel.collect();
    expect(points.filter((p) => p.name === 'polar_logout.throttled')).toEqual([
      {
        name: 'polar_logout.throttled',
        unit: '{request}',
        attributes: { 'polar_logout.token_type': 'refresh_token' },
        value: 1,
      },
    ]);
  });
});
