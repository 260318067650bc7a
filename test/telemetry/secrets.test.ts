/**
 * The secrets scan, extended to telemetry: every diagnostics channel message (at every event, inspected in full)
 * and every metric attribute, span attribute, span status and span event recorded while logouts succeed, fail
 * in every way and hand tokens to the outbox. No token, client secret, client id or session id may appear.
 */
import { inspect } from 'node:util';
import dc from 'node:diagnostics_channel';
import session from 'express-session';
import { CHANNELS, createRevocationOutbox, type RevocationOutbox } from '../../lib';
import type { FakeFault } from '../../lib/testing';
import { findLeaks, sessionSecrets } from '../reliability/support/secrets';
import { createHarness, sleep, type Harness } from '../support/harness';
import { installOtel, type TestOtel } from './support/otel';

describe('telemetry carries no secret', () => {
  let otel: TestOtel;
  let h: Harness;
  let outbox: RevocationOutbox;
  const published: string[] = [];
  const secrets = new Set<string>();
  const unsubscribe: Array<() => void> = [];
  let settledCount = 0;

  beforeAll(async () => {
    otel = installOtel();
    for (const name of [CHANNELS.logout, CHANNELS.revoke]) {
      for (const event of ['start', 'end', 'asyncStart', 'asyncEnd', 'error']) {
        const channel = `tracing:${name}:${event}`;
        const onMessage = (message: unknown): void =>
          void published.push(inspect(message, { depth: null, showHidden: true }), JSON.stringify(message));
        dc.subscribe(channel, onMessage);
        unsubscribe.push(() => dc.unsubscribe(channel, onMessage));
      }
    }
    const onOutbox = (message: unknown): void => void published.push(inspect(message, { depth: null }));
    dc.subscribe(CHANNELS.outbox, onOutbox);
    unsubscribe.push(() => dc.unsubscribe(CHANNELS.outbox, onOutbox));

    class FlakyStore extends session.MemoryStore {
      failNext = false;
      override destroy(sid: string, cb?: (err?: unknown) => void): void {
        if (this.failNext) {
          this.failNext = false;
          return cb?.(new Error(`cannot destroy ${sid}`));
        }
        super.destroy(sid, cb);
      }
    }
    const store = new FlakyStore();
    const queue = { enqueue: (...args: Parameters<RevocationOutbox['enqueue']>) => outbox.enqueue(...args) };
    h = await createHarness({ store, logout: { retries: 1, timeoutMs: 400, outbox: queue } });
    outbox = createRevocationOutbox({
      clientId: h.fake.clientId,
      clientSecret: h.fake.clientSecret,
      baseUrl: h.fake.url,
      backoff: { initialDelayMs: 50, maxDelayMs: 100 },
      maxAgeMs: 400,
      onSettled: () => void (settledCount += 1),
    });
    secrets.add(h.fake.clientSecret).add(h.fake.clientId);
    secrets.add(Buffer.from(`${h.fake.clientId}:${h.fake.clientSecret}`).toString('base64'));

    const scenario = async (fault: FakeFault | undefined, status: number, setup?: () => void): Promise<void> => {
      h.fake.heal();
      if (fault) h.fake.fail(fault);
      setup?.();
      const { tokens, sessionId, cookie } = await h.login();
      for (const s of [tokens.accessToken, tokens.refreshToken, ...sessionSecrets(sessionId, cookie)]) secrets.add(s);
      await h.post(cookie).expect(status);
    };
    await scenario(undefined, 303);
    await scenario({ type: 'status', status: 503, body: '{"error":"temporarily_unavailable"}' }, 303);
    await scenario({ type: 'status', status: 429, retryAfter: '0' }, 303);
    await scenario({ type: 'status', status: 400, body: '{"error":"invalid_request"}' }, 303);
    await scenario({ type: 'status', status: 401, body: '{"error":"invalid_client"}' }, 303);
    await scenario({ type: 'hang' }, 303);
    await scenario({ type: 'reset' }, 303);
    await scenario({ type: 'status', status: 200, contentType: 'text/html', body: '<html>' }, 303);
    await scenario(undefined, 500, () => {
      store.failNext = true;
    });
    // Queued tokens settle: revoked once Polar is back, or expired while it stays down.
    h.fake.heal();
    const deadline = Date.now() + 10_000;
    while (settledCount < 6 && Date.now() < deadline) await sleep(25);
    await otel.collect();
    otel.takeSpans();
  });

  afterAll(async () => {
    for (const stop of unsubscribe) stop();
    await outbox.close();
    await h.close();
    await otel.shutdown();
  });

  it('captured something from every source (the scan below is not vacuous)', () => {
    const channels = published.join('\n');
    expect(channels).toMatch(/sessionIdHash: '[0-9a-f]{16}'/);
    expect(channels).toMatch(/code: 'SERVER_ERROR'/);
    expect(channels).toMatch(/outcome: 'session_destroy_failed'/);
    expect(channels).toMatch(/settledAt/);
    const seen = otel.everythingSeen();
    expect(seen).toMatch(/polar_logout\.logouts/);
    expect(seen).toMatch(/polar_logout\.outbox\.settlements/);
    expect(seen).toMatch(/"error\.type":"INVALID_CLIENT"/);
    expect(seen).toMatch(/polar_logout\.revoke/);
    expect(settledCount).toBeGreaterThanOrEqual(6);
    expect(secrets.size).toBeGreaterThan(30);
    const one = [...secrets][5]!;
    expect(findLeaks(`x${one}x`, secrets)).toEqual([one]);
  });

  it('finds no token, client secret, client id or session id in channel messages, metrics or spans', () => {
    expect(findLeaks(published.join('\n'), secrets)).toEqual([]);
    expect(findLeaks(otel.everythingSeen(), secrets)).toEqual([]);
  });
});
