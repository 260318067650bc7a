// @ts-check
'use strict';
/**
 * The revocation outbox: when Polar cannot be reached at logout (network error, time budget spent, 429, 5xx),
 * polarLogout() hands the token to it and the outbox keeps revoking it after the user has been answered. In
 * Redis (BullMQ) when REDIS_URL is set, so queued tokens survive a restart; in memory otherwise (lost on restart).
 * Its onSettled hook feeds the audit page.
 */
const { createRevocationOutbox } = require('express-polar-logout');
const { StartupError, describeRedis } = require('./session-store');

/** How long start-up waits for the outbox's Redis connection, and the audit page for its counts. */
const STARTUP_TIMEOUT_MS = 5000;
const COUNTS_TIMEOUT_MS = 1000;

/**
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @returns {Promise<T | undefined>} the value, or undefined once `ms` have passed
 */
function within(promise, ms) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  return Promise.race([
    promise,
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * @typedef {object} OutboxHandle
 * @property {import('express-polar-logout').RevocationOutbox} outbox Passed to polarLogout({ outbox }).
 * @property {'memory' | 'redis'} kind
 * @property {string} description For the start-up banner and the audit page; never holds a password.
 * @property {() => Promise<import('express-polar-logout').OutboxCounts | undefined>} counts Tokens not settled
 *   yet, or undefined when the outbox cannot say within a second (Redis away).
 * @property {() => Promise<void>} close Lets calls in flight finish, then closes the connections.
 */

/**
 * @param {object} options
 * @param {import('express-polar-logout').PolarClientOptions} options.client Same client as polarLogout()'s.
 * @param {string | undefined} options.redisUrl
 * @param {(event: import('express-polar-logout').OutboxSettledEvent) => void} options.onSettled
 * @param {import('express-polar-logout').OutboxBackoffOptions | undefined} [options.backoff] Tests only.
 * @returns {Promise<OutboxHandle>}
 */
async function createOutbox({ client, redisUrl, onSettled, backoff }) {
  const outbox = createRevocationOutbox({
    ...client,
    ...(redisUrl ? { redis: redisUrl } : {}),
    ...(backoff ? { backoff } : {}),
    onSettled,
  });
  const counts = () =>
    within(
      outbox.counts().catch(() => undefined),
      COUNTS_TIMEOUT_MS,
    );
  const handle = { outbox, counts, close: () => outbox.close() };
  if (!redisUrl) {
    return { ...handle, kind: 'memory', description: 'in memory (queued revocations are lost on restart)' };
  }
  const where = describeRedis(redisUrl);
  // The outbox connects in the background; a first call shows now, not at the first failed logout, whether
  // it can (bullmq and ioredis installed, Redis reachable).
  const reason = await within(
    outbox.counts().then(
      () => 'ok',
      (/** @type {unknown} */ err) => (err instanceof Error ? err.message : String(err)),
    ),
    STARTUP_TIMEOUT_MS,
  );
  if (reason !== 'ok') {
    await outbox.close();
    throw new StartupError(
      `Cannot use Redis at ${where} for the revocation outbox (${reason ?? `no answer within ${STARTUP_TIMEOUT_MS} ms`}). ` +
        'Start Redis, fix REDIS_URL, or unset REDIS_URL to keep sessions and the outbox in memory.',
    );
  }
  return { ...handle, kind: 'redis', description: `in Redis at ${where}` };
}

module.exports = { createOutbox };
