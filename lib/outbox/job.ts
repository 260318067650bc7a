/**
 * One run of a queued revocation, the same for both queues: abandon an access token too old to matter,
 * decrypt, make one call, then settle (revoked, rejected) or say when to try again (backoff or Polar's
 * Retry-After, never past an access token's deadline). A fault of this worker's own configuration (a key it
 * does not have, credentials Polar refuses) never settles a job: the job waits, with the longest backoff,
 * for a worker that can do it, and a process warning says what to fix. The queues only store jobs and keep time.
 */
import createDebug from 'debug';
import { MAX_TOKEN_LENGTH } from '../tokens';
import type { PolarRevoker } from '../revoker';
import type { RevocationError, TokenTypeHint } from '../types';
import { warnOnce } from '../warnings';
import { unseal, type OutboxKeyring } from './crypto';
import type { OutboxConfig } from './options';
import type { OutboxErrorCode, OutboxSettledEvent } from './types';
import { publishSettled } from '../telemetry/outbox';
import { describeAppError, settleWithin } from '../util/settle';

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

/** A failure of one run: Polar's answer, or UNREADABLE_JOB. */
export interface JobError {
  code: OutboxErrorCode;
  httpStatus?: number;
}

/** What a queue knows about a job between runs. */
export interface JobHistory {
  /** Calls made in earlier runs. */
  attempts: number;
  lastError: JobError | undefined;
}

export type JobRun =
  | { kind: 'settled'; event: OutboxSettledEvent }
  | { kind: 'retry'; delayMs: number; attempts: number; error: JobError };

export interface JobContext {
  config: OutboxConfig;
  keys: OutboxKeyring;
  revoker: PolarRevoker;
}

const HINTS: ReadonlySet<string> = new Set(['access_token', 'refresh_token']);
// Exactly what hashSessionId() produces: a hex session id (some genid functions make them) passed by mistake
// is 32 characters or more, and never reaches storage.
const SESSION_ID_HASH = /^[0-9a-f]{16}$/;

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

function settled(job: StoredJob, outcome: OutboxSettledEvent['outcome'], attempts: number, error?: JobError): JobRun {
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

/** Warning codes (stable) for faults of the worker's configuration that keep jobs waiting. */
export const WARNING_CODES = {
  UNREADABLE_JOB: 'EPL_OUTBOX_UNREADABLE_JOB',
  INVALID_CLIENT: 'EPL_OUTBOX_INVALID_CLIENT',
} as const;

const WARNINGS: Record<keyof typeof WARNING_CODES, string> = {
  UNREADABLE_JOB:
    'express-polar-logout: a queued revocation was sealed under an encryption key this worker does not have. ' +
    'The job is kept in the outbox for a worker that has it. If the key (or the clientSecret it is derived from) ' +
    'was rotated, list the old key after the new one: encryptionKey: [newKey, oldKey].',
  INVALID_CLIENT:
    "express-polar-logout: Polar refused the outbox worker's client credentials (invalid_client). Queued " +
    'revocations are kept and retried with the longest backoff; check clientId, clientSecret and clientAuth.',
};

/** The longest step of the backoff (jittered downwards so parked jobs do not all wake at once). */
function parkDelay(backoff: OutboxConfig['backoff']): number {
  return retryDelay(Number.MAX_SAFE_INTEGER, undefined, backoff);
}

/** Only access tokens expire at Polar; a refresh token is worth revoking for as long as it takes. */
function deadlineOf(ctx: JobContext, job: StoredJob): number {
  return job.hint === 'access_token' ? job.queuedAt + ctx.config.maxAgeMs : Number.POSITIVE_INFINITY;
}

function retry(deadline: number, wantedMs: number, attempts: number, error: JobError): JobRun {
  // Never sleep past the deadline: the run at the deadline abandons the access token.
  const delayMs = Math.max(0, Math.min(wantedMs, deadline - Date.now()));
  return { kind: 'retry', delayMs, attempts, error };
}

export async function runJob(ctx: JobContext, jobId: string, job: StoredJob, history: JobHistory): Promise<JobRun> {
  const deadline = deadlineOf(ctx, job);
  if (Date.now() >= deadline) return settled(job, 'abandoned', history.attempts, history.lastError);

  const token = unseal(ctx.keys, job.sealedToken, jobId, job.hint);
  if (token === undefined) {
    warnOnce(WARNING_CODES.UNREADABLE_JOB, WARNINGS.UNREADABLE_JOB);
    return retry(deadline, parkDelay(ctx.config.backoff), history.attempts, { code: 'UNREADABLE_JOB' });
  }

  // The drain's priority: it waits for the rate budget and leaves its reserve to live logouts.
  const outcome = await ctx.revoker.revokeToken(token, job.hint, {
    retries: 0,
    timeoutMs: ctx.config.timeoutMs,
    priority: 'drain',
  });
  const attempts = history.attempts + outcome.attempts;
  if (outcome.status === 'revoked') return settled(job, 'revoked', attempts);

  const failure = outcome.failure ?? { code: 'NETWORK_ERROR' as const, retryable: true };
  const error: RevocationError =
    failure.httpStatus === undefined ? { code: failure.code } : { code: failure.code, httpStatus: failure.httpStatus };
  if (failure.code === 'INVALID_CLIENT') {
    warnOnce(WARNING_CODES.INVALID_CLIENT, WARNINGS.INVALID_CLIENT);
    return retry(deadline, parkDelay(ctx.config.backoff), attempts, error);
  }
  if (!failure.retryable) return settled(job, 'rejected', attempts, error);
  return retry(deadline, retryDelay(attempts, failure.retryAfterMs, ctx.config.backoff), attempts, error);
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
  const outcome = await settleWithin(() => hook(event), limitMs);
  if (outcome.kind === 'late') debug('onSettled did not settle within %d ms; moving on', limitMs);
  if (outcome.kind === 'failed') debug('onSettled failed: %s', describeAppError(outcome.error));
}

export { debug as outboxDebug };
