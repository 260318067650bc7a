/**
 * One run of a queued revocation, the same for both queues: give up if too old, decrypt, make one call,
 * then settle (revoked, rejected) or say when to try again (backoff or Polar's Retry-After, never past
 * the job's deadline). The queues only store jobs and keep time.
 */
import createDebug from 'debug';
import { MAX_TOKEN_LENGTH } from '../tokens';
import type { PolarRevoker } from '../revoker';
import type { RevocationError, TokenTypeHint } from '../types';
import { unseal, type OutboxKeys } from './crypto';
import type { OutboxConfig } from './options';
import type { OutboxErrorCode, OutboxSettledEvent } from './types';
import { publishSettled } from '../telemetry/outbox';

const debug = createDebug('express-polar-logout:outbox');

/** What a job stores: the token sealed, never in clear. */
export interface StoredJob {
  v: 1;
  hint: TokenTypeHint;
  sealedToken: string;
  /** ms since the epoch. */
  queuedAt: number;
  sessionIdHash?: string;
}

/** What a queue knows about a job between runs. */
export interface JobHistory {
  /** Calls made in earlier runs. */
  attempts: number;
  lastError: RevocationError | undefined;
}

export type JobRun =
  | { kind: 'settled'; event: OutboxSettledEvent }
  | { kind: 'retry'; delayMs: number; attempts: number; error: RevocationError };

export interface JobContext {
  config: OutboxConfig;
  keys: OutboxKeys;
  revoker: PolarRevoker;
}

const HINTS: ReadonlySet<string> = new Set(['access_token', 'refresh_token']);
const SESSION_ID_HASH = /^[0-9a-f]{8,64}$/;

export function isTokenTypeHint(value: unknown): value is TokenTypeHint {
  return typeof value === 'string' && HINTS.has(value);
}

export function isQueueableToken(token: unknown): token is string {
  return typeof token === 'string' && token.length > 0 && token.length <= MAX_TOKEN_LENGTH;
}

/** Keeps a sessionIdHash only if it looks like one: a raw session id passed by mistake never reaches storage. */
export function safeSessionIdHash(value: unknown): string | undefined {
  return typeof value === 'string' && SESSION_ID_HASH.test(value) ? value : undefined;
}

/** Reads job data back from storage; undefined when it is not a job of this outbox. */
export function parseStoredJob(data: unknown): StoredJob | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const d = data as Record<string, unknown>;
  if (d.v !== 1 || !isTokenTypeHint(d.hint) || typeof d.sealedToken !== 'string' || typeof d.queuedAt !== 'number') {
    return undefined;
  }
  const job: StoredJob = { v: 1, hint: d.hint, sealedToken: d.sealedToken, queuedAt: d.queuedAt };
  const hash = safeSessionIdHash(d.sessionIdHash);
  if (hash !== undefined) job.sessionIdHash = hash;
  return job;
}

/** Exponential from `initialDelayMs`, ±25 % jitter, capped; Polar's Retry-After wins (never sooner than the first step). */
export function retryDelay(
  attempt: number,
  retryAfterMs: number | undefined,
  backoff: OutboxConfig['backoff'],
): number {
  if (retryAfterMs !== undefined) return Math.max(retryAfterMs, backoff.initialDelayMs);
  const step = Math.min(backoff.maxDelayMs, backoff.initialDelayMs * 2 ** Math.min(attempt - 1, 40));
  return Math.min(backoff.maxDelayMs, Math.round(step * (0.75 + Math.random() * 0.5)));
}

function settled(
  job: StoredJob,
  outcome: OutboxSettledEvent['outcome'],
  attempts: number,
  error?: { code: OutboxErrorCode; httpStatus?: number },
): JobRun {
  const event: OutboxSettledEvent = {
    tokenType: job.hint,
    outcome,
    attempts,
    queuedAt: new Date(job.queuedAt).toISOString(),
    settledAt: new Date().toISOString(),
    sessionIdHash: job.sessionIdHash,
  };
  if (error)
    event.error =
      error.httpStatus === undefined ? { code: error.code } : { code: error.code, httpStatus: error.httpStatus };
  return { kind: 'settled', event };
}

export async function runJob(ctx: JobContext, jobId: string, job: StoredJob, history: JobHistory): Promise<JobRun> {
  const deadline = job.queuedAt + ctx.config.maxAgeMs;
  if (Date.now() >= deadline) return settled(job, 'expired', history.attempts, history.lastError);

  const token = unseal(ctx.keys, job.sealedToken, jobId, job.hint);
  if (token === undefined) return settled(job, 'rejected', history.attempts, { code: 'UNREADABLE_JOB' });

  const outcome = await ctx.revoker.revokeToken(token, job.hint, { retries: 0, timeoutMs: ctx.config.timeoutMs });
  const attempts = history.attempts + outcome.attempts;
  if (outcome.status === 'revoked') return settled(job, 'revoked', attempts);

  const failure = outcome.failure ?? { code: 'NETWORK_ERROR' as const, retryable: true };
  const error: RevocationError =
    failure.httpStatus === undefined ? { code: failure.code } : { code: failure.code, httpStatus: failure.httpStatus };
  if (!failure.retryable) return settled(job, 'rejected', attempts, error);

  const wanted = retryDelay(attempts, failure.retryAfterMs, ctx.config.backoff);
  // Never sleep past the deadline: the run at the deadline settles the job as expired.
  const delayMs = Math.max(0, Math.min(wanted, deadline - Date.now()));
  return { kind: 'retry', delayMs, attempts, error };
}

/** Calls onSettled, waiting at most `limitMs`; a throwing or slow hook changes nothing. */
export async function reportSettled(
  hook: OutboxConfig['onSettled'],
  event: OutboxSettledEvent,
  limitMs: number,
): Promise<void> {
  publishSettled(event);
  debug(
    '%s settled: %s after %d attempt(s)%s',
    event.tokenType,
    event.outcome,
    event.attempts,
    event.error
      ? ` (${event.error.code}${event.error.httpStatus === undefined ? '' : ` ${event.error.httpStatus}`})`
      : '',
  );
  if (!hook) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    const outcome = await Promise.race([
      Promise.resolve()
        .then(() => hook(event))
        .then(() => 'done' as const),
      new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), limitMs);
      }),
    ]);
    if (outcome === 'late') debug('onSettled did not settle within %d ms; moving on', limitMs);
  } catch (err) {
    debug('onSettled failed: %s', err instanceof Error ? `${err.name}: ${err.message}` : typeof err);
  } finally {
    clearTimeout(timer);
  }
}

export { debug as outboxDebug };
