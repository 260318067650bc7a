/**
 * OpenTelemetry, when the app has it: the instruments and the tracer, looked up once and rebuilt only when the
 * global MeterProvider changes. Without @opentelemetry/api, or with only its no-op providers, every entry point
 * here answers "off" after a couple of property reads, and callers skip all telemetry work.
 */
import type {
  Context,
  Counter,
  Histogram,
  Meter,
  MeterProvider,
  ObservableGauge,
  ObservableResult,
  Span,
  Tracer,
  TracerProvider,
} from '@opentelemetry/api';
import { VERSION } from '../version';
import { loadOpenTelemetryApi, type OtelApi } from './load';
import { ATTR, DURATION_BUCKETS_S, METRICS, SCOPE_NAME } from './names';
import type { OutboxCounts } from '../outbox/types';

export interface Instruments {
  logouts: Counter;
  logoutDuration: Histogram;
  revocationRequests: Counter;
  revocationDuration: Histogram;
  throttled: Counter;
  outboxSettlements: Counter;
  outboxJobs: ObservableGauge;
}

/** An outbox whose depth the gauge reports. */
export interface ObservedOutbox {
  mode: 'redis' | 'memory';
  counts(): Promise<OutboxCounts>;
}

export interface OpenTelemetry {
  readonly api: OtelApi;
  /** Instruments of the registered MeterProvider; undefined while it is the no-op one. */
  instruments(): Instruments | undefined;
  /** The tracer, when a TracerProvider is registered. */
  tracer(): Tracer | undefined;
  /** Runs `fn` with `span` as the active span (its children, and HTTP instrumentation, nest under it). */
  withSpan<T>(span: Span, fn: () => T): T;
  /** Reports `outbox` in the depth gauge until the returned function is called. */
  observeOutbox(outbox: ObservedOutbox): () => void;
}

function buildInstruments(meter: Meter, observe: (result: ObservableResult) => Promise<void>): Instruments {
  const durationOptions = (description: string) => ({
    description,
    unit: 's',
    // Honoured by SDKs that read advice (API 1.7+); older ones keep their default buckets.
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_S },
  });
  const outboxJobs = meter.createObservableGauge(METRICS.outboxJobs, {
    description: 'Queued tokens not settled yet, by state (waiting, delayed, active).',
    unit: '{job}',
  });
  outboxJobs.addCallback(observe);
  return {
    logouts: meter.createCounter(METRICS.logouts, { description: 'Logouts, by outcome.', unit: '{logout}' }),
    logoutDuration: meter.createHistogram(METRICS.logoutDuration, durationOptions('Duration of logouts.')),
    revocationRequests: meter.createCounter(METRICS.revocationRequests, {
      description: "HTTP calls to Polar's revocation endpoint (every attempt), by token type and outcome.",
      unit: '{request}',
    }),
    revocationDuration: meter.createHistogram(
      METRICS.revocationDuration,
      durationOptions("Duration of HTTP calls to Polar's revocation endpoint."),
    ),
    throttled: meter.createCounter(METRICS.throttled, {
      description: 'Calls to Polar held back by the rate budget.',
      unit: '{request}',
    }),
    outboxSettlements: meter.createCounter(METRICS.outboxSettlements, {
      description: 'Queued tokens settled by the outbox, by outcome.',
      unit: '{token}',
    }),
    outboxJobs,
  };
}

function create(api: OtelApi): OpenTelemetry {
  const outboxes = new Set<ObservedOutbox>();
  // The no-op providers, to tell "nothing registered" apart from an SDK.
  const noopMeter = typeof api.createNoopMeter === 'function' ? api.createNoopMeter() : undefined;
  // Deprecated for API 2.0 only; every 1.x has it, and nothing else hands out the no-op provider.
  // eslint-disable-next-line @typescript-eslint/no-deprecated
  const noopTracerProvider = new api.ProxyTracerProvider().getDelegate();
  let meterProvider: MeterProvider | undefined;
  let current: Instruments | undefined;
  let tracerDelegate: TracerProvider | undefined;
  let tracer: Tracer | undefined;

  /** One observation per outbox mode; an outbox that cannot answer (Redis away) is left out of this round. */
  async function observe(result: ObservableResult): Promise<void> {
    const totals = new Map<string, OutboxCounts>();
    await Promise.all(
      [...outboxes].map(async (outbox) => {
        const counts = await outbox.counts().catch(() => undefined);
        if (!counts) return;
        const total = totals.get(outbox.mode) ?? { waiting: 0, delayed: 0, active: 0 };
        total.waiting += counts.waiting;
        total.delayed += counts.delayed;
        total.active += counts.active;
        totals.set(outbox.mode, total);
      }),
    );
    for (const [mode, total] of totals) {
      for (const state of ['waiting', 'delayed', 'active'] as const) {
        result.observe(total[state], { [ATTR.outboxState]: state, [ATTR.outboxMode]: mode });
      }
    }
  }

  function instruments(): Instruments | undefined {
    const provider = api.metrics.getMeterProvider();
    if (provider !== meterProvider) {
      meterProvider = provider;
      const meter = provider.getMeter(SCOPE_NAME, VERSION);
      current = meter === noopMeter ? undefined : buildInstruments(meter, observe);
    }
    return current;
  }

  return {
    api,
    instruments,
    tracer() {
      const provider: TracerProvider & { getDelegate?: () => TracerProvider } = api.trace.getTracerProvider();
      const delegate = typeof provider.getDelegate === 'function' ? provider.getDelegate() : provider;
      if (delegate === noopTracerProvider) return undefined;
      if (delegate !== tracerDelegate) {
        tracerDelegate = delegate;
        tracer = api.trace.getTracer(SCOPE_NAME, VERSION);
      }
      return tracer;
    },
    withSpan(span, fn) {
      const ctx: Context = api.trace.setSpan(api.context.active(), span);
      return api.context.with(ctx, fn);
    },
    observeOutbox(outbox) {
      outboxes.add(outbox);
      instruments(); // registers the gauge's callback if an SDK is there already
      return () => void outboxes.delete(outbox);
    },
  };
}

let loaded: OpenTelemetry | null | undefined;

/** The process-wide OpenTelemetry bridge, or undefined when @opentelemetry/api is not installed. */
export function openTelemetry(): OpenTelemetry | undefined {
  if (loaded === undefined) {
    const api = loadOpenTelemetryApi();
    loaded = api ? create(api) : null;
  }
  return loaded ?? undefined;
}
