#!/usr/bin/env node
'use strict';
/**
 * express-polar-logout-worker: drains the Redis revocation outbox, for deployments whose web processes
 * use `createRevocationOutbox({ redis, worker: false })`. Options come from the environment:
 *
 *   POLAR_CLIENT_ID, POLAR_CLIENT_SECRET, REDIS_URL           required
 *   POLAR_SERVER (production|sandbox), POLAR_BASE_URL, POLAR_CLIENT_AUTH
 *   POLAR_OUTBOX_CONCURRENCY, POLAR_OUTBOX_TIMEOUT_MS, POLAR_OUTBOX_MAX_AGE_MS,
 *   POLAR_OUTBOX_BACKOFF_INITIAL_MS, POLAR_OUTBOX_BACKOFF_MAX_MS, POLAR_OUTBOX_ENCRYPTION_KEY
 *
 * POLAR_OUTBOX_ENCRYPTION_KEY may list several keys, comma-separated, the current one first
 * (`newKey,oldKey`): the worker then drains jobs queued under any of them.
 *
 * It prints one JSON line per settled token (no token, no secret) and stops cleanly on SIGTERM/SIGINT,
 * letting calls in flight finish. Set DEBUG=express-polar-logout* for more.
 */
const { createRevocationOutbox } = require('../dist/index.js');

const env = process.env;

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

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
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

  try {
    await outbox.runWorker();
  } catch (err) {
    log({ level: 'error', msg: err instanceof Error ? err.message : 'the worker did not start' });
    process.exitCode = 1;
    await outbox.close();
    return;
  }
  if (!stopping) log({ level: 'info', msg: 'worker ready' });
}

main();
