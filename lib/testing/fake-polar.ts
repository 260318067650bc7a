/**
 * A local stand-in for Polar's OAuth2 token endpoints, over real HTTP on 127.0.0.1, for tests and examples.
 * It behaves like Polar's revocation endpoint (RFC 7009): checks the content type and the client
 * credentials (body or HTTP Basic), answers 401 invalid_client for bad ones, 200 {} for tokens it does not
 * know, and revoking a refresh token ends its whole grant. It can also misbehave on demand.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

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

export interface FakePolarOptions {
  clientId?: string;
  clientSecret?: string;
  /** Port on 127.0.0.1; default: any free port. */
  port?: number;
  /** Latency added before every answer, in ms. Default 0. */
  latencyMs?: number;
  /** Requests the stand-in does not handle go here (to add authorize, token or userinfo endpoints); default 404. */
  fallback?: (req: IncomingMessage, res: ServerResponse) => void;
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
  /** Issues an access token and a refresh token that belong to one grant. */
  issueTokens(): FakeTokenPair;
  /** Whether a token was issued here and is not revoked. */
  isActive(token: string): boolean;
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

function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const unform = (v: string): string => decodeURIComponent(v.replace(/\+/g, ' '));
  try {
    return { id: unform(decoded.slice(0, colon)), secret: unform(decoded.slice(colon + 1)) };
  } catch {
    return undefined;
  }
}

export async function startFakePolar(options: FakePolarOptions = {}): Promise<FakePolar> {
  const clientId = options.clientId ?? `polar_ci_${randomBytes(8).toString('hex')}`;
  const clientSecret = options.clientSecret ?? `polar_cs_${randomBytes(16).toString('hex')}`;
  let latencyMs = options.latencyMs ?? 0;
  let faults: ActiveFault[] = [];
  let calls: FakeRevokeCall[] = [];
  let connections = 0;
  let inFlight = 0;
  let maxConcurrent = 0;

  // token -> grant id; a revoked grant kills both of its tokens.
  const grantOf = new Map<string, number>();
  const revokedTokens = new Set<string>();
  const revokedGrants = new Set<number>();
  const refreshTokens = new Set<string>();
  let nextGrant = 1;

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

  function isActive(token: string): boolean {
    const grant = grantOf.get(token);
    return grant !== undefined && !revokedTokens.has(token) && !revokedGrants.has(grant);
  }

  function revoke(token: string): void {
    const grant = grantOf.get(token);
    if (grant === undefined) return; // RFC 7009: unknown tokens are answered 200 all the same
    if (refreshTokens.has(token))
      revokedGrants.add(grant); // Polar ends the whole grant
    else revokedTokens.add(token);
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
    const fault = takeFault(call.hint);
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
      const status = answerRevoke(call, contentType, form);
      done(status);
      if (status === 200) sendJson(res, 200, {});
      else if (status === 401) sendJson(res, 401, { error: 'invalid_client' }, { 'WWW-Authenticate': 'Basic' });
      else sendJson(res, 400, { error: 'invalid_request' });
    });
  }

  function answerRevoke(call: FakeRevokeCall, contentType: string | undefined, form: URLSearchParams): number {
    if (!contentType?.toLowerCase().startsWith('application/x-www-form-urlencoded')) return 400;
    if (!call.authenticated) return 401;
    const token = form.get('token');
    if (!token) return 400;
    revoke(token);
    return 200;
  }

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
    issueTokens() {
      const grant = nextGrant++;
      const accessToken = `polar_at_u_${randomBytes(24).toString('base64url')}`;
      const refreshToken = `polar_rt_u_${randomBytes(24).toString('base64url')}`;
      grantOf.set(accessToken, grant);
      grantOf.set(refreshToken, grant);
      refreshTokens.add(refreshToken);
      return { accessToken, refreshToken };
    },
    isActive,
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
