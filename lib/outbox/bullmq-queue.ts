/**
 * The Redis outbox, on BullMQ. bullmq and ioredis are optional peer dependencies, loaded here and only
 * here, on first use: apps without Redis never load them.
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
import { loadBullmq, loadIoredis } from './load';
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
import type { ResolvedRedis } from './options';
import type { OutboxCounts, OutboxRedisClient } from './types';

const PREFIX = 'express-polar-logout';
const JOB_NAME = 'revoke';
/** Effectively unlimited: maxAgeMs, not a count, ends a job. */
const ATTEMPTS = 1_000_000_000;
/** Killing workers mid-call must never fail a job: stalls are unlimited too. */
const MAX_STALLED = 1_000_000_000;
/** Bound on storing a job: a logout never waits long for Redis. */
export const ENQUEUE_TIMEOUT_MS = 1000;
const BACKOFF_TYPE = 'polar-outbox';

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

/** A named export of a CommonJS package, however it was loaded (require, or import() and its `default`). */
function pick(mod: unknown, name: string): unknown {
  const m = mod as Record<string, unknown> & { default?: Record<string, unknown> };
  return m[name] ?? m.default?.[name];
}

type RedisClient = OutboxRedisClient & {
  quit(): Promise<unknown>;
  disconnect(): void;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
};
type RedisConstructor = new (...args: unknown[]) => RedisClient;

async function loadModules(): Promise<{
  Queue: typeof Queue;
  Worker: typeof Worker;
  loadRedis: () => Promise<RedisConstructor>;
}> {
  let bullmq: unknown;
  try {
    bullmq = await loadBullmq();
  } catch {
    throw new RevocationOutboxError(
      'OUTBOX_UNAVAILABLE',
      'the `redis` option needs the optional packages bullmq and ioredis: npm install bullmq ioredis.',
    );
  }
  const loadRedis = async (): Promise<RedisConstructor> => {
    try {
      const ioredis = await loadIoredis();
      return (pick(ioredis, 'Redis') ?? (ioredis as { default: unknown }).default) as RedisConstructor;
    } catch {
      throw new RevocationOutboxError(
        'OUTBOX_UNAVAILABLE',
        'the `redis` option needs the optional package ioredis: npm install ioredis.',
      );
    }
  };
  return { Queue: pick(bullmq, 'Queue') as typeof Queue, Worker: pick(bullmq, 'Worker') as typeof Worker, loadRedis };
}

/** Our own connections: a producer that fails fast when Redis is away, a worker one that waits for it. */
async function connect(
  redis: ResolvedRedis,
  loadRedis: () => Promise<RedisConstructor>,
): Promise<(override: Record<string, unknown>) => RedisClient> {
  if (redis.kind === 'client') {
    const client = redis.client;
    return (override) => client.duplicate(override as never) as RedisClient;
  }
  const Redis = await loadRedis();
  if (redis.kind === 'url') return (override) => new Redis(redis.url, override);
  return (override) => new Redis({ ...redis.options, ...override });
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
  close(): Promise<void>;
}

export async function createBullmqQueue(ctx: JobContext, redis: ResolvedRedis): Promise<BullmqQueue> {
  const { Queue, Worker, loadRedis } = await loadModules();
  const open = await connect(redis, loadRedis);
  const name = queueNameFor(ctx.config.clientId);
  const { lockDuration, stalledInterval } = lockTimings(ctx.config.timeoutMs);
  const clients: RedisClient[] = [];
  const own = (override: Record<string, unknown>): RedisClient => {
    const client = open(override);
    // Reported by the queue and the worker, which BullMQ forwards them to.
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  };

  // enableOfflineQueue false: while Redis is away, add() fails at once instead of waiting for it.
  const producer = own({ enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  const queue = new Queue(name, { connection: producer, prefix: PREFIX });
  queue.on('error', (err) => debug('queue error: %s', describe(err)));
  let producerReady = false;
  const isProducerReady = (): boolean => producerReady;
  const readiness = queue.waitUntilReady().then(
    () => void (producerReady = true),
    () => undefined,
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
      worker = new Worker(name, processJob, {
        connection: own({ maxRetriesPerRequest: null }),
        prefix: PREFIX,
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
      worker.on('error', (err) => debug('worker error: %s', describe(err)));
      worker.on('failed', (_job, err) => {
        if (!(err instanceof RetryLater)) debug('a job run failed: %s', describe(err));
      });
      debug(
        'worker started on queue %s (concurrency %d, lock %d ms, stall check %d ms)',
        name,
        ctx.config.concurrency,
        lockDuration,
        stalledInterval,
      );
    }
    await worker.waitUntilReady();
  }

  async function add(id: string, job: StoredJob): Promise<void> {
    if (!isProducerReady()) {
      // First use: give the connection the same bounded time as a write.
      await withTimeout(readiness, ENQUEUE_TIMEOUT_MS);
      if (!isProducerReady())
        throw new RevocationOutboxError('OUTBOX_UNAVAILABLE', 'Redis is not reachable; the token was not queued.');
    }
    if (producer.status !== 'ready') {
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
    if (producer.status !== 'ready') throw unavailable();
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
    for (const client of clients) client.disconnect();
  }

  async function close(): Promise<void> {
    closing = true;
    // With Redis away, a graceful close would wait for it: force-close the worker (calls in flight are left
    // to the stall check of the next worker), then drop the connections.
    const reachable = clients.every((client) => client.status === 'ready');
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
    await Promise.all(
      clients
        .filter((client) => client.status !== 'end')
        .map((client) => client.quit().catch(() => client.disconnect())),
    );
  }

  if (ctx.config.worker) void runWorker().catch((err: unknown) => debug('the worker did not start: %s', describe(err)));
  debug('redis outbox on queue %s%s', name, ctx.config.worker ? '' : ' (no worker in this process: run one elsewhere)');
  return { add, runWorker, counts, close };
}

/** The promise's value, or undefined once `ms` have passed. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
