/**
 * Telemetry around each HTTP call to Polar's revocation endpoint: the `express-polar-logout:revoke`
 * TracingChannel, a client span (a child of the logout span when there is one) and the request metrics.
 * Each attempt is one event, retries included: what an APM shows as one outgoing call.
 */
import { performance } from 'node:perf_hooks';
import type { Span } from '@opentelemetry/api';
import type { RevocationErrorCode, TokenTypeHint } from '../types';
import { isTraced, revokeChannel } from './channels';
import { ATTR, SPANS } from './names';
import { openTelemetry, type Instruments, type OpenTelemetry } from './otel';
import type { RevokeMessage } from './types';

/** What an attempt reports: null when Polar confirmed, else why not. */
export interface AttemptResult {
  code: RevocationErrorCode;
  httpStatus?: number;
  retryable: boolean;
}

/** null: Polar confirmed; F: why not; a symbol: the revoker's own marker for a request never sent. */
type Attempt<B, F extends AttemptResult> = (
  token: string,
  hint: TokenTypeHint,
  budget: B,
) => Promise<F | null | symbol>;
/** The same attempt, told which attempt it is (1, 2, ...). */
export type TracedAttempt<B, F extends AttemptResult = AttemptResult> = (
  token: string,
  hint: TokenTypeHint,
  budget: B,
  attempt: number,
) => Promise<F | null | symbol>;

interface Server {
  address: string;
  port: number;
}

function serverOf(url: string): Server {
  const parsed = new URL(url);
  const port = parsed.port === '' ? (parsed.protocol === 'https:' ? 443 : 80) : Number(parsed.port);
  // URL keeps IPv6 literals in brackets; server.address wants the address alone.
  return { address: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port };
}

function startSpan(otel: OpenTelemetry | undefined, message: RevokeMessage, server: Server): Span | undefined {
  try {
    return otel?.tracer()?.startSpan(SPANS.revoke, {
      kind: otel.api.SpanKind.CLIENT,
      attributes: {
        [ATTR.tokenType]: message.tokenType,
        [ATTR.attempt]: message.attempt,
        [ATTR.httpMethod]: 'POST',
        [ATTR.serverAddress]: server.address,
        [ATTR.serverPort]: server.port,
      },
    });
  } catch {
    return undefined;
  }
}

function record(
  otel: OpenTelemetry | undefined,
  message: RevokeMessage,
  span: Span | undefined,
  instruments: Instruments | undefined,
): void {
  try {
    const attributes: Record<string, string | number> = {
      [ATTR.tokenType]: message.tokenType,
      [ATTR.outcome]: message.outcome ?? 'failed',
    };
    if (message.code !== undefined) attributes[ATTR.errorType] = message.code;
    if (message.httpStatus !== undefined) attributes[ATTR.httpStatus] = message.httpStatus;
    instruments?.revocationRequests.add(1, attributes);
    instruments?.revocationDuration.record((message.durationMs ?? 0) / 1000, attributes);
    if (!span || !otel) return;
    span.setAttributes(attributes);
    if (message.outcome !== 'revoked') span.setStatus({ code: otel.api.SpanStatusCode.ERROR });
    span.end();
  } catch {
    // A broken telemetry pipeline never changes a revocation.
  }
}

async function traced<B, F extends AttemptResult>(
  attempt: Attempt<B, F>,
  server: Server,
  otel: OpenTelemetry | undefined,
  withChannel: boolean,
  args: [token: string, hint: TokenTypeHint, budget: B, attempt: number],
): Promise<F | null | symbol> {
  const [token, hint, budget, number] = args;
  const message: RevokeMessage = { tokenType: hint, attempt: number, serverAddress: server.address };
  const instruments = otel?.instruments();
  const span = startSpan(otel, message, server);
  const startedAt = performance.now();
  const body = async (): Promise<F | null | symbol> => {
    let failure: F | null | symbol = null;
    try {
      failure = await (span && otel
        ? otel.withSpan(span, () => attempt(token, hint, budget))
        : attempt(token, hint, budget));
      return failure;
    } finally {
      message.durationMs = Math.round(performance.now() - startedAt);
      message.outcome = failure === null ? 'revoked' : 'failed';
      // An attempt cancelled before its request was written has no code: it reports 'failed' alone.
      if (failure && typeof failure === 'object') {
        message.code = failure.code;
        if (failure.httpStatus !== undefined) message.httpStatus = failure.httpStatus;
        message.retryable = failure.retryable;
      }
      record(otel, message, span, instruments);
    }
  };
  if (withChannel && revokeChannel) return revokeChannel.tracePromise(body, message);
  return body();
}

/** Wraps the revoker's single-attempt function once, at construction; per call it only checks who listens. */
export function traceAttempts<B, F extends AttemptResult>(
  revokeUrl: string,
  attempt: Attempt<B, F>,
): TracedAttempt<B, F> {
  const server = serverOf(revokeUrl);
  const otel = openTelemetry();
  return (token, hint, budget, number) => {
    const withChannel = isTraced(revokeChannel);
    if (!withChannel && !otel?.instruments() && !otel?.tracer()) return attempt(token, hint, budget);
    return traced(attempt, server, otel, withChannel, [token, hint, budget, number]);
  };
}
