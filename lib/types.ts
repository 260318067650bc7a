import type { Request } from 'express';
import type { RateLimitOptions } from './polar/rate-limit-options';
import type { SessionRegistry, SessionsLogoutSummary } from './sessions/types';
import type { LogoutScope } from './telemetry/types';

export type { RateLimitOptions };

/** Which Polar environment to talk to. */
export type PolarServer = 'production' | 'sandbox';

/** How the client authenticates at the revocation endpoint (RFC 6749 §2.3.1). */
export type ClientAuthMethod = 'client_secret_post' | 'client_secret_basic';

/** The RFC 7009 `token_type_hint` values. */
export type TokenTypeHint = 'access_token' | 'refresh_token';

/** The user's tokens as the app stored them. Missing, empty or non-string values mean "no such token". */
export interface TokenPair {
  accessToken?: unknown;
  refreshToken?: unknown;
}

/** Options shared by everything that talks to Polar's revocation endpoint. */
export interface PolarClientOptions {
  /** The Polar OAuth2 client id. Required. */
  clientId: string;
  /** The Polar OAuth2 client secret. Required; never logged, never put in an error. */
  clientSecret: string;
  /** `'production'` (https://api.polar.sh, the default) or `'sandbox'` (https://sandbox-api.polar.sh). */
  server?: PolarServer;
  /**
   * Overrides `server`: a local stand-in or a proxy. An origin only (`https://host[:port]`, no path, query or
   * fragment: `/v1/oauth2/revoke` is added). Must be https unless the host is loopback (127.0.0.1, ::1, localhost),
   * so that the client secret never travels in clear.
   */
  baseUrl?: string;
  /** How credentials are sent: in the form body (as Polar documents, the default) or as HTTP Basic. */
  clientAuth?: ClientAuthMethod;
  /**
   * The budget of calls to Polar (see "Polar's rate limit" in the README). Default: 80 % of Polar's limit for
   * `server` (400 a minute in production, 80 in sandbox); none when `baseUrl` is set; `false` turns it off.
   */
  rateLimit?: RateLimitOptions | false;
}

/**
 * A Redis shared by every instance of the app: a `redis://` or `rediss://` URL, or an ioredis (5, 6; Sentinel,
 * Cluster) or node-redis (5, 6; cluster) client. A client you pass is never closed by the library.
 */
export type SharedRedis = string | { duplicate(...args: never[]): unknown };

/** Options of the standalone revocation client. */
export interface PolarRevokerOptions extends PolarClientOptions {
  /**
   * Where the rate budget is shared with the app's other processes (see "Polar's rate limit" in the README).
   * Without it the budget is per process.
   */
  redis?: SharedRedis;
  /** Total budget in ms for one revoke() call, retries included. Default 5000. */
  timeoutMs?: number;
  /** Extra attempts for network errors, 429 and 5xx (honouring Retry-After within the budget). Default 1. */
  retries?: number;
}

/** Why a token's revocation failed. Codes are stable. */
export type RevocationErrorCode =
  /** The time budget ran out before Polar answered. */
  | 'TIMEOUT'
  /** The request was cancelled by the caller's AbortSignal. */
  | 'ABORTED'
  /** Polar could not be reached (refused, reset, DNS failure, TLS failure). */
  | 'NETWORK_ERROR'
  /** Polar answered 429. */
  | 'RATE_LIMITED'
  /** Polar answered 5xx. */
  | 'SERVER_ERROR'
  /** Polar rejected the client credentials (`invalid_client`): check clientId and clientSecret. */
  | 'INVALID_CLIENT'
  /** Polar answered another 4xx: the request was refused and will not succeed if repeated. */
  | 'REJECTED'
  /** Something answered 200 with an HTML page or a redirect: baseUrl does not point at Polar's API. */
  | 'UNEXPECTED_RESPONSE'
  /** Not sent: the rate budget for Polar was spent (see `rateLimit`). Retryable; queued when there is an outbox. */
  | 'THROTTLED';

/** What went wrong, with nothing secret in it. */
export interface RevocationError {
  code: RevocationErrorCode;
  /** The HTTP status Polar answered with, when it answered. */
  httpStatus?: number;
}

/** The outcome of one token's revocation. */
export interface TokenOutcome {
  /** `revoked`: Polar confirmed (200); `absent`: there was no token; `failed`: see `error`. */
  status: 'revoked' | 'absent' | 'failed';
  /** HTTP attempts made (0 when absent). */
  attempts: number;
  /** Time spent on this token in ms. */
  durationMs: number;
  /** Present when `status` is `failed`. */
  error?: RevocationError;
  /** Present when the failed token was handed to a revocation outbox to be retried after the response. */
  queued?: boolean;
}

/** Options of `verify()`. */
export interface VerifyOptions {
  /** Cancels the check: it then resolves `{ ok: false, error: { code: 'ABORTED' } }`. Already aborted: nothing is sent. */
  signal?: AbortSignal;
}

/**
 * What `verify()` found: `ok` when Polar accepted the URL and the client credentials, otherwise the same error
 * a token's revocation would report (`INVALID_CLIENT`, `UNEXPECTED_RESPONSE`, `NETWORK_ERROR`, `TIMEOUT`...).
 */
export type VerifyResult = { ok: true } | { ok: false; error: RevocationError };

/** The outcome of revoking a token pair. */
export interface RevocationResult {
  accessToken: TokenOutcome;
  refreshToken: TokenOutcome;
}

/**
 * The audit event handed to `onLogout` for every logout attempt that reached Polar's step. It holds no session
 * data (audit logs are written to disk): the hook reads who logged out from `req.session`, a frozen copy.
 */
export interface LogoutEvent {
  /** When the logout started (ISO 8601). */
  at: string;
  /** True when the user is logged out: session destroyed and a success answer is about to be sent. */
  loggedOut: boolean;
  /** Whether the session was destroyed in its store. */
  sessionDestroyed: boolean;
  /** Per-token revocation outcomes. */
  revocation: RevocationResult;
  /** Where the user is sent. */
  redirectTo: string;
  /** Time from the start of the logout to the audit call, in ms. */
  durationMs: number;
  /** `req.ip` (honours Express's `trust proxy`). */
  ip: string | undefined;
  /** The User-Agent header. */
  userAgent: string | undefined;
  /** First 16 hex characters of SHA-256(session id): correlates events without revealing the id. */
  sessionIdHash: string | undefined;
  /**
   * Why the logout did not complete, when `loggedOut` is false; or, with `loggedOut` true,
   * `TOMBSTONE_FAILED`: the session was deleted but guardSessionStore could not record its tombstone, so a
   * request in flight may write it back (check the tombstone store).
   */
  error?: { code: 'REVOCATION_FAILED' | 'SESSION_DESTROY_FAILED' | 'TOMBSTONE_FAILED' | 'SESSION_INDEX_FAILED' };
  /** Which sessions the logout ends: `'session'` (this one), `'others'` or `'everywhere'` (see `scope`). */
  scope: LogoutScope;
  /**
   * With `scope` `'others'` or `'everywhere'`: how many sessions were ended (this one included for `'everywhere'`),
   * and what happened to their tokens (this session's included).
   */
  sessions?: SessionsLogoutSummary;
}

/** What the middleware needs from a revocation outbox (see createRevocationOutbox). */
export interface RevocationQueue {
  /** Queue a token whose revocation failed for a reason that may pass. Resolves once the job is stored. */
  enqueue(token: string, hint: TokenTypeHint, context: { sessionIdHash?: string }): Promise<void>;
}

/** Options of polarLogout(). */
export interface PolarLogoutOptions<Req extends Request = Request> extends PolarRevokerOptions {
  /** Reads the user's tokens. Default: `req.session.accessToken` and `req.session.refreshToken`. */
  getTokens?: (req: Req) => TokenPair | Promise<TokenPair>;
  /** Where users land after logout: a path on this site or an absolute http(s) URL. Default `'/'`. */
  redirectTo?: string;
  /** Query or parsed-body field naming where to land instead; honoured only when safe. Default `'returnTo'`. */
  returnToParam?: string;
  /** Origins (`https://app.example.com`) that absolute returnTo URLs may point at. Only where users land. */
  allowedRedirectOrigins?: readonly string[];
  /**
   * Other origins (`https://app.example.com`) allowed to ask for a logout: a request whose `Origin` is one of these
   * is not refused as cross-site. Default none: only the request's own origin.
   */
  trustedOrigins?: readonly string[];
  /**
   * `'continue'` (default): log out locally anyway. `'fail'`: when a revocation failed for a reason that may pass
   * (network, timeout, 429, 5xx), keep the session and pass REVOCATION_FAILED to next(); a refusal that will not
   * pass (INVALID_CLIENT, REJECTED, UNEXPECTED_RESPONSE) still logs out and is reported in the event.
   */
  onRevocationFailure?: 'continue' | 'fail';
  /**
   * Audit hook, awaited (at most timeoutMs) before the answer; its errors are reported through `debug` only.
   * While it runs, `req.session` is a frozen copy of the session data as it was before the logout, without the
   * cookie and without the tokens; after it settles (or after timeoutMs) it is gone again.
   */
  onLogout?: (event: LogoutEvent, req: Req) => void | Promise<void>;
  /** The session cookie's name, as given to express-session. Default `'connect.sid'`. */
  cookieName?: string;
  /** HTTP methods that log out. Others get 405 with an Allow header. Default `['POST']`. */
  methods?: readonly string[];
  /** Failed tokens (network, timeout, 429, 5xx) are handed to this outbox to be revoked after the response. */
  outbox?: RevocationQueue;
  /**
   * Sends `Clear-Site-Data` on a successful logout: `true` for `"cache", "cookies", "storage"`, or the directives
   * to send. Default false. Browsers honour it over https (and on localhost) only.
   */
  clearSiteData?: boolean | readonly ClearSiteDataDirective[];
  /**
   * The session registry (createSessionRegistry()) whose `store` express-session uses. Needed for `scope`
   * `'others'` and `'everywhere'`.
   */
  sessions?: SessionRegistry;
  /**
   * Which sessions this handler ends. `'session'` (default): the current one. `'everywhere'`: every session of the
   * current session's user, on every instance sharing the registry's Redis, each one's tokens revoked. `'others'`:
   * all of them but the current one, which stays signed in.
   */
  scope?: LogoutScope;
}

/** A directive of the `Clear-Site-Data` header. */
export type ClearSiteDataDirective =
  'cache' | 'cookies' | 'storage' | 'executionContexts' | 'clientHints' | 'prefetchCache' | 'prerenderCache' | '*';

/**
 * The session fields the default `getTokens` reads. Opt in to typing them on `req.session`:
 * `declare module 'express-session' { interface SessionData extends PolarSessionData {} }`.
 */
export interface PolarSessionData {
  /** The user's Polar access token, as your OAuth callback stored it. */
  accessToken?: string;
  /** The user's Polar refresh token, as your OAuth callback stored it. */
  refreshToken?: string;
}
