/**
 * Options are checked once, at construction, and turned into a fully defaulted config so that the
 * per-request path never re-validates. Every message names the option and says what to do; none echoes
 * a secret (baseUrl is never echoed either: it may hold credentials).
 */
import { invalidOption } from './errors';
import type { BucketShape } from './polar/rate-budget';
import { resolveRateLimit } from './polar/rate-limit-options';
import { createRedisAdapter, type RedisAdapter } from './redis';
import type { ClientAuthMethod, PolarClientOptions, PolarLogoutOptions, PolarRevokerOptions, TokenPair } from './types';
import type { Request } from 'express';
import { registryInternals, type RegistryInternals } from './sessions/internals';
import type { LogoutScope } from './telemetry/types';
import {
  oneOf,
  optionalFunction,
  optionalInteger,
  rejectUnknownKeys,
  requireNonEmptyString,
  requireObject,
} from './validate';

export const POLAR_SERVERS = {
  production: 'https://api.polar.sh',
  sandbox: 'https://sandbox-api.polar.sh',
} as const;

export const REVOKE_PATH = '/v1/oauth2/revoke';

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

export interface ClientConfig {
  clientId: string;
  clientSecret: string;
  /** Full URL of the revocation endpoint. */
  revokeUrl: string;
  clientAuth: ClientAuthMethod;
  /** The rate budget's shape; undefined: no budget. */
  rateLimit: BucketShape | undefined;
}

export interface RevokerConfig extends ClientConfig {
  timeoutMs: number;
  retries: number;
  /** Where the rate budget is shared across processes; undefined: per process. */
  rateRedis: RedisAdapter | undefined;
  /** Whether close() closes rateRedis (opened for these options), or its owner does (the outbox's). */
  ownsRateRedis: boolean;
}

export interface LogoutConfig<Req extends Request = Request> extends RevokerConfig {
  getTokens: ((req: Req) => TokenPair | Promise<TokenPair>) | undefined;
  redirectTo: string;
  returnToParam: string;
  allowedRedirectOrigins: ReadonlySet<string>;
  trustedOrigins: ReadonlySet<string>;
  onRevocationFailure: 'continue' | 'fail';
  onLogout: PolarLogoutOptions<Req>['onLogout'];
  cookieName: string;
  methods: readonly string[];
  outbox: PolarLogoutOptions<Req>['outbox'];
  /** The Clear-Site-Data header value sent on a successful logout, or undefined when not configured. */
  clearSiteData: string | undefined;
  /** The session registry's internals, with `sessions`. */
  sessions: RegistryInternals | undefined;
  /** The registry's wrapped store, to check that express-session was given it. */
  sessionsStore: object | undefined;
  scope: LogoutScope;
}

const CLIENT_KEYS = ['clientId', 'clientSecret', 'server', 'baseUrl', 'clientAuth', 'rateLimit'] as const;
const REVOKER_KEYS = [...CLIENT_KEYS, 'timeoutMs', 'retries', 'redis'] as const;
const LOGOUT_KEYS = [
  ...REVOKER_KEYS,
  'getTokens',
  'redirectTo',
  'returnToParam',
  'allowedRedirectOrigins',
  'trustedOrigins',
  'onRevocationFailure',
  'onLogout',
  'cookieName',
  'methods',
  'outbox',
  'clearSiteData',
  'sessions',
  'scope',
] as const;

/** The base URL of the revocation endpoint, https unless loopback so the secret never travels in clear. */
function resolveBaseUrl(server: unknown, baseUrl: unknown): string {
  if (baseUrl === undefined) {
    const name = oneOf(server, 'server', ['production', 'sandbox'] as const, 'production');
    return POLAR_SERVERS[name];
  }
  if (typeof baseUrl !== 'string' || baseUrl === '') {
    throw invalidOption('baseUrl', 'must be a non-empty URL string such as https://api.polar.sh.');
  }
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw invalidOption('baseUrl', 'is not a valid absolute URL (expected e.g. https://api.polar.sh).');
  }
  if (url.username || url.password) {
    throw invalidOption('baseUrl', 'must not contain credentials; pass clientId and clientSecret instead.');
  }
  // The library appends /v1/oauth2/revoke itself: `https://api.polar.sh/v1` would send every revocation to a 404.
  // `url.search`/`url.hash` are empty for a bare "?" or "#", hence the raw check.
  if ((url.pathname !== '/' && url.pathname !== '') || /[?#]/.test(baseUrl)) {
    throw invalidOption(
      'baseUrl',
      'must be an origin only (scheme, host and optional port), such as https://api.polar.sh: ' +
        'no path, query or fragment. The library adds /v1/oauth2/revoke itself.',
    );
  }
  const loopback = LOOPBACK_HOSTS.has(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw invalidOption(
      'baseUrl',
      `must use https (got ${url.protocol}//${url.host}); plain http is only allowed for loopback hosts ` +
        '(127.0.0.1, ::1, localhost), so that the client secret never travels in clear.',
    );
  }
  return url.origin;
}

export function resolveClientConfig(options: PolarClientOptions): ClientConfig {
  const clientId = requireNonEmptyString(options.clientId, 'clientId', 'your Polar OAuth2 client id');
  const clientSecret = requireNonEmptyString(
    options.clientSecret,
    'clientSecret',
    'your Polar OAuth2 client secret; read it from the environment, never commit it',
  );
  return {
    clientId,
    clientSecret,
    revokeUrl: resolveBaseUrl(options.server, options.baseUrl) + REVOKE_PATH,
    clientAuth: oneOf(
      options.clientAuth,
      'clientAuth',
      ['client_secret_post', 'client_secret_basic'] as const,
      'client_secret_post',
    ),
    rateLimit: resolveRateLimit(options.rateLimit, options.server, options.baseUrl),
  };
}

function resolveRevokerFields(options: PolarRevokerOptions): RevokerConfig {
  const client = resolveClientConfig(options);
  return {
    ...client,
    timeoutMs: optionalInteger(options.timeoutMs, 'timeoutMs', 5000, 1, 120_000),
    retries: optionalInteger(options.retries, 'retries', 1, 0, 10),
    rateRedis: resolveBudgetRedis(options.redis, client),
    ownsRateRedis: true,
  };
}

/** `redis` on the client and the handler is where the rate budget is shared: only meaningful with a budget. */
function resolveBudgetRedis(redis: unknown, client: ClientConfig): RedisAdapter | undefined {
  if (redis === undefined) return undefined;
  if (!client.rateLimit) {
    throw invalidOption(
      'redis',
      'shares the rate budget across processes, and there is no budget: rateLimit is false, or baseUrl is set ' +
        'without rateLimit. Set rateLimit, or drop redis.',
    );
  }
  return createRedisAdapter(redis, { feature: 'the shared rate budget', option: 'redis' });
}

export function resolveRevokerConfig(options: PolarRevokerOptions): RevokerConfig {
  requireObject(options, 'createPolarRevoker({ clientId, clientSecret })');
  rejectUnknownKeys(options, REVOKER_KEYS, 'createPolarRevoker');
  return resolveRevokerFields(options);
}

/** Client options alone, for factories (the outbox) that add their own keys and check them themselves. */
export const CLIENT_OPTION_KEYS: readonly string[] = CLIENT_KEYS;

/** Normalises an origin option entry to `scheme://host[:port]`, refusing anything with a path or credentials. */
function normaliseOrigin(value: unknown, option: string): string {
  if (typeof value !== 'string') throw invalidOption(option, 'must be a string such as https://app.example.com.');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // Never echoed: a mistyped entry may hold credentials.
    throw invalidOption(option, 'is not an origin (expected e.g. https://app.example.com).');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw invalidOption(option, `must be an http(s) origin (got ${url.protocol}).`);
  }
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) {
    throw invalidOption(option, 'must be an origin only: scheme, host and port, no credentials, path or query.');
  }
  return url.origin;
}

function resolveOrigins(value: unknown, option: string): ReadonlySet<string> {
  if (value === undefined) return new Set();
  if (!Array.isArray(value)) {
    throw invalidOption(option, 'must be an array of origins such as ["https://app.example.com"].');
  }
  return new Set(value.map((origin: unknown, i) => normaliseOrigin(origin, `${option}[${i}]`)));
}

/** The directives of the Clear-Site-Data header (W3C Clear Site Data); `true` means the three every browser knows. */
export const CLEAR_SITE_DATA_DIRECTIVES = [
  'cache',
  'cookies',
  'storage',
  'executionContexts',
  'clientHints',
  'prefetchCache',
  'prerenderCache',
  '*',
] as const;
const CLEAR_SITE_DATA_DEFAULT = ['cache', 'cookies', 'storage'] as const;

function resolveClearSiteData(value: unknown): string | undefined {
  if (value === undefined || value === false) return undefined;
  const hint = `must be true, false, or a non-empty array of ${CLEAR_SITE_DATA_DIRECTIVES.map((d) => `'${d}'`).join(', ')}.`;
  let directives: readonly unknown[];
  if (value === true) directives = CLEAR_SITE_DATA_DEFAULT;
  else if (Array.isArray(value) && value.length > 0) directives = value as unknown[];
  else throw invalidOption('clearSiteData', hint);
  for (const [i, directive] of directives.entries()) {
    if (!(CLEAR_SITE_DATA_DIRECTIVES as readonly unknown[]).includes(directive)) {
      throw invalidOption(`clearSiteData[${i}]`, hint);
    }
  }
  return [...new Set(directives)].map((d) => `"${String(d)}"`).join(', ');
}

const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const COOKIE_NAME = HTTP_TOKEN;
// A conservative check on the fallback target: a path on this site or an absolute http(s) URL, no controls.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f-\u009f\\]/;

function resolveRedirectTo(value: unknown): string {
  if (value === undefined) return '/';
  if (typeof value !== 'string' || value === '' || CONTROL_OR_SPACE.test(value)) {
    throw invalidOption('redirectTo', 'must be a path such as "/" or an absolute http(s) URL, without spaces.');
  }
  if (value.startsWith('/')) {
    if (value.startsWith('//')) {
      throw invalidOption('redirectTo', 'must not start with "//" (that is another site); use an absolute URL.');
    }
    return value;
  }
  try {
    const url = new URL(value);
    if (url.protocol === 'https:' || url.protocol === 'http:') return url.href;
  } catch {
    // fall through to the error below
  }
  throw invalidOption('redirectTo', 'must be a path starting with "/" or an absolute http(s) URL.');
}

function resolveMethods(value: unknown): readonly string[] {
  if (value === undefined) return ['POST'];
  if (!Array.isArray(value) || value.length === 0) {
    throw invalidOption('methods', 'must be a non-empty array of HTTP methods such as ["POST"].');
  }
  const methods = value.map((m: unknown, i) => {
    if (typeof m !== 'string' || !HTTP_TOKEN.test(m))
      throw invalidOption(`methods[${i}]`, 'must be an HTTP method name.');
    return m.toUpperCase();
  });
  return [...new Set(methods)];
}

export function resolveLogoutConfig<Req extends Request>(options: PolarLogoutOptions<Req>): LogoutConfig<Req> {
  requireObject(options, 'polarLogout({ clientId, clientSecret })');
  rejectUnknownKeys(options, LOGOUT_KEYS, 'polarLogout');

  const cookieName = options.cookieName ?? 'connect.sid';
  if (typeof cookieName !== 'string' || !COOKIE_NAME.test(cookieName)) {
    throw invalidOption('cookieName', 'must be the session cookie name given to express-session (e.g. "connect.sid").');
  }
  const returnToParam = options.returnToParam ?? 'returnTo';
  if (typeof returnToParam !== 'string' || returnToParam === '') {
    throw invalidOption('returnToParam', 'must be a non-empty string such as "returnTo".');
  }
  const outbox = options.outbox as unknown;
  if (
    outbox !== undefined &&
    (typeof outbox !== 'object' || outbox === null || typeof (outbox as { enqueue?: unknown }).enqueue !== 'function')
  ) {
    throw invalidOption('outbox', 'must be the object returned by createRevocationOutbox().');
  }

  const sessions = registryInternals(options.sessions);
  if (options.sessions !== undefined && !sessions) {
    throw invalidOption('sessions', 'must be the object returned by createSessionRegistry().');
  }
  const scope = oneOf(options.scope, 'scope', ['session', 'others', 'everywhere'] as const, 'session');
  if (scope !== 'session' && !sessions) {
    throw invalidOption(
      'scope',
      `'${scope}' needs \`sessions\` (createSessionRegistry()): without the per-user index there is no way to ` +
        "find the user's other sessions.",
    );
  }

  return {
    ...resolveRevokerFields(options),
    sessions,
    sessionsStore: sessions?.store,
    scope,
    getTokens: optionalFunction(options.getTokens, 'getTokens'),
    redirectTo: resolveRedirectTo(options.redirectTo),
    returnToParam,
    allowedRedirectOrigins: resolveOrigins(options.allowedRedirectOrigins, 'allowedRedirectOrigins'),
    trustedOrigins: resolveOrigins(options.trustedOrigins, 'trustedOrigins'),
    onRevocationFailure: oneOf(
      options.onRevocationFailure,
      'onRevocationFailure',
      ['continue', 'fail'] as const,
      'continue',
    ),
    onLogout: optionalFunction(options.onLogout, 'onLogout'),
    cookieName,
    methods: resolveMethods(options.methods),
    outbox: options.outbox,
    clearSiteData: resolveClearSiteData(options.clearSiteData),
  };
}
