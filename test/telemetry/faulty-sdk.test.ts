/**
 * A broken telemetry pipeline never changes a logout: span processors that throw when a span starts or ends,
 * a metrics view whose attribute processor throws on every measurement. The user is logged out exactly as
 * without telemetry: same answer, session gone from the store, both tokens revoked at the stand-in.
 */
import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { cookieHeader, createHarness, type Harness } from '../support/harness';

class Reader extends MetricReader {
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

const broken = (): never => {
  throw new Error('telemetry pipeline down');
};

describe('a throwing SDK', () => {
  let h: Harness;
  let calls = { starts: 0, ends: 0, measurements: 0 };
  const reader = new Reader();

  beforeAll(async () => {
    const processor: SpanProcessor = {
      onStart: () => {
        calls.starts += 1;
        broken();
      },
      onEnd: () => {
        calls.ends += 1;
        broken();
      },
      forceFlush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    };
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [processor] }));
    metrics.setGlobalMeterProvider(
      new MeterProvider({
        readers: [reader],
        views: [
          {
            instrumentName: '*',
            attributesProcessors: [
              {
                process: () => {
                  calls.measurements += 1;
                  return broken();
                },
              },
            ],
          },
        ],
      }),
    );
    h = await createHarness();
  });
  afterAll(async () => {
    await h.close();
    trace.disable();
    metrics.disable();
    context.disable();
  });
  beforeEach(() => {
    calls = { starts: 0, ends: 0, measurements: 0 };
  });

  it('logs out as usual: 303, cookie cleared, session destroyed, both tokens revoked', async () => {
    const { cookie, sessionId, tokens } = await h.login();
    const res = await h.post(cookie).expect(303);
    expect(res.headers.location).toBe('/');
    expect(cookieHeader(res).join()).toMatch(/connect\.sid=;/);
    expect(await h.sessionIds()).not.toContain(sessionId);
    expect(h.fake.isActive(tokens.accessToken)).toBe(false);
    expect(h.fake.isActive(tokens.refreshToken)).toBe(false);
    expect(h.events.at(-1)).toMatchObject({ loggedOut: true });
    // The pipeline was really exercised, and really threw.
    expect(calls.starts).toBeGreaterThanOrEqual(1);
    expect(calls.measurements).toBeGreaterThanOrEqual(1);
  });

  it('a failing logout fails exactly as without telemetry', async () => {
    h.fake.fail({ type: 'status', status: 503 });
    try {
      const { cookie } = await h.login();
      const res = await h.post(cookie).set('Accept', 'application/json').expect(200);
      expect(res.body).toEqual({
        loggedOut: true,
        redirectTo: '/',
        revocation: { accessToken: 'failed', refreshToken: 'failed' },
      });
    } finally {
      h.fake.heal();
    }
  });
});
