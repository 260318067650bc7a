/**
 * A local stand-in for Polar's OAuth2 token endpoints, over real HTTP on 127.0.0.1, for tests and examples.
 * It behaves like Polar's revocation endpoint (authlib's RFC 7009 endpoint over one database row per
 * issuance, see polarsource/polar server/polar/oauth2/authorization_server.py): client credentials in the
 * body or as HTTP Basic (percent-decoded like Python's `unquote`: `+` stays `+`), 401 invalid_client for
 * bad ones, 400 unsupported_token_type for an unknown hint, 400 invalid_grant for a token of another
 * client, 200 {} for tokens it does not know. Revoking either token of an issuance ends the access token
 * and, unless the hint was `access_token`, the refresh token; a row with either revoked counts as revoked,
 * so its refresh token is refused too. It can also misbehave on demand.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createFakeRateLimiter, type FakeRateLimitOptions } from './rate-limit';

export type FakeTokenTypeHint = 'access_token' | 'refresh_token';

/** A way to misbehave. */
export type FakeFault =
  /** Answer with this status (and optional Retry-After, body and content type). */
  | { type: 'status'; status: number; retryAfter?: string; body?: string; contentType?: string }
  /** Never answer (the socket stays open until the stand-in closes). */
  | { type: 'hang' }
  /** Reset the connection after reading the request. */
  | { type: 'reset' }
  /** Send 200 headers, then one byte every `intervalMs` (default 50) and never finish. */
  | { type: 'trickle'; intervalMs?: number };

export interface FaultScope {
  /** How many calls the fault applies to; default: every call until heal(). */
  times?: number;
  /** Only calls with this token_type_hint. */
  hint?: FakeTokenTypeHint;
}

/** One call received at the revocation endpoint. */
export interface FakeRevokeCall {
  /** The token as received (the stand-in's tokens are fake; never use real ones with it). */
  token: string | undefined;
  hint: string | undefined;
  /** How the client authenticated. */
  clientAuth: 'client_secret_post' | 'client_secret_basic' | 'none';
  /** Whether the credentials were right. */
  authenticated: boolean;
  contentType: string | undefined;
  /** The names of the form fields (not their values). */
  fields: string[];
  /** What the stand-in did: a status it answered with, or the fault. */
  result: number | 'hang' | 'reset' | 'trickle';
  /** performance.now() at arrival and at answer (undefined while unanswered). */
  receivedAt: number;
  answeredAt: number | undefined;
}

export interface FakeTokenPair {
  accessToken: string;
  refreshToken: string;
}

export interface IssueTokensOptions {
  /** The OAuth client the pair is issued to. Default: the stand-in's own `clientId`. */
  clientId?: string;
}

export interface FakePolarOptions {
  clientId?: string;
  clientSecret?: string;
  /** Port on 127.0.0.1; default: any free port. */
  port?: number;
  /** Latency added before every answer, in ms. Default 0. */
  latencyMs?: number;
  /** Requests the stand-in does not handle go here (to add authorize, token or userinfo endpoints); default 404. */
  fallback?: (req: IncomingMessage, res: ServerResponse) => void;
  /**
   * Polar's rate limit: beyond `requests` calls per `perMs` from one client IP, answer 429 (with `Retry-After`
   * unless `retryAfter: false`), in fixed windows that start at the IP's first call, as Polar counts them.
   * Default: no limit.
   */
  rateLimit?: FakeRateLimitOptions;
}

export interface FakePolar {
  /** Base URL to pass as `baseUrl`, e.g. http://127.0.0.1:54321. */
  readonly url: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Every call received at /v1/oauth2/revoke, in arrival order. */
  readonly calls: FakeRevokeCall[];
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Most revocation requests in progress at the same time. */
  readonly maxConcurrent: number;
  /** Calls refused with 429 by the `rateLimit` model (they are in `calls` too, with result 429). */
  readonly rejected429: number;
  /**
   * Issues an access token and its refresh token: one issuance (Polar's one row). A token issued to another
   * `clientId` is refused with 400 invalid_grant when this stand-in's client revokes it.
   */
  issueTokens(options?: IssueTokensOptions): FakeTokenPair;
  /**
   * Whether a token was issued here and its issuance is not revoked. As at Polar, revoking the access token
   * also makes its refresh token inactive (the row counts as revoked once either token is).
   */
  isActive(token: string): boolean;
  /**
   * Polar's refresh grant: a new pair for an active refresh token, whose old issuance is revoked (rotation);
   * `undefined` (Polar: 400 invalid_grant) for a revoked, unknown or access token.
   */
  refresh(refreshToken: string): FakeTokenPair | undefined;
  /** Misbehave for calls matching `scope` (faults added later take precedence). */
  fail(fault: FakeFault, scope?: FaultScope): void;
  /** Stop misbehaving. */
  heal(): void;
  setLatency(ms: number): void;
  /** Forget recorded calls and counters (tokens and faults stay). */
  resetCalls(): void;
  /** Closes the server and every open connection (including hung ones). */
  close(): Promise<void>;
}

interface ActiveFault {
  fault: FakeFault;
  remaining: number;
  hint: FakeTokenTypeHint | undefined;
}

const MAX_BODY = 64 * 1024;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Python's `urllib.parse.unquote`, as authlib applies it to Basic credentials: runs of %XX become UTF-8
 * (invalid bytes replaced), a malformed % stays as it is, and `+` stays `+` (it is not form encoding).
 */
function unquote(value: string): string {
  return value.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'));
}

function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { id: unquote(decoded.slice(0, colon)), secret: unquote(decoded.slice(colon + 1)) };
}

/** One issuance: Polar's OAuth2Token row, which holds both tokens and a revocation time for each. */
interface Issuance {
  clientId: string;
  accessToken: string;
  refreshToken: string;
  accessRevoked: boolean;
  refreshRevoked: boolean;
}

const HINTS: ReadonlySet<string> = new Set<FakeTokenTypeHint>(['access_token', 'refresh_token']);

/** What the revocation endpoint answers when no fault applies. */
type RevokeAnswer = { status: 200 } | { status: 400 | 401; error: string };

export async function startFakePolar(options: FakePolarOptions = {}): Promise<FakePolar> {
  const clientId = options.clientId ?? `polar_ci_${randomBytes(8).toString('hex')}`;
  const clientSecret = options.clientSecret ?? `polar_cs_${randomBytes(16).toString('hex')}`;
  let latencyMs = options.latencyMs ?? 0;
  let faults: ActiveFault[] = [];
  let calls: FakeRevokeCall[] = [];
  let connections = 0;
  let inFlight = 0;
  let maxConcurrent = 0;

  // Polar looks a token up by its access or refresh column, as the hint says (either without one).
  const byAccessToken = new Map<string, Issuance>();
  const byRefreshToken = new Map<string, Issuance>();

  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  function later(ms: number, fn: () => void): void {
    if (ms <= 0) return fn();
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  }

  function takeFault(hint: string | undefined): FakeFault | undefined {
    for (let i = faults.length - 1; i >= 0; i -= 1) {
      const active = faults[i];
      if (!active || (active.hint !== undefined && active.hint !== hint)) continue;
      active.remaining -= 1;
      if (active.remaining <= 0) faults.splice(i, 1);
      return active.fault;
    }
    return undefined;
  }

  /** Polar's `is_revoked()`: a row is revoked once either of its tokens is. */
  const isRevoked = (row: Issuance): boolean => row.accessRevoked || row.refreshRevoked;

  function isActive(token: string): boolean {
    const row = byAccessToken.get(token) ?? byRefreshToken.get(token);
    return row !== undefined && !isRevoked(row);
  }

  function issue(owner: string): FakeTokenPair {
    const row: Issuance = {
      clientId: owner,
      accessToken: `polar_at_u_${randomBytes(24).toString('base64url')}`,
      refreshToken: `polar_rt_u_${randomBytes(24).toString('base64url')}`,
      accessRevoked: false,
      refreshRevoked: false,
    };
    byAccessToken.set(row.accessToken, row);
    byRefreshToken.set(row.refreshToken, row);
    return { accessToken: row.accessToken, refreshToken: row.refreshToken };
  }

  function findRow(token: string, hint: string | undefined): Issuance | undefined {
    if (hint === 'access_token') return byAccessToken.get(token);
    if (hint === 'refresh_token') return byRefreshToken.get(token);
    return byAccessToken.get(token) ?? byRefreshToken.get(token);
  }

  function authenticate(
    req: IncomingMessage,
    form: URLSearchParams,
  ): Pick<FakeRevokeCall, 'clientAuth' | 'authenticated'> {
    const basic = basicCredentials(req.headers.authorization);
    if (basic)
      return {
        clientAuth: 'client_secret_basic',
        authenticated: basic.id === clientId && basic.secret === clientSecret,
      };
    if (form.has('client_secret')) {
      return {
        clientAuth: 'client_secret_post',
        authenticated: form.get('client_id') === clientId && form.get('client_secret') === clientSecret,
      };
    }
    return { clientAuth: 'none', authenticated: false };
  }

  async function handleRevoke(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const receivedAt = performance.now();
    inFlight += 1;
    maxConcurrent = Math.max(maxConcurrent, inFlight);
    let body: string;
    try {
      body = await readBody(req);
    } catch {
      inFlight -= 1;
      return;
    }
    const contentType = req.headers['content-type'];
    const form = new URLSearchParams(body);
    const call: FakeRevokeCall = {
      token: form.get('token') ?? undefined,
      hint: form.get('token_type_hint') ?? undefined,
      ...authenticate(req, form),
      contentType,
      fields: [...new Set(form.keys())],
      result: 200,
      receivedAt,
      answeredAt: undefined,
    };
    calls.push(call);
    const retryAfterS = rateLimiter?.admit(req.socket.remoteAddress ?? '') ?? null;
    const fault: FakeFault | undefined =
      retryAfterS === null
        ? takeFault(call.hint)
        : {
            type: 'status',
            status: 429,
            body: JSON.stringify({ detail: 'Too Many Requests' }),
            ...(rateLimiter?.retryAfter && { retryAfter: String(retryAfterS) }),
          };
    let finished = false;
    const done = (result: FakeRevokeCall['result']): void => {
      if (finished) return;
      finished = true;
      call.result = result;
      call.answeredAt = performance.now();
      inFlight -= 1;
    };
    res.on('close', () => done(call.result));

    later(latencyMs, () => {
      if (fault?.type === 'hang') return void (call.result = 'hang');
      if (fault?.type === 'reset') {
        done('reset');
        req.socket.resetAndDestroy();
        return;
      }
      if (fault?.type === 'trickle') {
        call.result = 'trickle';
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const tick = (): void => {
          if (res.destroyed) return;
          res.write(' ');
          later(fault.intervalMs ?? 50, tick);
        };
        tick();
        return;
      }
      if (fault?.type === 'status') {
        done(fault.status);
        res.writeHead(fault.status, {
          'Content-Type': fault.contentType ?? 'application/json',
          ...(fault.retryAfter === undefined ? {} : { 'Retry-After': fault.retryAfter }),
        });
        res.end(fault.body ?? (fault.status >= 400 ? JSON.stringify({ error: 'server_error' }) : '{}'));
        return;
      }
      const answer = answerRevoke(call, contentType, form);
      done(answer.status);
      if (answer.status === 200) sendJson(res, 200, {});
      else if (answer.status === 401) sendJson(res, 401, { error: answer.error }, { 'WWW-Authenticate': 'Basic' });
      else sendJson(res, 400, { error: answer.error });
    });
  }

  /** authlib's order: the body, the client, the parameters, the token's owner; then Polar's revoke_token(). */
  function answerRevoke(call: FakeRevokeCall, contentType: string | undefined, form: URLSearchParams): RevokeAnswer {
    if (!contentType?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
      return { status: 400, error: 'invalid_request' };
    }
    if (!call.authenticated) return { status: 401, error: 'invalid_client' };
    const token = form.get('token');
    if (token === null) return { status: 400, error: 'invalid_request' };
    const hint = call.hint || undefined; // an empty hint is no hint
    if (hint !== undefined && !HINTS.has(hint)) return { status: 400, error: 'unsupported_token_type' };
    const row = findRow(token, hint);
    if (!row) return { status: 200 }; // RFC 7009 §2.2: unknown tokens are answered 200 all the same
    if (row.clientId !== clientId) return { status: 400, error: 'invalid_grant' };
    row.accessRevoked = true;
    if (hint !== 'access_token') row.refreshRevoked = true;
    return { status: 200 };
  }

  const rateLimiter = options.rateLimit ? createFakeRateLimiter(options.rateLimit) : undefined;

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method === 'POST' && path === '/v1/oauth2/revoke') {
      void handleRevoke(req, res);
      return;
    }
    if (options.fallback) return options.fallback(req, res);
    sendJson(res, 404, { detail: 'Not Found' });
  });
  server.on('connection', (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    clientId,
    clientSecret,
    get calls() {
      return calls;
    },
    get connections() {
      return connections;
    },
    get maxConcurrent() {
      return maxConcurrent;
    },
    get rejected429() {
      return rateLimiter?.rejected ?? 0;
    },
    issueTokens(issueOptions = {}) {
      const owner = issueOptions.clientId ?? clientId;
      if (typeof owner !== 'string' || owner === '') throw new TypeError('issueTokens: clientId must be a string.');
      return issue(owner);
    },
    isActive,
    refresh(refreshToken) {
      const row = byRefreshToken.get(refreshToken);
      if (!row || isRevoked(row)) return undefined;
      // Rotation: the old row's refresh token is revoked, and its access token counts as revoked with it.
      row.refreshRevoked = true;
      return issue(row.clientId);
    },
    fail(fault, scope = {}) {
      faults.push({ fault, remaining: scope.times ?? Number.POSITIVE_INFINITY, hint: scope.hint });
    },
    heal() {
      faults = [];
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    resetCalls() {
      calls = [];
      connections = 0;
      rateLimiter?.resetCount();
      maxConcurrent = inFlight;
    },
    close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}
