/**
 * The Polar revocation client (RFC 7009): one keep-alive agent per instance, both tokens revoked in
 * parallel, one time budget for everything including retries, and every failure translated into a
 * code and a status. axios errors (which carry the request body, hence the secret) never leave this file.
 */
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { Axios, type AxiosResponse } from 'axios';
import createDebug from 'debug';
import { resolveRevokerConfig, type RevokerConfig } from './options';
import { normaliseTokens } from './tokens';
import type {
  PolarRevokerOptions,
  RevocationError,
  RevocationErrorCode,
  RevocationResult,
  TokenOutcome,
  TokenPair,
  TokenTypeHint,
} from './types';
import { VERSION } from './version';

const debug = createDebug('express-polar-logout:revoker');

/** Polar answers `{}`; anything much larger is not an answer from Polar's revocation endpoint. */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** First in-request retry delay when Polar gives no Retry-After; doubles per attempt, with jitter. */
const RETRY_BASE_MS = 100;
const RETRY_CAP_MS = 1000;

export interface RevokeCallOptions {
  /** Cancels the call; outcomes then report `ABORTED`. */
  signal?: AbortSignal;
  /** Overrides the instance's budget for this call. */
  timeoutMs?: number;
  /** Overrides the instance's retries for this call (the outbox makes one attempt per job run). */
  retries?: number;
}

/** A token revocation that failed, with what a scheduler needs to know to try again. */
export interface AttemptFailure extends RevocationError {
  /** Whether trying again may succeed (network, timeout, 429, 5xx). */
  retryable: boolean;
  /** Polar's Retry-After, in ms, when it sent one. */
  retryAfterMs?: number;
}

/** An outcome with the internal detail of the last failure, for callers that schedule retries themselves. */
export interface DetailedTokenOutcome extends TokenOutcome {
  failure?: AttemptFailure;
}

export interface PolarRevoker {
  /** Revokes both tokens in parallel. Never rejects for Polar's faults: failures are in the outcomes. */
  revoke(tokens: TokenPair, options?: RevokeCallOptions): Promise<RevocationResult>;
  /** Revokes one token. Never rejects for Polar's faults. */
  revokeToken(token: string, hint: TokenTypeHint, options?: RevokeCallOptions): Promise<DetailedTokenOutcome>;
  /** Closes the keep-alive connections. The revoker must not be used afterwards. */
  close(): void;
}

/** The deadline shared by the calls of one revoke(): one timer, one controller. */
class Budget {
  readonly controller = new AbortController();
  readonly expiresAt: number;
  private readonly timer: NodeJS.Timeout;
  private readonly external: AbortSignal | undefined;
  private readonly onExternalAbort = (): void => this.controller.abort('aborted');

  constructor(timeoutMs: number, external: AbortSignal | undefined) {
    this.expiresAt = performance.now() + timeoutMs;
    this.timer = setTimeout(() => this.controller.abort('timeout'), timeoutMs);
    this.external = external;
    if (external) {
      if (external.aborted) this.controller.abort('aborted');
      else external.addEventListener('abort', this.onExternalAbort, { once: true });
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  remainingMs(): number {
    return this.expiresAt - performance.now();
  }

  /** The failure a cancelled call reports: the budget ran out, or the caller aborted. */
  abortFailure(): AttemptFailure {
    return this.signal.reason === 'aborted'
      ? { code: 'ABORTED', retryable: true }
      : { code: 'TIMEOUT', retryable: true };
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.external?.removeEventListener('abort', this.onExternalAbort);
  }
}

const ABORTED: unique symbol = Symbol('aborted');
const NETWORK_FAILED: unique symbol = Symbol('network failed');

/** Resolves when `promise` settles or `signal` aborts, whichever is first: the budget holds even if a call ignores it. */
function untilAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal,
): Promise<T | typeof ABORTED | typeof NETWORK_FAILED> {
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise((resolve) => {
    const onAbort = (): void => resolve(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      // The caller translates; the raw error (with the request body) goes no further than this.
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve(NETWORK_FAILED);
      },
    );
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Retry-After as delta-seconds or an HTTP date (RFC 9110 §10.2.3), in ms; undefined when absent or invalid. */
export function parseRetryAfter(value: unknown, now = Date.now()): number | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // Only an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"): Date.parse alone accepts almost anything.
  if (!/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function oauthErrorOf(body: unknown): string | undefined {
  if (typeof body !== 'string' || body.length === 0) return undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    const error = (parsed as { error?: unknown } | null)?.error;
    return typeof error === 'string' ? error : undefined;
  } catch {
    return undefined;
  }
}

/** Translates Polar's answer. RFC 7009 §2.2: 200 means revoked, including for tokens Polar no longer knows. */
export function classifyResponse(response: Pick<AxiosResponse, 'status' | 'headers' | 'data'>): AttemptFailure | null {
  const { status } = response;
  if (status >= 200 && status < 300) {
    const type = String(response.headers['content-type'] ?? '');
    // A web page is not Polar's API (a wrong baseUrl, a captive portal): claiming "revoked" would be a lie.
    return type.includes('text/html') ? { code: 'UNEXPECTED_RESPONSE', httpStatus: status, retryable: false } : null;
  }
  const retryAfterMs = parseRetryAfter(response.headers['retry-after']);
  const withRetryAfter = retryAfterMs === undefined ? {} : { retryAfterMs };
  if (status === 429) return { code: 'RATE_LIMITED', httpStatus: status, retryable: true, ...withRetryAfter };
  if (status >= 500) return { code: 'SERVER_ERROR', httpStatus: status, retryable: true, ...withRetryAfter };
  if (status === 401 || oauthErrorOf(response.data) === 'invalid_client') {
    return { code: 'INVALID_CLIENT', httpStatus: status, retryable: false };
  }
  if (status >= 400) return { code: 'REJECTED', httpStatus: status, retryable: false };
  // 1xx/3xx: redirects are not followed (they would carry the secret elsewhere).
  return { code: 'UNEXPECTED_RESPONSE', httpStatus: status, retryable: false };
}

function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}

function backoffMs(attempt: number): number {
  const ceiling = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

function publicError(failure: AttemptFailure): RevocationError {
  return failure.httpStatus === undefined
    ? { code: failure.code }
    : { code: failure.code, httpStatus: failure.httpStatus };
}

/** Codes for failures that may pass: worth another attempt now or, with an outbox, after the response. */
const RETRYABLE_CODES: ReadonlySet<RevocationErrorCode> = new Set<RevocationErrorCode>([
  'TIMEOUT',
  'ABORTED',
  'NETWORK_ERROR',
  'RATE_LIMITED',
  'SERVER_ERROR',
]);

export function isRetryableFailure(error: RevocationError | undefined): boolean {
  return error !== undefined && RETRYABLE_CODES.has(error.code);
}

/** Drops the scheduling detail: what revoke() returns is what audit events and callers see. */
function publicOutcome({ failure: _failure, ...outcome }: DetailedTokenOutcome): TokenOutcome {
  return outcome;
}

function absent(): TokenOutcome {
  return { status: 'absent', attempts: 0, durationMs: 0 };
}

/** Builds a revoker from an already validated config (polarLogout and the outbox validate their own options). */
export function buildRevoker(config: RevokerConfig): PolarRevoker {
  const isHttps = config.revokeUrl.startsWith('https:');
  // axios sets TCP keep-alive to 60 s on every request's socket and Node's agent sets it back to its own
  // keepAliveMsecs when the socket returns to the pool: with the same 60 s here, neither changes anything
  // and a pooled request makes no setsockopt calls (it made eight: a sixth of the client's CPU).
  const agentOptions = { keepAlive: true, keepAliveMsecs: 60_000 };
  const agent = isHttps ? new https.Agent(agentOptions) : new http.Agent(agentOptions);

  // Everything constant is computed once: the credentials part of the body or the Basic header.
  const headers: Record<string, string> = {
    'Content-Type': 'application/x-www-form-urlencoded',
    Accept: 'application/json',
    // Said outright: without the header, RFC 9110 lets a server pick any coding, and `decompress` is off.
    'Accept-Encoding': 'identity',
    'User-Agent': `express-polar-logout/${VERSION}`,
  };
  let credentialsBody: string;
  if (config.clientAuth === 'client_secret_basic') {
    // Percent-encoded, a space as %20: Polar decodes Basic credentials with Python's unquote, which keeps `+`.
    const basic = Buffer.from(
      `${encodeURIComponent(config.clientId)}:${encodeURIComponent(config.clientSecret)}`,
    ).toString('base64');
    headers.Authorization = `Basic ${basic}`;
    credentialsBody = '';
  } else {
    credentialsBody = `&client_id=${formEncode(config.clientId)}&client_secret=${formEncode(config.clientSecret)}`;
  }

  // `new Axios(config)` rather than axios.create(): its defaults are this config alone, without axios'
  // global defaults (per-method header buckets, request transforms, environment classes) that every
  // request would otherwise deep-merge again. Nothing here needs them; the merge was a third of axios' CPU.
  const client = new Axios({
    adapter: 'http',
    ...(isHttps ? { httpsAgent: agent } : { httpAgent: agent }),
    headers,
    timeout: 0, // the Budget bounds the whole call, body included; axios' own timeout would not
    maxRedirects: 0,
    // No HTTP(S)_PROXY from the environment: axios forwards https requests to an http proxy without a CONNECT
    // tunnel (the secret would cross the proxy in clear), and reading the environment costs every request.
    proxy: false,
    maxContentLength: MAX_RESPONSE_BYTES,
    decompress: false, // Polar's answer is `{}`: no zlib stream to set up for it
    responseType: 'text',
    transformRequest: [],
    transformResponse: [],
    validateStatus: () => true,
  });

  async function attempt(token: string, hint: TokenTypeHint, budget: Budget): Promise<AttemptFailure | null> {
    const body = `token=${formEncode(token)}&token_type_hint=${hint}${credentialsBody}`;
    const result = await untilAborted(
      client.request<string>({ url: config.revokeUrl, method: 'post', data: body, signal: budget.signal }),
      budget.signal,
    );
    if (result === ABORTED) return budget.abortFailure();
    if (result === NETWORK_FAILED) {
      return budget.signal.aborted ? budget.abortFailure() : { code: 'NETWORK_ERROR', retryable: true };
    }
    return classifyResponse(result);
  }

  async function revokeWithin(
    token: string,
    hint: TokenTypeHint,
    budget: Budget,
    retries: number,
  ): Promise<DetailedTokenOutcome> {
    const started = performance.now();
    let attempts = 0;
    for (;;) {
      attempts += 1;
      const failure = await attempt(token, hint, budget);
      if (failure === null) {
        return { status: 'revoked', attempts, durationMs: Math.round(performance.now() - started) };
      }
      const wait = failure.retryAfterMs ?? backoffMs(attempts);
      const retry = failure.retryable && attempts <= retries && !budget.signal.aborted && wait < budget.remainingMs();
      debug(
        '%s revocation attempt %d failed: %s%s; %s',
        hint,
        attempts,
        failure.code,
        failure.httpStatus === undefined ? '' : ` (${failure.httpStatus})`,
        retry ? `retrying in ${wait} ms` : 'giving up',
      );
      if (!retry) {
        const durationMs = Math.round(performance.now() - started);
        return { status: 'failed', attempts, durationMs, error: publicError(failure), failure };
      }
      await sleep(wait, budget.signal);
    }
  }

  async function revokeToken(
    token: string,
    hint: TokenTypeHint,
    options: RevokeCallOptions = {},
  ): Promise<DetailedTokenOutcome> {
    const budget = new Budget(options.timeoutMs ?? config.timeoutMs, options.signal);
    try {
      return await revokeWithin(token, hint, budget, options.retries ?? config.retries);
    } finally {
      budget.dispose();
    }
  }

  async function revoke(tokens: TokenPair, options: RevokeCallOptions = {}): Promise<RevocationResult> {
    const { accessToken, refreshToken } = normaliseTokens(tokens);
    if (accessToken === undefined && refreshToken === undefined) {
      return { accessToken: absent(), refreshToken: absent() };
    }
    const budget = new Budget(options.timeoutMs ?? config.timeoutMs, options.signal);
    const retries = options.retries ?? config.retries;
    try {
      // Both calls go out at once: the access token dies even when the refresh call fails.
      const [access, refresh] = await Promise.all([
        accessToken === undefined
          ? absent()
          : revokeWithin(accessToken, 'access_token', budget, retries).then(publicOutcome),
        refreshToken === undefined
          ? absent()
          : revokeWithin(refreshToken, 'refresh_token', budget, retries).then(publicOutcome),
      ]);
      return { accessToken: access, refreshToken: refresh };
    } finally {
      budget.dispose();
    }
  }

  return {
    revoke,
    revokeToken,
    close: () => agent.destroy(),
  };
}

/**
 * The revocation client alone, for code outside a request (a scheduled job, an admin action).
 * Validates its options at construction, like polarLogout().
 */
export function createPolarRevoker(options: PolarRevokerOptions): PolarRevoker {
  return buildRevoker(resolveRevokerConfig(options));
}
