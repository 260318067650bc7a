/**
 * A real OpenTelemetry SDK for the tests: a MeterProvider with a reader collected on demand (delta temporality,
 * so each collect() returns what happened since the last one), a TracerProvider with an in-memory span
 * exporter, and the AsyncLocalStorage context manager a real app's NodeSDK registers.
 */
import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { AggregationTemporality, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';

class OnDemandReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.DELTA });
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

/** One data point, flattened: sums and gauges give `value`; histograms give `count` (as value) and `sum`. */
export interface Point {
  name: string;
  unit: string;
  attributes: Record<string, unknown>;
  value: number;
  sum?: number;
}

export interface TestOtel {
  /** Data points recorded since the previous collect(). */
  collect(): Promise<Point[]>;
  /** Finished spans since the previous takeSpans(). */
  takeSpans(): ReadableSpan[];
  /** Every metric attribute, span attribute and span event seen so far, as text, for the secrets scan. */
  everythingSeen(): string;
  shutdown(): Promise<void>;
}

export function installOtel(extraProcessors: SpanProcessor[] = []): TestOtel {
  const reader = new OnDemandReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter), ...extraProcessors],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  metrics.setGlobalMeterProvider(meterProvider);
  trace.setGlobalTracerProvider(tracerProvider);
  const seen: string[] = [];

  return {
    async collect() {
      const { resourceMetrics, errors } = await reader.collect();
      if (errors.length > 0) throw new Error(`metric collection failed: ${errors.map(String).join('; ')}`);
      const points: Point[] = [];
      for (const scope of resourceMetrics.scopeMetrics) {
        for (const metric of scope.metrics) {
          for (const dp of metric.dataPoints as Array<{ attributes: Record<string, unknown>; value: unknown }>) {
            const { name, unit } = metric.descriptor;
            const point: Point =
              typeof dp.value === 'number'
                ? { name, unit, attributes: dp.attributes, value: dp.value }
                : {
                    name,
                    unit,
                    attributes: dp.attributes,
                    value: (dp.value as { count: number }).count,
                    sum: (dp.value as { sum: number }).sum,
                  };
            seen.push(JSON.stringify(point));
            points.push(point);
          }
        }
      }
      return points;
    },
    takeSpans() {
      const spans = exporter.getFinishedSpans();
      exporter.reset();
      for (const span of spans) {
        seen.push(span.name, JSON.stringify(span.attributes), JSON.stringify(span.events), JSON.stringify(span.status));
      }
      return spans;
    },
    everythingSeen: () => seen.join('\n'),
    async shutdown() {
      await meterProvider.shutdown();
      await tracerProvider.shutdown();
      contextManager.disable();
      metrics.disable();
      trace.disable();
      context.disable();
    },
  };
}

/** Sum of the values of `name`'s points whose attributes include `attributes`. */
export function total(points: Point[], name: string, attributes: Record<string, unknown> = {}): number {
  return points
    .filter((p) => p.name === name && Object.entries(attributes).every(([k, v]) => p.attributes[k] === v))
    .reduce((n, p) => n + p.value, 0);
}

/** The attribute sets recorded for `name`, for exact assertions. */
export function attributeSets(points: Point[], name: string): Array<Record<string, unknown>> {
  return points.filter((p) => p.name === name).map((p) => p.attributes);
}
