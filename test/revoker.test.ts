import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createPolarRevoker, type PolarRevoker } from '../lib';
import { VERSION } from '../lib/version';
import { classifyResponse, parseRetryAfter } from '../lib/revoker';
import { startFakePolar, type FakePolar } from '../lib/testing';

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
