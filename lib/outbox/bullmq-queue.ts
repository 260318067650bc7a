/**
 * The Redis outbox, on BullMQ. bullmq is an optional peer dependency, loaded here and only here: apps
 * without Redis never load it. Connections come from the Redis adapter (lib/redis), whatever the client.
 *
 * Durability comes from BullMQ: a job stays in Redis from enqueue until its run returns; a worker that dies
 * mid-call loses its lock and the stalled-job check puts the job back. The lock and the check are sized to
 * the call's own budget (not BullMQ's 30 s defaults), so a dead worker's job is taken again within
 * lockDuration + stalledInterval (at most 15 s + 7.5 s; 3 s with the 1 s budget used in tests).
 * Retries use BullMQ's attempts with a custom backoff strategy that reads the delay runJob chose.
 */
import { createHash } from 'node:crypto';
import type { Job, Queue, Worker } from 'bullmq';
import { RevocationOutboxError } from './errors';
import { clientReady, connectionFailure, loadPeer, pick, type RawClient, type RedisAdapter } from '../redis';
import {
  outboxDebug as debug,
  parseStoredJob,
  reportSettled,
  retryDelay,
  runJob,
  type JobContext,
  type JobError,
  type JobHistory,
  type StoredJob,
} from './job';
import type { OutboxCounts, OutboxHealth } from './types';
import { settleWithin } from '../util/settle';

const JOB_NAME = 'revoke';
/** Effectively unlimited: maxAgeMs, not a count, ends a job. */
const ATTEMPTS = 1_000_000_000;
/** Killing workers mid-call must never fail a job: stalls are unlimited too. */
const MAX_STALLED = 1_000_000_000;
/** Bound on storing a job: a logout never waits long for Redis. */
export const ENQUEUE_TIMEOUT_MS = 1000;
const BACKOFF_TYPE = 'polar-outbox';
/** How often an idle worker proves it could take a job (nothing is due, and Redis answers). */
export const HEARTBEAT_MS = 5000;
export const DEFAULT_STUCK_AFTER_MS = 60_000;
/** A running worker takes a due retry within its block timeout (BullMQ blocks at most 10 s, plus a 1 s watchdog). */
const OVERDUE_MS = 15_000;

/** Lock and stall check sized to one call's budget. */
export function lockTimings(timeoutMs: number): { lockDuration: number; stalledInterval: number } {
  const lockDuration = Math.min(15_000, Math.max(2000, 2 * timeoutMs));
  return { lockDuration, stalledInterval: Math.max(1000, Math.round(lockDuration / 2)) };
}

/** One queue per OAuth client: two apps sharing a Redis never take each other's jobs. */
export function queueNameFor(clientId: string): string {
  return `revocations-${createHash('sha256').update(clientId).digest('hex').slice(0, 16)}`;
}

/**
 * Thrown inside a job run to ask BullMQ for a retry; the message is a code, a status and the calls made so
 * far, nothing more. BullMQ's attemptsMade counts runs, and a run that could not open the job makes no call.
 */
class RetryLater extends Error {
  constructor(
    readonly retryDelayMs: number,
    error: JobError,
    calls: number,
  ) {
    super(
      `revocation failed: ${error.code}${error.httpStatus === undefined ? '' : ` (${error.httpStatus})`}; calls: ${calls}`,
    );
    this.name = 'RetryLater';
  }
}

/** What earlier runs left, read back from the job's failedReason (which RetryLater wrote; 0.1.0 wrote no calls). */
function historyOf(attemptsMade: number, failedReason: string | undefined): JobHistory {
  const match = /^revocation failed: ([A-Z_]+)(?: \((\d{3})\))?(?:; calls: (\d+))?$/.exec(failedReason ?? '');
  if (!match) return { attempts: attemptsMade, lastError: undefined };
  const code = match[1] as JobError['code'];
  return {
    attempts: match[3] === undefined ? attemptsMade : Number(match[3]),
    lastError: match[2] === undefined ? { code } : { code, httpStatus: Number(match[2]) },
  };
}

function loadBullmq(): { Queue: typeof Queue; Worker: typeof Worker } {
  // Its presence was checked at construction (createRedisAdapter's peers).
  const bullmq = loadPeer('bullmq');
  return { Queue: pick(bullmq, 'Queue') as typeof Queue, Worker: pick(bullmq, 'Worker') as typeof Worker };
}

/** Redis errors carry addresses, not secrets; still, only their code or name is reported. */
function describe(err: unknown): string {
  if (err instanceof Error)
    return (err as { code?: unknown }).code ? String((err as { code?: unknown }).code) : err.name;
  return typeof err;
}

export interface BullmqQueue {
  add(id: string, job: StoredJob): Promise<void>;
  runWorker(): Promise<void>;
  counts(): Promise<OutboxCounts>;
  health(stuckAfterMs: number): Promise<OutboxHealth>;
  close(): Promise<void>;
}

/** Always a promise: a client BullMQ refuses is reported like an unreachable Redis, by every call. */
export function createBullmqQueue(ctx: JobContext, redis: RedisAdapter): Promise<BullmqQueue> {
  return Promise.resolve().then(() => buildBullmqQueue(ctx, redis));
}

function buildBullmqQueue(ctx: JobContext, redis: RedisAdapter): BullmqQueue {
  const { Queue, Worker } = loadBullmq();
  const name = queueNameFor(ctx.config.clientId);
  const prefix = redis.prefix;
  const { lockDuration, stalledInterval } = lockTimings(ctx.config.timeoutMs);
  /** Connection errors are reported once (warnOnce, with host and port); everything goes to debug. */
  const onError = (source: string) => (err: unknown) => {
    const reason = connectionFailure(err);
    if (reason) redis.reportUnreachable(reason);
    debug('%s error: %s', source, describe(err));
  };

  // The producer fails fast while Redis is away (ioredis: no offline queue; node-redis: the app's own client,
  // bounded below by ENQUEUE_TIMEOUT_MS), so a logout never waits for Redis.
  const producer: RawClient = redis.bullmqConnection('producer');
  const queue = new Queue(name, { connection: producer, prefix });
  queue.on('error', onError('queue'));
  let producerReady = false;
  const isProducerReady = (): boolean => producerReady;
  const readiness = queue.waitUntilReady().then(
    () => void (producerReady = true),
    (err: unknown) => onError('queue')(err),
  );

  let worker: Worker | undefined;
  let closing = false;

  async function processJob(job: Job): Promise<void> {
    const stored = parseStoredJob(job.data);
    if (!stored) {
      debug('dropping a job that is not an outbox job');
      return;
    }
    const run = await runJob(ctx, String(job.id), stored, historyOf(job.attemptsMade, job.failedReason));
    if (run.kind === 'retry') {
      // Kept, whatever the reason (a Polar fault, or one of this worker's configuration): only runJob settles.
      debug('%s attempt %d failed (%s); next in %d ms', stored.hint, run.attempts, run.error.code, run.delayMs);
      throw new RetryLater(run.delayMs, run.error, run.attempts);
    }
    await reportSettled(ctx.config.onSettled, run.event, ctx.config.timeoutMs);
  }

  async function runWorker(): Promise<void> {
    if (closing) throw new RevocationOutboxError('OUTBOX_CLOSED', 'the outbox is closed.');
    if (!worker) {
      workerStartedAt = Date.now();
      worker = new Worker(name, processJob, {
        connection: redis.bullmqConnection('worker'),
        prefix,
        concurrency: ctx.config.concurrency,
        lockDuration,
        stalledInterval,
        maxStalledCount: MAX_STALLED,
        settings: {
          // runJob chose the delay (backoff, Retry-After, deadline); anything else thrown gets plain backoff.
          backoffStrategy: (attemptsMade: number, _type?: string, err?: Error) =>
            err instanceof RetryLater ? err.retryDelayMs : retryDelay(attemptsMade, undefined, ctx.config.backoff),
        },
      });
      worker.on('error', onError('worker'));
      worker.on('active', () => void (activeJobs += 1));
      worker.on('completed', () => {
        activeJobs = Math.max(0, activeJobs - 1);
        progressed();
      });
      worker.on('failed', (_job, err) => {
        activeJobs = Math.max(0, activeJobs - 1);
        // A retry is progress too: the worker took the job and made its call.
        progressed();
        if (!(err instanceof RetryLater)) debug('a job run failed: %s', describe(err));
      });
      heartbeat ??= setInterval(() => void idleHeartbeat(), HEARTBEAT_MS).unref();
      debug(
        'worker started on queue %s (concurrency %d, lock %d ms, stall check %d ms)',
        name,
        ctx.config.concurrency,
        lockDuration,
        stalledInterval,
      );
    }
    await worker.waitUntilReady();
    progressed();
  }

  /**
   * Progress, for health(): jobs settled or retried, or, while no job is active, proof that nothing is due
   * (the queue answers, holds no waiting job, and no retry is overdue). A worker whose blocking connection silently
   * stopped (a demoted Sentinel master, bullmq#4378; a cluster reconnect that never settles) leaves due jobs
   * waiting, or retries overdue in `delayed`: its progress stops and health() says so.
   */
  let lastProgressAt: number | undefined;
  /** A worker that never got going (Redis away from the start) is stuck from the moment it was started. */
  let workerStartedAt = 0;
  let activeJobs = 0;
  let heartbeat: NodeJS.Timeout | undefined;
  function progressed(): void {
    lastProgressAt = Date.now();
  }
  async function idleHeartbeat(): Promise<void> {
    if (!worker || closing || activeJobs > 0 || !worker.isRunning()) return;
    const idle = await withTimeout(
      nothingDue().catch(() => false),
      ENQUEUE_TIMEOUT_MS,
    );
    if (idle === true) progressed();
  }
  /** No job waits, and no retry is overdue by more than a running worker can leave it (BullMQ's longest block). */
  async function nothingDue(): Promise<boolean> {
    const c = await queue.getJobCounts('wait', 'prioritized');
    if ((c.wait ?? 0) + (c.prioritized ?? 0) > 0) return false;
    return (await queue.getDelayedCount(Date.now() - OVERDUE_MS)) === 0;
  }

  async function health(stuckAfterMs: number): Promise<OutboxHealth> {
    const redisReachable =
      clientReady(producer) &&
      (await withTimeout(
        queue.getJobCounts('wait').then(
          () => true,
          () => false,
        ),
        ENQUEUE_TIMEOUT_MS,
      )) === true;
    const running = worker !== undefined && !closing;
    const fresh = Date.now() - (lastProgressAt ?? workerStartedAt) < stuckAfterMs;
    return {
      ok: running ? fresh : redisReachable,
      worker: running,
      lastProgressAt: lastProgressAt === undefined ? undefined : new Date(lastProgressAt),
      redisReachable,
    };
  }

  async function add(id: string, job: StoredJob): Promise<void> {
    if (!isProducerReady()) {
      // First use: give the connection the same bounded time as a write.
      await withTimeout(readiness, ENQUEUE_TIMEOUT_MS);
      if (!isProducerReady()) redis.reportUnreachable(`not connected within ${ENQUEUE_TIMEOUT_MS} ms`);
      if (!isProducerReady())
        throw new RevocationOutboxError('OUTBOX_UNAVAILABLE', 'Redis is not reachable; the token was not queued.');
    }
    if (!clientReady(producer)) {
      throw new RevocationOutboxError('OUTBOX_UNAVAILABLE', 'Redis is not reachable; the token was not queued.');
    }
    const stored = queue.add(JOB_NAME, job, {
      jobId: id,
      attempts: ATTEMPTS,
      backoff: { type: BACKOFF_TYPE },
      removeOnComplete: true,
      removeOnFail: { age: 7 * 24 * 3600 },
      stackTraceLimit: 0,
    });
    const outcome = await withTimeout(
      stored.then(
        () => 'stored' as const,
        (err: unknown) => {
          debug('storing the job failed: %s', describe(err));
          return 'failed' as const;
        },
      ),
      ENQUEUE_TIMEOUT_MS,
    );
    if (outcome !== 'stored') {
      throw new RevocationOutboxError(
        'OUTBOX_UNAVAILABLE',
        `Redis did not store the job${outcome === undefined ? ` within ${ENQUEUE_TIMEOUT_MS} ms` : ''}; the token may not be queued.`,
      );
    }
  }

  /** Bounded like a write: a health check must answer, and say so, when Redis is away. */
  async function counts(): Promise<OutboxCounts> {
    const unavailable = (): RevocationOutboxError =>
      new RevocationOutboxError('OUTBOX_UNAVAILABLE', 'Redis is not reachable; the outbox cannot be counted.');
    if (!isProducerReady()) await withTimeout(readiness, ENQUEUE_TIMEOUT_MS);
    if (!clientReady(producer)) throw unavailable();
    const c = await withTimeout(
      queue.getJobCounts('wait', 'prioritized', 'delayed', 'active').catch(() => undefined),
      ENQUEUE_TIMEOUT_MS,
    );
    if (c === undefined) throw unavailable();
    return { waiting: (c.wait ?? 0) + (c.prioritized ?? 0), delayed: c.delayed ?? 0, active: c.active ?? 0 };
  }

  /** Drops every connection at once, the worker's own blocking one included. */
  async function dropConnections(): Promise<void> {
    await Promise.allSettled([worker?.disconnect(), queue.disconnect()]);
    await redis.close();
  }

  async function close(): Promise<void> {
    closing = true;
    clearInterval(heartbeat);
    // With Redis away, a graceful close would wait for it: force-close the worker (calls in flight are left
    // to the stall check of the next worker), then drop the connections.
    const reachable = clientReady(producer);
    if (!reachable) debug('closing while Redis is unreachable: calls in flight are not waited for');
    const graceful = (async () => {
      await worker?.close(!reachable);
      await queue.close();
    })().catch((err: unknown) => debug('closing the queue failed: %s', describe(err)));
    // Calls in flight end within their budget, and onSettled within another.
    if (
      (await withTimeout(
        graceful.then(() => true),
        reachable ? 2 * ctx.config.timeoutMs + 1000 : 1000,
      )) === undefined
    ) {
      debug('the worker did not stop in time; connections dropped');
      await dropConnections();
    }
    // The connections this outbox opened; the app's own client stays open.
    await redis.close();
  }

  if (ctx.config.worker) void runWorker().catch((err: unknown) => debug('the worker did not start: %s', describe(err)));
  debug('redis outbox on queue %s%s', name, ctx.config.worker ? '' : ' (no worker in this process: run one elsewhere)');
  return { add, runWorker, counts, health, close };
}

/** The promise's value, or undefined once `ms` have passed; its rejection, if it rejects in time. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  const outcome = await settleWithin(() => promise, ms);
  if (outcome.kind === 'failed') throw outcome.error;
  return outcome.kind === 'done' ? outcome.value : undefined;
}
