import { createHook } from 'node:async_hooks';
import { getEventListeners } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createPolarRevoker, polarLogout, PolarLogoutError, type PolarRevoker, type TokenTypeHint } from '../lib';
import { VERSION } from '../lib/version';
import { classifyResponse, parseRetryAfter } from '../lib/revoker';
import { startFakePolar, type FakePolar } from '../lib/testing';
import { createHarness } from './support/harness';

let fake: FakePolar;
let revoker: PolarRevoker;
beforeEach(async () => {
  fake = await startFakePolar();
  revoker = createPolarRevoker({
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    baseUrl: fake.url,
    timeoutMs: 1000,
  });
});
afterEach(async () => {
  revoker.close();
  await fake.close();
});

describe('createPolarRevoker', () => {
  it('revokes a pair and reports per-token outcomes', async () => {
    const pair = fake.issueTokens();
    const result = await revoker.revoke(pair);
    expect(result.accessToken).toEqual({ status: 'revoked', attempts: 1, durationMs: expect.any(Number) });
    expect(result.refreshToken).toEqual({ status: 'revoked', attempts: 1, durationMs: expect.any(Number) });
    expect(fake.isActive(pair.accessToken)).toBe(false);
    expect(fake.isActive(pair.refreshToken)).toBe(false);
  });

  it('answers 200 for tokens Polar does not know, as RFC 7009 says', async () => {
    const result = await revoker.revoke({ accessToken: 'never-issued' });
    expect(result.accessToken.status).toBe('revoked');
    expect(result.refreshToken.status).toBe('absent');
    expect(fake.calls).toHaveLength(1);
  });

  it('revokes one token with revokeToken', async () => {
    const pair = fake.issueTokens();
    const outcome = await revoker.revokeToken(pair.accessToken, 'access_token');
    expect(outcome.status).toBe('revoked');
    expect(fake.isActive(pair.accessToken)).toBe(false);
    expect(fake.isActive(pair.refreshToken)).toBe(false); // as at Polar: one row per issuance
  });

  it('reuses one keep-alive connection across calls', async () => {
    for (let i = 0; i < 5; i += 1) await revoker.revokeToken(fake.issueTokens().accessToken, 'access_token');
    expect(fake.connections).toBe(1);
  });

  it('keeps one TCP keep-alive setting on pooled sockets (no setsockopt per request)', async () => {
    // axios sets 60 s on every request's socket; an agent with another keepAliveMsecs sets its own back
    // each time the socket returns to the pool, and every change is four setsockopt calls.
    const delays: unknown[] = [];
    const original = net.Socket.prototype.setKeepAlive;
    const spy = jest.spyOn(net.Socket.prototype, 'setKeepAlive').mockImplementation(function (
      this: net.Socket,
      enable?: boolean,
      initialDelay?: number,
    ) {
      delays.push(initialDelay);
      return original.call(this, enable, initialDelay);
    });
    try {
      for (let i = 0; i < 3; i += 1) await revoker.revokeToken(fake.issueTokens().accessToken, 'access_token');
    } finally {
      spy.mockRestore();
    }
    expect(fake.connections).toBe(1);
    expect(delays.length).toBeGreaterThanOrEqual(3);
    expect(new Set(delays)).toEqual(new Set([60_000]));
  });

  it('stops at the caller AbortSignal and never rejects', async () => {
    fake.fail({ type: 'hang' });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const started = Date.now();
    const result = await revoker.revoke(fake.issueTokens(), { signal: controller.signal });
    expect(Date.now() - started).toBeLessThan(800);
    expect(result.accessToken).toMatchObject({ status: 'failed', error: { code: 'ABORTED' } });
  });

  it('leaves no timer and no listener behind once a call settles', async () => {
    // A budget timer left to fire after the call (AbortSignal.timeout's) wakes the process seconds later and
    // builds an exception and an event per logout. Timers are found by their delay: nothing else here uses 4321.
    const TIMEOUT_MS = 4321;
    const pending = new Set<number>();
    const hook = createHook({
      init(id, type, _trigger, resource) {
        if (type === 'Timeout' && (resource as { _idleTimeout?: number })._idleTimeout === TIMEOUT_MS) pending.add(id);
      },
      destroy(id) {
        pending.delete(id);
      },
    }).enable();
    const caller = new AbortController();
    try {
      const results = await Promise.all([
        revoker.revoke(fake.issueTokens(), { timeoutMs: TIMEOUT_MS }),
        revoker.revoke(fake.issueTokens(), { timeoutMs: TIMEOUT_MS, signal: caller.signal }),
        revoker.revokeToken(fake.issueTokens().accessToken, 'access_token', { timeoutMs: TIMEOUT_MS }),
        revoker.revokeToken('t', 'refresh_token', { timeoutMs: TIMEOUT_MS, signal: caller.signal, retries: 0 }),
      ]);
      expect(results.map((r) => ('status' in r ? r.status : r.accessToken.status))).toEqual([
        'revoked',
        'revoked',
        'revoked',
        'revoked',
      ]);
      await new Promise((resolve) => setImmediate(resolve)); // destroy hooks are emitted asynchronously
      expect(pending.size).toBe(0);
      // The caller's long-lived signal is let go too: no listener per call accumulates on it.
      expect(getEventListeners(caller.signal, 'abort')).toHaveLength(0);
    } finally {
      hook.disable();
    }
  });

  it('honours a per-call timeout and retries override', async () => {
    fake.fail({ type: 'status', status: 503 });
    const outcome = await revoker.revokeToken('t', 'refresh_token', { retries: 0, timeoutMs: 200 });
    expect(outcome).toMatchObject({
      status: 'failed',
      attempts: 1,
      failure: { code: 'SERVER_ERROR', retryable: true },
    });
  });

  it('exposes Retry-After to schedulers through the detailed outcome', async () => {
    fake.fail({ type: 'status', status: 429, retryAfter: '120' });
    const outcome = await revoker.revokeToken('t', 'access_token');
    expect(outcome.failure).toEqual({ code: 'RATE_LIMITED', httpStatus: 429, retryable: true, retryAfterMs: 120_000 });
    expect(outcome.error).toEqual({ code: 'RATE_LIMITED', httpStatus: 429 });
  });

  it('sends exactly the form RFC 7009 asks for, with nothing else', async () => {
    const seen: { method?: string; url?: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body });
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = createPolarRevoker({ clientId: 'id 1', clientSecret: 's&=2', baseUrl: `http://127.0.0.1:${port}` });
    try {
      expect((await client.revokeToken('tok+/=', 'refresh_token')).status).toBe('revoked');
    } finally {
      client.close();
      await new Promise((resolve) => server.close(resolve));
    }
    expect(seen).toHaveLength(1);
    const { method, url, headers, body } = seen[0] ?? { headers: {}, body: '' };
    expect([method, url]).toEqual(['POST', '/v1/oauth2/revoke']);
    expect(Object.fromEntries(new URLSearchParams(body))).toEqual({
      token: 'tok+/=',
      token_type_hint: 'refresh_token',
      client_id: 'id 1',
      client_secret: 's&=2',
    });
    expect(headers).toEqual({
      host: `127.0.0.1:${port}`,
      connection: 'keep-alive',
      'content-type': 'application/x-www-form-urlencoded',
      'content-length': String(Buffer.byteLength(body)),
      accept: 'application/json',
      'accept-encoding': 'identity',
      'user-agent': `express-polar-logout/${VERSION}`,
    });
  });

  it('does not follow redirects (they would carry the secret elsewhere)', async () => {
    fake.fail({ type: 'status', status: 307, body: '' });
    const outcome = await revoker.revokeToken('t', 'access_token');
    expect(outcome).toMatchObject({
      status: 'failed',
      attempts: 1,
      error: { code: 'UNEXPECTED_RESPONSE', httpStatus: 307 },
    });
    expect(fake.calls).toHaveLength(1);
  });
});

describe('classifyResponse', () => {
  const r = (
    status: number,
    headers: Record<string, string> = {},
    data = '',
  ): Parameters<typeof classifyResponse>[0] => ({
    status,
    headers,
    data,
  });
  it.each([
    [r(200, { 'content-type': 'application/json' }, '{}'), null],
    [r(200, {}, ''), null],
    [r(204), null],
    [
      r(200, { 'content-type': 'text/html; charset=utf-8' }, '<html>'),
      { code: 'UNEXPECTED_RESPONSE', httpStatus: 200, retryable: false },
    ],
    [r(400, {}, '{"error":"invalid_client"}'), { code: 'INVALID_CLIENT', httpStatus: 400, retryable: false }],
    [r(400, {}, '{"error":"invalid_request"}'), { code: 'REJECTED', httpStatus: 400, retryable: false }],
    [r(400, {}, 'not json'), { code: 'REJECTED', httpStatus: 400, retryable: false }],
    // Polar's revoke path exists: a 404 means the URL is wrong, not that the token was refused.
    [r(404, {}, '{"detail":"Not Found"}'), { code: 'UNEXPECTED_RESPONSE', httpStatus: 404, retryable: false }],
    [r(401), { code: 'INVALID_CLIENT', httpStatus: 401, retryable: false }],
    [r(429), { code: 'RATE_LIMITED', httpStatus: 429, retryable: true }],
    [r(503, { 'retry-after': '3' }), { code: 'SERVER_ERROR', httpStatus: 503, retryable: true, retryAfterMs: 3000 }],
    [r(500), { code: 'SERVER_ERROR', httpStatus: 500, retryable: true }],
    [r(302), { code: 'UNEXPECTED_RESPONSE', httpStatus: 302, retryable: false }],
  ])('%#: classifies %j', (response, expected) => {
    expect(classifyResponse(response)).toEqual(expected);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it.each([
    ['0', 0],
    ['5', 5000],
    [' 7 ', 7000],
    ['Thu, 01 Jan 2026 00:00:10 GMT', 10_000],
    ['Wed, 31 Dec 2025 23:59:00 GMT', 0],
    ['soon', undefined],
    ['-1', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('%j -> %j', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});

/** A server that answers every request the same way, for URLs that are not Polar's API. */
async function startServer(
  answer: (res: http.ServerResponse) => void,
): Promise<{ url: string; hits: () => number; close(): Promise<void> }> {
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits += 1;
    req.resume();
    req.on('end', () => answer(res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits: () => hits,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('revokeToken() hint (issue 12 §3)', () => {
  it.each(['access_token&client_id=x', 'refresh_token&token=other', 'ACCESS_TOKEN', '', undefined, 42])(
    'rejects %j with INVALID_ARGUMENT, naming the allowed values, and sends nothing',
    async (hint) => {
      const error = await revoker.revokeToken(fake.issueTokens().accessToken, hint as TokenTypeHint).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(PolarLogoutError);
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect((error as Error).message).toContain("'access_token' or 'refresh_token'");
      if (typeof hint === 'string' && hint !== '') expect((error as Error).message).not.toContain(hint);
      expect(fake.calls).toHaveLength(0);
    },
  );

  it('rejects bad per-call options the same way instead of throwing from a timer', async () => {
    for (const options of [{ timeoutMs: 1.5 }, { timeoutMs: 0 }, { retries: -1 }, { signal: {} }]) {
      await expect(revoker.revoke(fake.issueTokens(), options as never)).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      });
    }
    expect(fake.calls).toHaveLength(0);
  });
});

describe('ill-formed token strings are "no such token" (issue 12 §3)', () => {
  const LONE = ['\uD800', 'polar_at_\uDC00x', 'x\uD83D', '\uDE00\uD83D'];

  it.each(LONE)('revokeToken(%j) resolves absent without a call', async (token) => {
    await expect(revoker.revokeToken(token, 'access_token')).resolves.toEqual({
      status: 'absent',
      attempts: 0,
      durationMs: 0,
    });
    expect(fake.calls).toHaveLength(0);
  });

  it('revoke() skips the ill-formed token and still revokes the other one', async () => {
    const pair = fake.issueTokens();
    const result = await revoker.revoke({ accessToken: '\uD800' + pair.accessToken, refreshToken: pair.refreshToken });
    expect(result.accessToken.status).toBe('absent');
    expect(result.refreshToken.status).toBe('revoked');
    expect(fake.calls.map((c) => c.hint)).toEqual(['refresh_token']);
  });

  it('a well-formed astral character is still a token', async () => {
    await expect(revoker.revokeToken('tok\u{1F600}', 'access_token')).resolves.toMatchObject({ status: 'revoked' });
    expect(fake.calls.map((c) => c.token)).toEqual(['tok\u{1F600}']);
  });

  it('the middleware logs the user out (303, session destroyed) instead of answering 500', async () => {
    const h = await createHarness();
    try {
      const { cookie } = await h.login({
        accessToken: 'polar_at_\uD800',
        refreshToken: 'polar_rt_\uDFFF',
        user: 'ada',
      });
      expect(await h.sessionIds()).toHaveLength(1);
      await h.post(cookie).expect(303);
      expect(await h.sessionIds()).toEqual([]);
      expect(h.errors).toEqual([]);
      expect(h.events[0]?.revocation).toMatchObject({
        accessToken: { status: 'absent' },
        refreshToken: { status: 'absent' },
      });
      expect(h.fake.calls).toHaveLength(0);
    } finally {
      await h.close();
    }
  });
});

describe('verify() (issue 13 §1)', () => {
  it('resolves ok with the right URL and credentials, revoking a random unknown token', async () => {
    await expect(revoker.verify()).resolves.toEqual({ ok: true });
    await expect(revoker.verify()).resolves.toEqual({ ok: true });
    expect(fake.calls).toHaveLength(2);
    const [first, second] = fake.calls;
    expect(first).toMatchObject({ hint: 'access_token', authenticated: true, result: 200 });
    expect(first?.token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes, base64url
    expect(second?.token).not.toBe(first?.token);
  });

  it('reports INVALID_CLIENT for a wrong secret', async () => {
    const wrong = createPolarRevoker({ clientId: fake.clientId, clientSecret: 'polar_cs_wrong', baseUrl: fake.url });
    try {
      await expect(wrong.verify()).resolves.toEqual({
        ok: false,
        error: { code: 'INVALID_CLIENT', httpStatus: 401 },
      });
    } finally {
      wrong.close();
    }
    expect(fake.calls).toMatchObject([{ authenticated: false, result: 401 }]);
  });

  it('reports UNEXPECTED_RESPONSE for a baseUrl that answers a web page, or 404', async () => {
    const html = await startServer((res) =>
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end('<!doctype html><title>Hi</title>'),
    );
    const notFound = await startServer((res) =>
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"detail":"Not Found"}'),
    );
    const clients = [html, notFound].map((s) =>
      createPolarRevoker({ clientId: 'id', clientSecret: 'secret', baseUrl: s.url }),
    );
    try {
      await expect(clients[0]!.verify()).resolves.toEqual({
        ok: false,
        error: { code: 'UNEXPECTED_RESPONSE', httpStatus: 200 },
      });
      await expect(clients[1]!.verify()).resolves.toEqual({
        ok: false,
        error: { code: 'UNEXPECTED_RESPONSE', httpStatus: 404 },
      });
      expect([html.hits(), notFound.hits()]).toEqual([1, 1]);
    } finally {
      for (const c of clients) c.close();
      await Promise.all([html.close(), notFound.close()]);
    }
  });

  it('reports NETWORK_ERROR when nothing listens, without rejecting', async () => {
    const gone = await startServer((res) => res.end());
    await gone.close();
    const client = createPolarRevoker({ clientId: 'id', clientSecret: 'secret', baseUrl: gone.url, retries: 0 });
    try {
      await expect(client.verify()).resolves.toEqual({ ok: false, error: { code: 'NETWORK_ERROR' } });
    } finally {
      client.close();
    }
  });

  it('reports TIMEOUT within timeoutMs when Polar hangs', async () => {
    fake.fail({ type: 'hang' });
    const client = createPolarRevoker({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      timeoutMs: 150,
    });
    const started = Date.now();
    try {
      await expect(client.verify()).resolves.toEqual({ ok: false, error: { code: 'TIMEOUT' } });
    } finally {
      client.close();
    }
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('reports ABORTED and sends nothing with a pre-aborted signal', async () => {
    await expect(revoker.verify({ signal: AbortSignal.abort() })).resolves.toEqual({
      ok: false,
      error: { code: 'ABORTED' },
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(fake.calls).toHaveLength(0);
    expect(fake.connections).toBe(0);
  });

  it('is on the handler too', async () => {
    const right = polarLogout({ clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url });
    const wrong = polarLogout({ clientId: fake.clientId, clientSecret: 'nope', baseUrl: fake.url });
    try {
      await expect(right.verify()).resolves.toEqual({ ok: true });
      await expect(wrong.verify()).resolves.toEqual({ ok: false, error: { code: 'INVALID_CLIENT', httpStatus: 401 } });
    } finally {
      right.close();
      wrong.close();
    }
    expect(fake.calls.map((c) => c.authenticated)).toEqual([true, false]);
  });
});
