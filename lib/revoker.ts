/**
 * The Polar revocation client (RFC 7009): one keep-alive agent per instance, both tokens revoked in
 * parallel, one time budget for everything including retries, and every failure translated into a
 * code and a status. axios errors (which carry the request body, hence the secret) never leave this file.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Axios, type AxiosResponse } from 'axios';
import createDebug from 'debug';
import { PolarLogoutError } from './errors';
import { DEFAULT_PREFIX } from './redis/keys';
import { resolveRevokerConfig, type RevokerConfig } from './options';
import {
  createRateBudget,
  createRedisBucket,
  type BucketShape,
  type CallPriority,
  type RateBudget,
  type RedisEval,
} from './polar/rate-budget';
import { recordThrottled, traceAttempts } from './telemetry';
import { normaliseToken, normaliseTokens } from './tokens';
import type {
  PolarRevokerOptions,
  RevocationError,
  RevocationErrorCode,
  RevocationResult,
  TokenOutcome,
  TokenPair,
  TokenTypeHint,
  VerifyOptions,
  VerifyResult,
} from './types';
import { VERSION } from './version';
import { warnOnce } from './warnings';

const debug = createDebug('express-polar-logout:revoker');

/** Polar answers `{}`; anything much larger is not an answer from Polar's revocation endpoint. */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** First in-request retry delay when Polar gives no Retry-After; doubles per attempt, with jitter. */
const RETRY_BASE_MS = 100;
const RETRY_CAP_MS = 1000;
/** Longest wait for a shared (Redis) rate budget's answer before this process's own bucket decides. */
const RATE_STORE_BOUND_MS = 250;
const DRAIN_STORE_BOUND_MS = 1000;

export interface RevokeCallOptions {
  /** Cancels the call; outcomes then report `ABORTED`. */
  signal?: AbortSignal;
  /** Overrides the instance's budget for this call. */
  timeoutMs?: number;
  /** Overrides the instance's retries for this call (the outbox makes one attempt per job run). */
  retries?: number;
  /**
   * Whose call this is, for the rate budget. `'live'` (default): never waits for the budget; a call it cannot
   * cover is not sent and fails `THROTTLED`. `'drain'` (the outbox): waits for its turn, up to twice `timeoutMs`,
   * before its time budget starts, and leaves the budget's reserve to live calls.
   */
  priority?: CallPriority;
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
  /**
   * Revokes both tokens in parallel. Never rejects for Polar's faults: failures are in the outcomes. Rejects with
   * `INVALID_ARGUMENT` (sending nothing) for per-call options that are not valid.
   */
  revoke(tokens: TokenPair, options?: RevokeCallOptions): Promise<RevocationResult>;
  /**
   * Revokes one token. Never rejects for Polar's faults; rejects with `INVALID_ARGUMENT` (sending nothing) when
   * `hint` is not `'access_token'` or `'refresh_token'`.
   */
  revokeToken(token: string, hint: TokenTypeHint, options?: RevokeCallOptions): Promise<DetailedTokenOutcome>;
  /**
   * Checks the configuration: revokes a random token nobody holds, which Polar answers 200 only when the URL and
   * the client credentials are right (RFC 7009 §2.2). Bounded by `timeoutMs`; never rejects, short of
   * `INVALID_ARGUMENT` for a `signal` that is not an AbortSignal.
   */
  verify(options?: VerifyOptions): Promise<VerifyResult>;
  /** Closes the keep-alive connections. The revoker must not be used afterwards. */
  close(): void;
}

/**
 * The deadline shared by the calls of one revoke(): one timer, joined with the caller's signal. When it ends, its
 * requests are destroyed and every wait on it returns at once. Plain callbacks rather than an AbortController: a
 * controller, its signal and the listeners axios and this file would add to it cost a logout more CPU than
 * everything else the revoker does (figure 3b). Released when the call settles: the timer is cleared and the
 * caller's signal let go (a timer left to fire after the call, as AbortSignal.timeout's would, costs a wake-up, an
 * exception and an event per logout seconds later, and keeps its objects alive until then).
 */
interface Budget {
  readonly expiresAt: number;
  readonly priority: CallPriority;
  /** Whether the budget ended: its deadline passed or the caller's signal aborted. */
  readonly ended: boolean;
  /** Whether the budget's own deadline, not the caller, ended the call (TIMEOUT rather than ABORTED). */
  readonly timedOut: boolean;
  /**
   * Runs `listener` when the budget ends (at once if it has). Listeners are dropped at release(), never
   * removed one by one: each does nothing once its own call is over.
   */
  onEnd(listener: () => void): void;
  /** Clears the timer and stops listening to the caller's signal; the budget never ends after this. */
  release(): void;
}

function startBudget({ timeoutMs, signal: external, priority }: CallSettings): Budget {
  let ended = false;
  let timedOut = false;
  let listeners: (() => void)[] | undefined;
  const end = (byDeadline: boolean): void => {
    // The caller's abort, if it came first, stays the reason.
    if (ended) return;
    ended = true;
    timedOut = byDeadline;
    const pending = listeners;
    listeners = undefined;
    if (pending) for (const listener of pending) listener();
  };
  const timer = setTimeout(end, timeoutMs, true);
  timer.unref();
  const onExternalAbort = (): void => end(false);
  if (external?.aborted) end(false);
  else external?.addEventListener('abort', onExternalAbort, { once: true });
  return {
    expiresAt: performance.now() + timeoutMs,
    priority,
    get ended() {
      return ended;
    },
    get timedOut() {
      return timedOut;
    },
    onEnd(listener) {
      if (ended) listener();
      else (listeners ??= []).push(listener);
    },
    release() {
      clearTimeout(timer);
      external?.removeEventListener('abort', onExternalAbort);
      listeners = undefined;
    },
  };
}

/** Waits `ms`, or less when the budget ends first. */
function pauseWithin(budget: Budget, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    budget.onEnd(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The failure a cancelled call reports: the budget ran out, or the caller aborted (whichever came first). */
function abortFailure(budget: Budget): AttemptFailure {
  return budget.timedOut ? { code: 'TIMEOUT', retryable: true } : { code: 'ABORTED', retryable: true };
}

const ABORTED: unique symbol = Symbol('aborted');
const NETWORK_FAILED: unique symbol = Symbol('network failed');

/**
 * Resolves when `promise` settles or the budget ends, whichever is first: the budget holds even if a call ignores
 * it. The rejection handler is attached before anything else, so that a request cut short (whose error carries the
 * request body, hence the secret) can never become an unhandled rejection.
 */
function untilEnded<T>(promise: Promise<T>, budget: Budget): Promise<T | typeof ABORTED | typeof NETWORK_FAILED> {
  // The caller translates; the raw error goes no further than this.
  const settled = promise.catch((): typeof NETWORK_FAILED => NETWORK_FAILED);
  if (budget.ended) return Promise.resolve(ABORTED);
  return new Promise((resolve) => {
    budget.onEnd(() => resolve(ABORTED));
    void settled.then(resolve);
  });
}

/** An attempt the budget or the caller cancelled before its request was written: Polar never saw it. */
const NOT_SENT: unique symbol = Symbol('not sent');

/** What a request cut short by its budget is destroyed with (axios wraps it; untilEnded() swallows it). */
const BUDGET_ENDED = 'the revocation ran out of its time budget or was aborted';

/**
 * A Node http(s) module for axios' `transport` option: it destroys the request when the budget ends (nothing is
 * sent when it already has) and says whether the request was written (handed to the kernel) before that. Node also
 * emits 'finish' when it destroys a request whose socket was still connecting (the pending write callbacks run
 * with an error it ignores), hence the check of the budget. Destroying a request that has completed does nothing.
 */
function trackingTransport(
  base: typeof http | typeof https,
  budget: Budget,
  onWritten: () => void,
): Pick<typeof http, 'request'> {
  return {
    request: ((...args: Parameters<typeof http.request>) => {
      const req = base.request(...args);
      budget.onEnd(() => req.destroy(new Error(BUDGET_ENDED)));
      req.once('finish', () => {
        if (!budget.ended) onWritten();
      });
      return req;
    }) as typeof http.request,
  };
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
  // Polar's revocation endpoint exists: a 404 means the URL is wrong (a path in baseUrl, another API).
  if (status === 404) return { code: 'UNEXPECTED_RESPONSE', httpStatus: status, retryable: false };
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
  'THROTTLED',
]);

export function isRetryableFailure(error: RevocationError | undefined): boolean {
  return error !== undefined && RETRYABLE_CODES.has(error.code);
}

/** Drops the scheduling detail: what revoke() returns is what audit events and callers see. */
function publicOutcome(detailed: DetailedTokenOutcome): TokenOutcome {
  // Spelled out: an object rest copy costs more than the rest of this function's caller.
  const { status, attempts, durationMs, error, queued } = detailed;
  const outcome: TokenOutcome = { status, attempts, durationMs };
  if (error !== undefined) outcome.error = error;
  if (queued !== undefined) outcome.queued = queued;
  return outcome;
}

function absent(): TokenOutcome {
  return { status: 'absent', attempts: 0, durationMs: 0 };
}

const TOKEN_TYPE_HINTS: ReadonlySet<string> = new Set<TokenTypeHint>(['access_token', 'refresh_token']);

function invalidArgument(problem: string): PolarLogoutError {
  return new PolarLogoutError('INVALID_ARGUMENT', `express-polar-logout: ${problem}`);
}

/** Read through a call: the budget ends across awaits, which TypeScript's narrowing cannot know. */
function isAborted(budget: Budget): boolean {
  return budget.ended;
}

function remainingMs(budget: Budget): number {
  return budget.expiresAt - performance.now();
}

interface CallSettings {
  timeoutMs: number;
  retries: number;
  signal: AbortSignal | undefined;
  priority: CallPriority;
}

/** Per-call overrides, checked like the options they override (a call without them costs nothing). */
function resolveCallOptions(options: RevokeCallOptions, config: RevokerConfig): CallSettings {
  const { signal, timeoutMs = config.timeoutMs, retries = config.retries, priority = 'live' } = options;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 120_000) {
    throw invalidArgument('`timeoutMs` must be an integer from 1 to 120000.');
  }
  if (!Number.isInteger(retries) || retries < 0 || retries > 10) {
    throw invalidArgument('`retries` must be an integer from 0 to 10.');
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalidArgument('`signal` must be an AbortSignal.');
  }
  if ((priority as unknown) !== 'live' && priority !== 'drain')
    throw invalidArgument("`priority` must be 'live' or 'drain'.");
  return { timeoutMs, retries, signal, priority };
}

/**
 * The budget for this client's Polar host: shared through Redis when one is configured (one key per host, since
 * Polar counts the caller's address whatever the client), else this process's. The key is under the default
 * prefix whatever prefix the adapter has (an outbox's own): every part of every app on that Redis calling that
 * host must draw from the same budget. One key per script, so it needs no hash tag of its own on a cluster.
 */
function rateBudgetFor(config: RevokerConfig, shape: BucketShape): RateBudget {
  const host = new URL(config.revokeUrl).host;
  const redis = config.rateRedis;
  if (!redis) return createRateBudget(shape, host);
  const evaluate: RedisEval = (script, keys, args) =>
    // Bounded by the longest wait a caller accepts (the drain's); take() bounds each live call more tightly.
    redis.eval(script, keys, args, { timeoutMs: DRAIN_STORE_BOUND_MS });
  return createRateBudget(shape, host, createRedisBucket(evaluate, `${DEFAULT_PREFIX}:budget:${host}`, shape));
}

/** Builds a revoker from an already validated config (polarLogout and the outbox validate their own options). */
export function buildRevoker(config: RevokerConfig): PolarRevoker {
  const isHttps = config.revokeUrl.startsWith('https:');
  // axios sets TCP keep-alive to 60 s on every request's socket and Node's agent sets it back to its own
  // keepAliveMsecs when the socket returns to the pool: with the same 60 s here, neither changes anything
  // and a pooled request makes no setsockopt calls (it made eight: a sixth of the client's CPU).
  const agentOptions = { keepAlive: true, keepAliveMsecs: 60_000 };
  const agent = isHttps ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
  const transport = isHttps ? https : http;
  const rate = config.rateLimit ? rateBudgetFor(config, config.rateLimit) : undefined;

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

  /** Configuration is the only explanation for these: say so once per process, where operators look. */
  function warnMisconfiguration(failure: AttemptFailure): void {
    const status = `HTTP ${failure.httpStatus ?? '?'}`;
    if (failure.code === 'INVALID_CLIENT') {
      warnOnce(
        'EPL_INVALID_CLIENT',
        `express-polar-logout: Polar refused the client credentials (${status}, invalid_client), so tokens are not ` +
          'being revoked. Check clientId and clientSecret, and that they belong to the Polar server in use ' +
          '(sandbox and production have separate OAuth clients).',
      );
    } else if (failure.code === 'UNEXPECTED_RESPONSE') {
      warnOnce(
        'EPL_NOT_POLAR',
        `express-polar-logout: ${config.revokeUrl} answered ${status}, which is not an answer of Polar's ` +
          "revocation endpoint, so tokens are not being revoked. Set baseUrl to the origin of Polar's API only " +
          '(https://api.polar.sh or https://sandbox-api.polar.sh), or leave it out and choose `server`.',
      );
    }
  }

  async function attempt(
    token: string,
    hint: TokenTypeHint,
    budget: Budget,
  ): Promise<AttemptFailure | null | typeof NOT_SENT> {
    // Checked right before sending, synchronously with the send: an aborted signal sends nothing.
    if (isAborted(budget)) return NOT_SENT;
    const request = { written: false };
    const body = `token=${formEncode(token)}&token_type_hint=${hint}${credentialsBody}`;
    const result = await untilEnded(
      client.request<string>({
        url: config.revokeUrl,
        method: 'post',
        data: body,
        transport: trackingTransport(transport, budget, () => (request.written = true)),
      }),
      budget,
    );
    if (result === ABORTED) return request.written ? abortFailure(budget) : NOT_SENT;
    if (result === NETWORK_FAILED) {
      if (!isAborted(budget)) return { code: 'NETWORK_ERROR', retryable: true };
      return request.written ? abortFailure(budget) : NOT_SENT;
    }
    const failure = classifyResponse(result);
    if (failure !== null && !failure.retryable) warnMisconfiguration(failure);
    // Polar's limit is per address: everybody sharing the budget pauses, not just this call.
    if (failure?.code === 'RATE_LIMITED') rate?.pause(failure.retryAfterMs);
    return failure;
  }
  const tracedAttempt = traceAttempts<Budget, AttemptFailure>(config.revokeUrl, attempt);

  /**
   * The drain's turn: waits for the rate budget (above its reserve) for up to two call budgets, or until the
   * caller's signal aborts; null when granted, else the THROTTLED failure (the job is then tried again later).
   */
  async function drainTurn(rateBudget: RateBudget, call: CallSettings): Promise<AttemptFailure | null> {
    const until = performance.now() + 2 * call.timeoutMs;
    for (;;) {
      // The drain is in no hurry: it waits longer for the shared store before using this process's own bucket.
      const grant = await rateBudget.take(1, 'drain', DRAIN_STORE_BOUND_MS);
      if (grant.granted > 0) return null;
      // A little jitter so that the drains of several processes do not ask in the same millisecond.
      const wait = grant.retryInMs + Math.round(Math.random() * Math.min(grant.retryInMs, 50));
      if (call.signal?.aborted || performance.now() + wait > until) {
        return { code: 'THROTTLED', retryable: true, retryAfterMs: grant.retryInMs };
      }
      await sleep(wait, undefined, call.signal ? { signal: call.signal } : undefined).catch(() => undefined);
    }
  }

  /**
   * Draws one call from the rate budget without waiting: null when granted, else the THROTTLED failure. A live call
   * is answered at once and its token queued; the drain waited for its first call in drainTurn().
   */
  async function takeTurn(rateBudget: RateBudget, budget: Budget): Promise<AttemptFailure | null> {
    const grant = await rateBudget.take(1, budget.priority, Math.min(RATE_STORE_BOUND_MS, remainingMs(budget)));
    return grant.granted > 0 ? null : { code: 'THROTTLED', retryable: true, retryAfterMs: grant.retryInMs };
  }

  async function revokeWithin(
    token: string,
    hint: TokenTypeHint,
    budget: Budget,
    retries: number,
    /** The first attempt's call was already drawn from the rate budget (the drain's turn). */
    turn = false,
  ): Promise<DetailedTokenOutcome> {
    const started = performance.now();
    let attempts = 0;
    let last: AttemptFailure | undefined;
    const failed = (failure: AttemptFailure): DetailedTokenOutcome => ({
      status: 'failed',
      attempts,
      durationMs: Math.round(performance.now() - started),
      error: publicError(failure),
      failure,
    });
    for (;;) {
      const granted = turn && attempts === 0;
      const throttled = rate && !granted && !isAborted(budget) ? await takeTurn(rate, budget) : null;
      if (throttled) {
        recordThrottled(hint);
        debug('%s revocation: attempt %d not sent, the rate budget is spent', hint, attempts + 1);
        // After an answer from Polar (a 429 that paused the budget, a 503), that answer says more.
        return failed(last ?? throttled);
      }
      // Traced only when there is something to send: an aborted signal ends the loop without a span.
      const failure = isAborted(budget) ? NOT_SENT : await tracedAttempt(token, hint, budget, attempts + 1);
      if (typeof failure === 'symbol') {
        debug('%s revocation: %s before attempt %d was sent', hint, abortFailure(budget).code, attempts + 1);
        // Polar's last answer, when there was one, says more than the cancellation that came after it.
        return failed(last ?? abortFailure(budget));
      }
      attempts += 1;
      if (failure === null) {
        return { status: 'revoked', attempts, durationMs: Math.round(performance.now() - started) };
      }
      last = failure;
      const wait = failure.retryAfterMs ?? backoffMs(attempts);
      const retry = failure.retryable && attempts <= retries && !budget.ended && wait < remainingMs(budget);
      debug(
        '%s revocation attempt %d failed: %s%s; %s',
        hint,
        attempts,
        failure.code,
        failure.httpStatus === undefined ? '' : ` (${failure.httpStatus})`,
        retry ? `retrying in ${wait} ms` : 'giving up',
      );
      if (!retry) return failed(failure);
      // The wait ends early when the budget or the caller's signal does; the next attempt then sends nothing.
      await pauseWithin(budget, wait);
    }
  }

  async function revokeToken(
    token: string,
    hint: TokenTypeHint,
    options: RevokeCallOptions = {},
  ): Promise<DetailedTokenOutcome> {
    if (!TOKEN_TYPE_HINTS.has(hint)) {
      throw invalidArgument("revokeToken(): `hint` must be 'access_token' or 'refresh_token'.");
    }
    const call = resolveCallOptions(options, config);
    const usable = normaliseToken(token);
    if (usable === undefined) return absent();
    return revokeCall(usable, hint, call);
  }

  /**
   * One token's call. The drain first takes its turn, before its time budget starts: waiting for the rate budget is
   * its normal state under load, and must not eat the time the call itself needs. `shared`: a live revoke()'s one
   * budget for both tokens.
   */
  async function revokeCall(
    token: string,
    hint: TokenTypeHint,
    call: CallSettings,
    shared?: Budget,
  ): Promise<DetailedTokenOutcome> {
    let turn = false;
    if (rate && call.priority === 'drain') {
      const throttled = await drainTurn(rate, call);
      if (throttled) {
        recordThrottled(hint);
        return { status: 'failed', attempts: 0, durationMs: 0, error: publicError(throttled), failure: throttled };
      }
      turn = true;
    }
    if (shared) return revokeWithin(token, hint, shared, call.retries, turn);
    const budget = startBudget(call);
    try {
      return await revokeWithin(token, hint, budget, call.retries, turn);
    } finally {
      budget.release();
    }
  }

  async function revoke(tokens: TokenPair, options: RevokeCallOptions = {}): Promise<RevocationResult> {
    const call = resolveCallOptions(options, config);
    const { accessToken, refreshToken } = normaliseTokens(tokens);
    if (accessToken === undefined && refreshToken === undefined) {
      return { accessToken: absent(), refreshToken: absent() };
    }
    // One budget for both calls of a live logout; a drain's calls each start theirs after their turn.
    const budget = call.priority === 'live' ? startBudget(call) : undefined;
    try {
      // Both calls go out at once: the access token dies even when the refresh call fails.
      const [access, refresh] = await Promise.all([
        accessToken === undefined
          ? absent()
          : revokeCall(accessToken, 'access_token', call, budget).then(publicOutcome),
        refreshToken === undefined
          ? absent()
          : revokeCall(refreshToken, 'refresh_token', call, budget).then(publicOutcome),
      ]);
      return { accessToken: access, refreshToken: refresh };
    } finally {
      budget?.release();
    }
  }

  async function verify(options: VerifyOptions = {}): Promise<VerifyResult> {
    // A token nobody holds: revoking it changes nothing, and only a right URL and right credentials answer 200.
    const probe = randomBytes(32).toString('base64url');
    const outcome = await revokeToken(probe, 'access_token', options.signal ? { signal: options.signal } : {});
    if (outcome.status === 'revoked') return { ok: true };
    return { ok: false, error: outcome.error ?? { code: 'NETWORK_ERROR' } };
  }

  return {
    revoke,
    revokeToken,
    verify,
    close: () => {
      agent.destroy();
      // The connection opened for a URL (an app's own client stays open); the outbox closes its own.
      if (config.ownsRateRedis) void config.rateRedis?.close().catch(() => undefined);
    },
  };
}

/**
 * The revocation client alone, for code outside a request (a scheduled job, an admin action).
 * Validates its options at construction, like polarLogout().
 */
export function createPolarRevoker(options: PolarRevokerOptions): PolarRevoker {
  return buildRevoker(resolveRevokerConfig(options));
}
