/**
 * The diagnostics channels, tested by subscribing as an APM agent would: names, event order, payload fields
 * (a stable interface), correlation through the async context, and no work at all when nobody subscribes.
 * No OpenTelemetry SDK is registered in this file (the API is installed, as in most apps).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import dc from 'node:diagnostics_channel';
import type { NextFunction, Request } from 'express';
import {
  CHANNELS,
  createRevocationOutbox,
  type LogoutMessage,
  type OutboxMessage,
  type OutboxSettledEvent,
  type RevocationOutbox,
  type RevokeMessage,
} from '../../lib';
import { createLogoutTelemetry, traceAttempts } from '../../lib/telemetry';
import { createHarness, sleep, type Harness } from '../support/harness';

const EVENTS = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'] as const;

/** Subscribes to every event of a TracingChannel, recording a snapshot of the message at each. */
interface Recording<T> {
  seen: Array<{ event: string; message: T }>;
  stop(): void;
}

function record<T extends object>(name: string): Recording<T> {
  const seen: Recording<T>['seen'] = [];
  const handlers = Object.fromEntries(
    EVENTS.map((event) => [event, (message: unknown) => seen.push({ event, message: { ...(message as T) } })]),
  ) as unknown as dc.TracingChannelSubscribers<object>;
  const channel = dc.tracingChannel(name);
  channel.subscribe(handlers);
  return { seen, stop: () => channel.unsubscribe(handlers) };
}

/** Only what the telemetry reads of a request (its session id). */
function fakeRequest(fields: object): Request {
  return fields as unknown as Request;
}

function hashOf(sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('hex').slice(0, 16);
}

describe('nobody subscribed, no SDK registered', () => {
  it('a logout runs with the original next() and no message: nothing is built', async () => {
    const traceLogout = createLogoutTelemetry();
    const next: NextFunction = () => undefined;
    let got: unknown[] = [];
    await traceLogout(fakeRequest({}), next, (n, trace) => {
      got = [n, trace];
      return Promise.resolve();
    });
    expect(got[0]).toBe(next);
    expect(got[1]).toBeUndefined();
  });

  it('an attempt is the revoker’s own call: the same promise, no wrapper', () => {
    const answer = Promise.resolve(null);
    const traced = traceAttempts('https://api.polar.sh/v1/oauth2/revoke', () => answer);
    expect(traced('t', 'access_token', undefined, 1)).toBe(answer);
  });

  it('subscribing later turns it on at once (the check is per call)', async () => {
    const traceLogout = createLogoutTelemetry();
    const { seen, stop } = record<LogoutMessage>(CHANNELS.logout);
    try {
      await traceLogout(
        { sessionID: 'sid' } as unknown as Request,
        () => undefined,
        (_n, trace) => {
          expect(trace).toBeDefined();
          return Promise.resolve();
        },
      );
      expect(seen.map((s) => s.event)).toEqual(['start', 'end', 'asyncStart', 'asyncEnd']);
    } finally {
      stop();
    }
  });
});

describe('express-polar-logout:logout and express-polar-logout:revoke', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ logout: { retries: 1, timeoutMs: 2000 } });
  });
  afterAll(() => h.close());
  beforeEach(() => {
    h.fake.heal();
    h.fake.resetCalls();
    h.events.length = 0;
  });

  it('a logout: start carries scope and sessionIdHash, asyncEnd the outcome and per-token results', async () => {
    const logout = record<LogoutMessage>(CHANNELS.logout);
    try {
      const { cookie, sessionId } = await h.login();
      await h.post(cookie).expect(303);
      expect(logout.seen.map((s) => s.event)).toEqual(['start', 'end', 'asyncStart', 'asyncEnd']);
      const start = logout.seen[0]!.message;
      expect(start).toEqual({
        scope: 'session',
        sessionIdHash: hashOf(sessionId),
        outcome: 'logged_out',
        durationMs: 0,
      });
      const end = logout.seen[3]!.message;
      expect(Object.keys(end).sort()).toEqual([
        'durationMs',
        'outcome',
        'result',
        'revocation',
        'scope',
        'sessionIdHash',
      ]);
      expect(end).toMatchObject({ scope: 'session', sessionIdHash: hashOf(sessionId), outcome: 'logged_out' });
      expect(end.durationMs).toBeGreaterThanOrEqual(0);
      expect(end.revocation).toEqual({
        accessToken: { status: 'revoked', attempts: 1, durationMs: expect.any(Number) },
        refreshToken: { status: 'revoked', attempts: 1, durationMs: expect.any(Number) },
      });
      // The same hash as the audit event's, to correlate the two.
      expect(h.events[0]!.sessionIdHash).toBe(end.sessionIdHash);
    } finally {
      logout.stop();
    }
  });

  it('each HTTP attempt is one revoke event, retries included, with code, status and retryable on failure', async () => {
    const revoke = record<RevokeMessage>(CHANNELS.revoke);
    try {
      h.fake.fail({ type: 'status', status: 503 }, { hint: 'access_token', times: 1 });
      const { cookie } = await h.login();
      await h.post(cookie).expect(303);
      const starts = revoke.seen.filter((s) => s.event === 'start').map((s) => s.message);
      expect(starts).toHaveLength(3);
      for (const start of starts) expect(Object.keys(start).sort()).toEqual(['attempt', 'serverAddress', 'tokenType']);
      const ends = revoke.seen
        .filter((s) => s.event === 'asyncEnd')
        .map(({ message: { result: _r, ...m } }: { message: RevokeMessage & { result?: unknown } }) => m);
      const byAttempt = (type: string, attempt: number) =>
        ends.find((m) => m.tokenType === type && m.attempt === attempt);
      expect(byAttempt('access_token', 1)).toEqual({
        tokenType: 'access_token',
        attempt: 1,
        serverAddress: '127.0.0.1',
        outcome: 'failed',
        code: 'SERVER_ERROR',
        httpStatus: 503,
        retryable: true,
        durationMs: expect.any(Number),
      });
      expect(byAttempt('access_token', 2)).toEqual({
        tokenType: 'access_token',
        attempt: 2,
        serverAddress: '127.0.0.1',
        outcome: 'revoked',
        durationMs: expect.any(Number),
      });
      expect(byAttempt('refresh_token', 1)).toMatchObject({ outcome: 'revoked' });
      expect(revoke.seen.filter((s) => s.event === 'error')).toEqual([]);
      expect(h.fake.calls.map((c) => c.result)).toEqual(expect.arrayContaining([503, 200, 200])); // one event per call
      expect(h.fake.calls).toHaveLength(3);
    } finally {
      revoke.stop();
    }
  });

  it('revoke events run inside the logout’s async context (start.bindStore), as APM agents rely on', async () => {
    const store = new AsyncLocalStorage<string | undefined>();
    const logoutChannel = dc.tracingChannel<unknown, LogoutMessage>(CHANNELS.logout);
    logoutChannel.start.bindStore(store, (message) => message.sessionIdHash);
    const seenInRevoke: Array<string | undefined> = [];
    const onStart = (): void => void seenInRevoke.push(store.getStore());
    dc.subscribe(`tracing:${CHANNELS.revoke}:start`, onStart);
    try {
      const { cookie, sessionId } = await h.login();
      await h.post(cookie).expect(303);
      expect(seenInRevoke).toEqual([hashOf(sessionId), hashOf(sessionId)]);
    } finally {
      logoutChannel.start.unbindStore(store);
      dc.unsubscribe(`tracing:${CHANNELS.revoke}:start`, onStart);
    }
  });

  it("a failed logout: the outcome names the PolarLogoutError code ('fail' mode)", async () => {
    const failing = await createHarness({ logout: { onRevocationFailure: 'fail', retries: 0 } });
    const logout = record<LogoutMessage>(CHANNELS.logout);
    try {
      failing.fake.fail({ type: 'status', status: 401, body: '{"error":"invalid_client"}' });
      const { cookie } = await failing.login();
      await failing.post(cookie).expect(502);
      const end = logout.seen.find((s) => s.event === 'asyncEnd')!.message;
      expect(end.outcome).toBe('revocation_failed');
      expect(end.revocation?.accessToken).toMatchObject({
        status: 'failed',
        error: { code: 'INVALID_CLIENT', httpStatus: 401 },
      });
    } finally {
      logout.stop();
      await failing.close();
    }
  });
});

describe('express-polar-logout:outbox', () => {
  it('one message per settled token, with the logout’s sessionIdHash; a subscriber cannot change onSettled’s event', async () => {
    const late: { outbox?: RevocationOutbox } = {};
    const queue = { enqueue: (...args: Parameters<RevocationOutbox['enqueue']>) => late.outbox!.enqueue(...args) };
    const h = await createHarness({ logout: { retries: 0, outbox: queue } });
    const settled: OutboxSettledEvent[] = [];
    const outbox = (late.outbox = createRevocationOutbox({
      clientId: h.fake.clientId,
      clientSecret: h.fake.clientSecret,
      baseUrl: h.fake.url,
      backoff: { initialDelayMs: 50, maxDelayMs: 200 },
      onSettled: (event) => void settled.push(event),
    }));
    const messages: OutboxMessage[] = [];
    const onMessage = (message: unknown): void => {
      messages.push({ ...(message as OutboxMessage) });
      (message as { outcome: string }).outcome = 'tampered';
    };
    dc.subscribe(CHANNELS.outbox, onMessage);
    try {
      h.fake.fail({ type: 'status', status: 503 }, { times: 3 }); // the logout's two calls and one outbox call
      const { cookie, sessionId } = await h.login();
      await h.post(cookie).expect(303);
      const deadline = Date.now() + 10_000;
      while (settled.length < 2 && Date.now() < deadline) await sleep(20);
      expect(messages).toHaveLength(2);
      for (const message of messages) {
        expect(message).toEqual({
          tokenType: expect.stringMatching(/^(access|refresh)_token$/),
          outcome: 'revoked',
          attempts: expect.any(Number),
          queuedAt: expect.any(String),
          settledAt: expect.any(String),
          sessionIdHash: hashOf(sessionId),
          durationMs: expect.any(Number),
        });
      }
      expect(messages.map((m) => m.attempts).sort()).toEqual([1, 2]);
      expect(settled.map((e) => e.outcome)).toEqual(['revoked', 'revoked']);
    } finally {
      dc.unsubscribe(CHANNELS.outbox, onMessage);
      await outbox.close();
      await h.close();
    }
  });
});
