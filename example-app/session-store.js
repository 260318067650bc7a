// @ts-check
'use strict';
/**
 * The session store: express-session's in-memory store by default, or Redis (connect-redis + node-redis)
 * when REDIS_URL is set, as most apps that run more than one instance do. A Redis that cannot be reached
 * stops the app at start-up with a clear message instead of failing the first request.
 *
 * The store is wrapped by the session registry (createSessionRegistry): it indexes every signed-in session by
 * its Polar user, for the "Your sessions" page and "sign out everywhere", and keeps ended sessions ended. Its
 * index lives in the same Redis, over the same connection, or in memory without REDIS_URL.
 */
const session = require('express-session');
const { RedisStore } = require('connect-redis');
const { createClient } = require('redis');
const { createSessionRegistry } = require('express-polar-logout');

/** Sessions live under this prefix, so the example can share a Redis with other things. */
const REDIS_PREFIX = 'polar-example:sess:';
const CONNECT_TIMEOUT_MS = 5000;

/** Thrown when a dependency the configuration asks for is not usable at start-up. */
class StartupError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'StartupError';
  }
}

/**
 * @typedef {object} SessionStoreHandle
 * @property {session.Store} store What express-session uses: the app's store wrapped by the registry.
 * @property {session.Store} inner The app's store itself (MemoryStore or connect-redis), unwrapped.
 * @property {import('express-polar-logout').SessionRegistry} sessions The per-user session registry.
 * @property {import('express-polar-logout').SharedRedis | undefined} client With REDIS_URL: the one connection the
 *   sessions and their index use, for the rate budget to share too (close() closes it).
 * @property {'memory' | 'redis'} kind
 * @property {string} description For the start-up banner; never holds a password.
 * @property {string | undefined} prefix Key prefix in Redis.
 * @property {() => Promise<void>} close
 */

/**
 * The URL without credentials, for messages.
 * @param {string} redisUrl
 */
function describeRedis(redisUrl) {
  const url = new URL(redisUrl);
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}

/**
 * Who a stored session belongs to: the Polar user the sign-in stored. A sign-in in progress (no user yet) is
 * anonymous and not indexed.
 * @param {Record<string, unknown>} data
 */
function userIdOf(data) {
  const user = /** @type {{ sub?: unknown } | undefined} */ (data.user);
  return user?.sub;
}

/**
 * @param {session.Store} inner
 * @param {import('express-polar-logout').SharedRedis | undefined} redis
 * @param {(message: string) => void} log
 */
function registryFor(inner, redis, log) {
  return createSessionRegistry({
    store: inner,
    ...(redis ? { redis } : {}),
    userIdOf,
    // A cookie of a session that was signed out elsewhere came back: it is refused, not signed in again.
    onRefused: ({ operation, sessionIdHash }) =>
      log(`refused a signed-out session (${operation}), session ${sessionIdHash ?? '-'}`),
  });
}

/**
 * @param {{ redisUrl?: string | undefined, log?: (message: string) => void }} options
 * @returns {Promise<SessionStoreHandle>}
 */
async function createSessionStore({ redisUrl, log = (message) => console.error(message) }) {
  if (!redisUrl) {
    const inner = new session.MemoryStore();
    const sessions = registryFor(inner, undefined, log);
    return {
      store: sessions.store,
      inner,
      sessions,
      client: undefined,
      kind: 'memory',
      description: 'in memory (one process only)',
      prefix: undefined,
      close: () => sessions.close(),
    };
  }
  const where = describeRedis(redisUrl);
  let connected = false;
  let reportedDown = false;
  const client = createClient({
    url: redisUrl,
    socket: {
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Before the first connection: give up at once (fail fast). After it: reconnect with a capped backoff.
      // (A new Error rather than `cause`: node-redis checks `instanceof Error`, which fails for errors from
      // another realm, as under jest.)
      reconnectStrategy: (retries, cause) =>
        connected ? Math.min(100 * 2 ** retries, 5000) : new Error(cause.message),
    },
  });
  client.on('error', (/** @type {Error} */ err) => {
    if (!connected || reportedDown) return;
    reportedDown = true;
    log(`Redis at ${where} is unreachable (${err.message}); session requests fail until it is back.`);
  });
  client.on('ready', () => {
    if (reportedDown) log(`Redis at ${where} is reachable again.`);
    reportedDown = false;
  });

  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    if (client.isOpen) client.destroy();
    const reason = err instanceof Error ? err.message : String(err);
    throw new StartupError(
      `Cannot use Redis at ${where} for sessions (${reason}). Start Redis, fix REDIS_URL, or unset REDIS_URL ` +
        'to keep sessions in memory.',
    );
  }
  connected = true;
  const inner = new RedisStore({ client, prefix: REDIS_PREFIX });
  // One connection for the sessions and their per-user index (the registry never closes a client it was given).
  const sessions = registryFor(inner, client, log);
  return {
    store: sessions.store,
    inner,
    sessions,
    client,
    kind: 'redis',
    description: `in Redis at ${where}`,
    prefix: REDIS_PREFIX,
    close: async () => {
      connected = false;
      await sessions.close();
      if (client.isOpen) await client.close();
    },
  };
}

module.exports = { createSessionStore, describeRedis, StartupError, REDIS_PREFIX };
