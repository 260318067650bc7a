#!/usr/bin/env node
'use strict';
/**
 * express-polar-logout-worker: drains the Redis revocation outbox, for deployments whose web processes
 * use `createRevocationOutbox({ redis, worker: false })`. Options come from the environment:
 *
 *   POLAR_CLIENT_ID, POLAR_CLIENT_SECRET, REDIS_URL           required
 *   POLAR_SERVER (production|sandbox), POLAR_BASE_URL, POLAR_CLIENT_AUTH
 *   POLAR_OUTBOX_CONCURRENCY, POLAR_OUTBOX_TIMEOUT_MS, POLAR_OUTBOX_MAX_AGE_MS,
 *   POLAR_OUTBOX_BACKOFF_INITIAL_MS, POLAR_OUTBOX_BACKOFF_MAX_MS, POLAR_OUTBOX_ENCRYPTION_KEY,
 *   POLAR_OUTBOX_PREFIX, POLAR_OUTBOX_STUCK_AFTER_MS (default 60000)
 *
 * A Redis it cannot reach is reported at once (host and port, never a password). When the worker makes no
 * progress for POLAR_OUTBOX_STUCK_AFTER_MS (outbox.health(): no job settled and no idle heartbeat), it
 * exits with code 3 so that its supervisor restarts it.
 *
 * POLAR_OUTBOX_ENCRYPTION_KEY may list several keys, comma-separated, the current one first
 * (`newKey,oldKey`): the worker then drains jobs queued under any of them.
 *
 * It prints one JSON line per settled token (no token, no secret) and stops cleanly on SIGTERM/SIGINT,
 * letting calls in flight finish. Set DEBUG=express-polar-logout* for more.
 */
const { createRevocationOutbox } = require('../dist/index.js');

const env = process.env;
const HEALTH_CHECK_MS = 5000;

function log(record) {
  process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), ...record })}\n`);
}

/** An integer from the environment, or the raw text so that validation names the option. */
function number(name) {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  return /^\d+$/.test(raw) ? Number(raw) : raw;
}

/** One key, or a keyring from a comma-separated list (each entry is validated, and named, by the library). */
function encryptionKey() {
  const raw = env.POLAR_OUTBOX_ENCRYPTION_KEY;
  if (raw === undefined || raw === '' || !raw.includes(',')) return raw;
  return raw.split(',').map((key) => key.trim());
}

function definedOnly(object) {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined && value !== ''));
}

// The library's warnings (an unreachable Redis, a wrong client secret) as log lines, the moment they happen.
process.on('warning', (warning) => {
  if (warning.name === 'PolarLogoutWarning') log({ level: 'warn', code: warning.code, msg: warning.message });
});

async function main() {
  if (!env.REDIS_URL) {
    log({
      level: 'error',
      msg: 'REDIS_URL is required: the worker drains the outbox that web processes fill in Redis.',
    });
    process.exitCode = 2;
    return;
  }
  const backoff = definedOnly({
    initialDelayMs: number('POLAR_OUTBOX_BACKOFF_INITIAL_MS'),
    maxDelayMs: number('POLAR_OUTBOX_BACKOFF_MAX_MS'),
  });
  let outbox;
  try {
    outbox = createRevocationOutbox(
      definedOnly({
        clientId: env.POLAR_CLIENT_ID,
        clientSecret: env.POLAR_CLIENT_SECRET,
        server: env.POLAR_SERVER,
        baseUrl: env.POLAR_BASE_URL,
        clientAuth: env.POLAR_CLIENT_AUTH,
        redis: env.REDIS_URL,
        worker: false,
        concurrency: number('POLAR_OUTBOX_CONCURRENCY'),
        timeoutMs: number('POLAR_OUTBOX_TIMEOUT_MS'),
        maxAgeMs: number('POLAR_OUTBOX_MAX_AGE_MS'),
        backoff: Object.keys(backoff).length > 0 ? backoff : undefined,
        encryptionKey: encryptionKey(),
        prefix: env.POLAR_OUTBOX_PREFIX,
        onSettled: (event) =>
          log({ level: event.outcome === 'revoked' ? 'info' : 'warn', msg: 'revocation settled', ...event }),
      }),
    );
  } catch (err) {
    // Option errors name the option (e.g. `clientId`, `concurrency`), never a value.
    log({ level: 'error', msg: err instanceof Error ? err.message : 'invalid options' });
    process.exitCode = 2;
    return;
  }

  const stuckAfterMs = number('POLAR_OUTBOX_STUCK_AFTER_MS') ?? 60_000;
  if (typeof stuckAfterMs !== 'number' || stuckAfterMs < 1000) {
    log({ level: 'error', msg: 'POLAR_OUTBOX_STUCK_AFTER_MS must be a number of ms, at least 1000.' });
    process.exitCode = 2;
    await outbox.close();
    return;
  }
  let stopping = false;
  let watchdog;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    clearInterval(watchdog);
    log({ level: 'info', msg: `${signal}: finishing calls in flight, then exiting` });
    outbox.close().then(
      () => log({ level: 'info', msg: 'worker stopped' }),
      () => {
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  // Liveness: a worker that stopped taking jobs (or lost Redis) for too long exits for a restart.
  watchdog = setInterval(
    async () => {
      const health = await outbox.health({ stuckAfterMs });
      if (health.ok || stopping) return;
      const since = health.lastProgressAt ? health.lastProgressAt.toISOString() : 'start-up';
      log({
        level: 'error',
        msg: `no progress since ${since} (more than ${stuckAfterMs} ms${health.redisReachable ? '' : ', Redis unreachable'}): exiting for a restart`,
      });
      stopping = true;
      clearInterval(watchdog);
      process.exitCode = 3;
      await Promise.race([outbox.close(), new Promise((resolve) => setTimeout(resolve, 5000))]);
      process.exit(3);
    },
    Math.min(HEALTH_CHECK_MS, stuckAfterMs),
  );

  try {
    await outbox.runWorker();
  } catch (err) {
    log({ level: 'error', msg: err instanceof Error ? err.message : 'the worker did not start' });
    clearInterval(watchdog);
    process.exitCode = 1;
    await outbox.close();
    return;
  }
  if (!stopping) log({ level: 'info', msg: 'worker ready' });
}

main();
