/**
 * createRevocationOutbox(): keeps revoking, after the user has been answered, the tokens a logout could not
 * revoke because Polar was away. Options are checked at construction like polarLogout()'s; tokens are
 * sealed and given an HMAC job id here, then handed to a queue: BullMQ on Redis, or a scheduler in memory.
 */
import { buildRevoker } from '../revoker';
import type { TokenTypeHint } from '../types';
import { createBullmqQueue, DEFAULT_STUCK_AFTER_MS, type BullmqQueue } from './bullmq-queue';
import { deriveKeyring, jobIdOf, seal } from './crypto';
import { RevocationOutboxError } from './errors';
import {
  isQueueableToken,
  isTokenTypeHint,
  outboxDebug as debug,
  safeSessionIdHash,
  type JobContext,
  type StoredJob,
} from './job';
import { createMemoryQueue } from './memory-queue';
import { resolveOutboxConfig } from './options';
import { observeOutbox } from '../telemetry/outbox';
import type { RevocationOutbox, RevocationOutboxOptions } from './types';

export function createRevocationOutbox(options: RevocationOutboxOptions): RevocationOutbox {
  const config = resolveOutboxConfig(options);
  const keys = deriveKeyring(config.keyMaterials);
  const revoker = buildRevoker(config.revoker);
  const ctx: JobContext = { config, keys, revoker };
  let closed = false;

  function jobFor(token: string, hint: TokenTypeHint, sessionIdHash: unknown): { id: string; job: StoredJob } {
    if (closed) throw new RevocationOutboxError('OUTBOX_CLOSED', 'the outbox is closed; the token was not queued.');
    if (!isQueueableToken(token) || !isTokenTypeHint(hint)) {
      throw new RevocationOutboxError(
        'INVALID_TOKEN',
        'enqueue() takes a token (a non-empty string) and "access_token" or "refresh_token".',
      );
    }
    const id = jobIdOf(keys.current, token);
    const job: StoredJob = { v: 1, hint, sealedToken: seal(keys, token, id, hint), queuedAt: Date.now() };
    const hash = safeSessionIdHash(sessionIdHash);
    if (hash !== undefined) job.sessionIdHash = hash;
    return { id, job };
  }

  if (!config.redis) {
    debug(
      'in-memory outbox: queued revocations live in this process only and are lost on restart; pass `redis` to keep them',
    );
    const queue = createMemoryQueue(ctx);
    return observeOutbox({
      mode: 'memory',
      enqueue: reported((token, hint, context = {}) => {
        const { id, job } = jobFor(token, hint, context.sessionIdHash);
        queue.add(id, job);
      }),
      runWorker() {
        return closed
          ? Promise.reject(new RevocationOutboxError('OUTBOX_CLOSED', 'the outbox is closed.'))
          : Promise.resolve();
      },
      counts() {
        return Promise.resolve(queue.counts());
      },
      health() {
        // The scheduler lives in this process: it is as alive as the process.
        return Promise.resolve({ ok: !closed, worker: !closed, lastProgressAt: new Date(), redisReachable: true });
      },
      async close() {
        if (closed) return;
        closed = true;
        await queue.close();
        revoker.close();
      },
    });
  }

  const pending: Promise<BullmqQueue> = createBullmqQueue(ctx, config.redis);
  // Reported once here; every call below rethrows it.
  pending.catch((err: unknown) =>
    debug('the Redis outbox could not start: %s', err instanceof Error ? err.message : typeof err),
  );
  let closing: Promise<void> | undefined;

  return observeOutbox({
    mode: 'redis',
    enqueue: reported(async (token, hint, context = {}) => {
      const { id, job } = jobFor(token, hint, context.sessionIdHash);
      await (await pending).add(id, job);
      debug('%s queued as job %s', hint, id.slice(0, 11));
    }),
    async runWorker() {
      if (closed) throw new RevocationOutboxError('OUTBOX_CLOSED', 'the outbox is closed.');
      await (await pending).runWorker();
    },
    async counts() {
      return (await pending).counts();
    },
    async health(options = {}) {
      const stuckAfterMs = options.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS;
      try {
        return await (await pending).health(stuckAfterMs);
      } catch {
        return { ok: false, worker: false, lastProgressAt: undefined, redisReachable: false };
      }
    },
    close() {
      closed = true;
      closing ??= (async () => {
        try {
          await (await pending).close();
        } catch {
          // It never started: nothing to close but the revoker.
        } finally {
          revoker.close();
        }
      })();
      return closing;
    },
  });
}

type Enqueue = RevocationOutbox['enqueue'];

/** Always a promise (argument errors too), and a failed enqueue is reported here as well as by the caller. */
function reported(enqueue: (...args: Parameters<Enqueue>) => void | Promise<void>): Enqueue {
  return (token, hint, context) =>
    Promise.resolve()
      .then(() => enqueue(token, hint, context))
      .catch((err: unknown) => {
        debug(
          '%s not queued: %s',
          isTokenTypeHint(hint) ? hint : 'token',
          err instanceof RevocationOutboxError ? err.code : 'outbox error',
        );
        throw err;
      });
}

export { RevocationOutboxError, type RevocationOutboxErrorCode } from './errors';
export type {
  OutboxBackoffOptions,
  OutboxCounts,
  OutboxEncryptionKey,
  OutboxErrorCode,
  OutboxHealth,
  OutboxRedis,
  OutboxRedisClient,
  OutboxRedisConnectionOptions,
  OutboxSettledEvent,
  RevocationOutbox,
  RevocationOutboxOptions,
} from './types';
