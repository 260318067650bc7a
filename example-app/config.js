// @ts-check
'use strict';
/**
 * Reads the example's configuration from the environment, once, at start-up. Every mistake is reported
 * here with the variable's name and what to do, never on the first request, and no message echoes a secret.
 *
 * With no POLAR_* variables the app runs against its in-process Polar stand-in; with POLAR_CLIENT_ID,
 * POLAR_CLIENT_SECRET and POLAR_SERVER it talks to the real Polar.
 */

/** Thrown for a configuration the app cannot start with. */
class ConfigError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * @typedef {object} RealPolarConfig
 * @property {string} clientId
 * @property {string} clientSecret
 * @property {'sandbox' | 'production'} server
 */

/**
 * @typedef {object} ExampleConfig
 * @property {number} port Port to listen on (PORT, default 3000).
 * @property {string} host Interface to listen on (HOST, default 127.0.0.1: the example is not exposed to the network).
 * @property {string} publicUrl Where browsers reach the app, without a trailing slash (PUBLIC_URL, default http://localhost:PORT).
 *   The OAuth redirect URI is `${publicUrl}/auth/callback`.
 * @property {string | undefined} sessionSecret Signs the session cookie (SESSION_SECRET). Required with real Polar;
 *   a random one per start otherwise.
 * @property {string | undefined} redisUrl Session store (REDIS_URL); the in-memory store when unset.
 * @property {string | number | boolean} trustProxy Express's `trust proxy` (TRUST_PROXY, default false).
 * @property {RealPolarConfig | undefined} polar Real Polar; undefined runs the in-process stand-in.
 */

const MIN_SESSION_SECRET_LENGTH = 32;

/**
 * @param {NodeJS.ProcessEnv} env
 * @param {string} name
 * @returns {string | undefined} the trimmed value, or undefined when unset or blank
 */
function read(env, name) {
  const value = env[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

/** @param {string | undefined} value */
function parsePort(value) {
  if (value === undefined) return 3000;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65535) {
    throw new ConfigError(`PORT must be a port number from 1 to 65535 (got "${value}").`);
  }
  return port;
}

/** @param {string} hostname */
function isLoopback(hostname) {
  return hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]';
}

/**
 * @param {string | undefined} value
 * @param {number} port
 */
function parsePublicUrl(value, port) {
  if (value === undefined) return `http://localhost:${port}`;
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`PUBLIC_URL must be an absolute URL such as https://app.example.com (got "${value}").`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
    throw new ConfigError(
      'PUBLIC_URL must use https (plain http only for localhost): the session cookie and the OAuth code travel over it.',
    );
  }
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    throw new ConfigError(
      'PUBLIC_URL must be an origin only, such as https://app.example.com (no path, query or credentials).',
    );
  }
  return url.origin;
}

/** @param {string | undefined} value */
function parseRedisUrl(value) {
  if (value === undefined) return undefined;
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError('REDIS_URL must be a URL such as redis://127.0.0.1:6379 (or rediss:// for TLS).');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError(`REDIS_URL must start with redis:// or rediss:// (got ${url.protocol}//).`);
  }
  return value;
}

/** @param {string | undefined} value */
function parseTrustProxy(value) {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  if (/^\d+$/.test(value)) return Number(value);
  return value; // 'loopback', a subnet list...: Express parses it
}

/**
 * @param {NodeJS.ProcessEnv} env
 * @returns {RealPolarConfig | undefined}
 */
function readPolar(env) {
  const clientId = read(env, 'POLAR_CLIENT_ID');
  const clientSecret = read(env, 'POLAR_CLIENT_SECRET');
  const server = read(env, 'POLAR_SERVER');
  if (clientId === undefined) {
    if (clientSecret !== undefined || server !== undefined) {
      throw new ConfigError(
        'POLAR_CLIENT_SECRET or POLAR_SERVER is set but POLAR_CLIENT_ID is not. Set all three to use Polar, ' +
          'or none to use the in-process stand-in.',
      );
    }
    return undefined;
  }
  if (clientSecret === undefined) {
    throw new ConfigError(
      'POLAR_CLIENT_ID is set but POLAR_CLIENT_SECRET is not. Copy the secret of your Polar OAuth client into POLAR_CLIENT_SECRET.',
    );
  }
  if (server !== 'sandbox' && server !== 'production') {
    throw new ConfigError(
      `POLAR_SERVER must be "sandbox" or "production", the environment your OAuth client was created in` +
        (server === undefined ? ' (it is not set).' : '.'),
    );
  }
  return { clientId, clientSecret, server };
}

/**
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {ExampleConfig}
 */
function readConfig(env = process.env) {
  const polar = readPolar(env);
  const port = parsePort(read(env, 'PORT'));
  const sessionSecret = read(env, 'SESSION_SECRET');
  if (polar && sessionSecret === undefined) {
    throw new ConfigError(
      'SESSION_SECRET is required when POLAR_CLIENT_ID is set: it signs the session cookie. ' +
        "Generate one with: node -e \"console.log(require('crypto').randomBytes(32).toString('hex'))\"",
    );
  }
  if (sessionSecret !== undefined && sessionSecret.length < MIN_SESSION_SECRET_LENGTH) {
    throw new ConfigError(`SESSION_SECRET must be at least ${MIN_SESSION_SECRET_LENGTH} characters long.`);
  }
  return {
    port,
    host: read(env, 'HOST') ?? '127.0.0.1',
    publicUrl: parsePublicUrl(read(env, 'PUBLIC_URL'), port),
    sessionSecret,
    redisUrl: parseRedisUrl(read(env, 'REDIS_URL')),
    trustProxy: parseTrustProxy(read(env, 'TRUST_PROXY')),
    polar,
  };
}

module.exports = { readConfig, ConfigError };
