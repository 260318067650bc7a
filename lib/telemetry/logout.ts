/**
 * Telemetry around one logout: the `express-polar-logout:logout` TracingChannel, the logout span (the parent of
 * the revocation spans) and the logout metrics. When nobody subscribes and no OpenTelemetry SDK is registered,
 * the logout runs as is: no object, no closure, no clock read.
 */
import { performance } from 'node:perf_hooks';
import type { NextFunction, Request } from 'express';
import type { Span } from '@opentelemetry/api';
import { hashSessionId } from '../audit';
import { sessionIdOf } from '../teardown';
import type { PolarLogoutErrorCode } from '../errors';
import { isTraced, logoutChannel } from './channels';
import { ATTR, SPANS } from './names';
import { openTelemetry, type Instruments, type OpenTelemetry } from './otel';
import type { LogoutMessage, LogoutOutcome, LogoutScope } from './types';

/** The logout itself, given the `next` to call and the message to fill in (undefined when nobody listens). */
export type RunLogout = (next: NextFunction, trace: LogoutMessage | undefined) => Promise<void>;

export type TraceLogout = (req: Request, next: NextFunction, run: RunLogout) => Promise<void>;

// Codes that reach next() from a logout (INVALID_* are thrown at construction or by the standalone client;
// a missing tombstone is a completed logout).
const OUTCOMES: Record<
  Exclude<
    PolarLogoutErrorCode,
    'INVALID_OPTION' | 'INVALID_ARGUMENT' | 'TOMBSTONE_WRITE_FAILED' | 'SESSION_INDEX_FAILED'
  >,
  LogoutOutcome
> = {
  SESSION_UNAVAILABLE: 'session_unavailable',
  GET_TOKENS_FAILED: 'get_tokens_failed',
  REVOCATION_FAILED: 'revocation_failed',
  SESSION_DESTROY_FAILED: 'session_destroy_failed',
};

function outcomeOf(err: unknown): LogoutOutcome {
  if ((err as { name?: unknown } | null)?.name !== 'PolarLogoutError') return 'error';
  const outcome = OUTCOMES[(err as { code: keyof typeof OUTCOMES }).code] as LogoutOutcome | undefined;
  return outcome ?? 'error';
}

function errorTypeOf(outcome: LogoutOutcome): string {
  return outcome === 'error' ? '_OTHER' : outcome.toUpperCase();
}

/** Ends the span and records the metrics; never throws (a broken SDK must not change a logout). */
function record(
  otel: OpenTelemetry | undefined,
  trace: LogoutMessage,
  span: Span | undefined,
  instruments: Instruments | undefined,
): void {
  try {
    const attributes = { [ATTR.outcome]: trace.outcome, [ATTR.scope]: trace.scope };
    instruments?.logouts.add(1, attributes);
    instruments?.logoutDuration.record(trace.durationMs / 1000, attributes);
    if (!span || !otel) return;
    span.setAttributes(attributes);
    if (trace.revocation) {
      span.setAttribute(ATTR.accessTokenStatus, trace.revocation.accessToken.status);
      span.setAttribute(ATTR.refreshTokenStatus, trace.revocation.refreshToken.status);
    }
    if (trace.outcome !== 'logged_out') {
      span.setAttribute(ATTR.errorType, errorTypeOf(trace.outcome));
      span.setStatus({ code: otel.api.SpanStatusCode.ERROR });
    }
    span.end();
  } catch {
    // The app's telemetry pipeline failed; the logout is not its business.
  }
}

function startSpan(otel: OpenTelemetry | undefined): Span | undefined {
  try {
    return otel?.tracer()?.startSpan(SPANS.logout, { kind: otel.api.SpanKind.INTERNAL });
  } catch {
    return undefined;
  }
}

async function traced(
  scope: LogoutScope,
  otel: OpenTelemetry | undefined,
  req: Request,
  next: NextFunction,
  run: RunLogout,
  withChannel: boolean,
): Promise<void> {
  const startedAt = performance.now();
  const trace: LogoutMessage = {
    scope,
    // Only channel subscribers get the hash (a span attribute must not identify a session).
    sessionIdHash: withChannel ? hashSessionId(sessionIdOf(req)) : undefined,
    outcome: 'logged_out',
    durationMs: 0,
  };
  const instruments = otel?.instruments();
  const span = startSpan(otel);
  const observedNext: NextFunction = (err?: unknown) => {
    if (err !== undefined && err !== 'route' && err !== 'router') trace.outcome = outcomeOf(err);
    next(err);
  };

  const body = async (): Promise<void> => {
    try {
      await (span && otel ? otel.withSpan(span, () => run(observedNext, trace)) : run(observedNext, trace));
    } catch (err) {
      trace.outcome = 'error';
      throw err;
    } finally {
      // Filled in before the channel's asyncStart/asyncEnd: subscribers see the whole logout.
      trace.durationMs = Math.round(performance.now() - startedAt);
      record(otel, trace, span, instruments);
    }
  };
  if (withChannel && logoutChannel) return logoutChannel.tracePromise(body, trace);
  return body();
}

/** Built once per polarLogout(); decides per request whether anyone is listening. */
export function createLogoutTelemetry(scope: LogoutScope = 'session'): TraceLogout {
  const otel = openTelemetry();
  return (req, next, run) => {
    const withChannel = isTraced(logoutChannel);
    if (!withChannel && !otel?.instruments() && !otel?.tracer()) return run(next, undefined);
    return traced(scope, otel, req, next, run, withChannel);
  };
}
