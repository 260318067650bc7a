import { createHash } from 'node:crypto';
import session from 'express-session';
import request from 'supertest';
import express from 'express';
import {
  createMemoryTombstones,
  guardSessionStore,
  polarLogout,
  PolarLogoutError,
  type LogoutEvent,
  type PolarLogoutOptions,
  type RevocationQueue,
  type SessionTombstones,
  type TokenTypeHint,
} from '../lib';
import { capture, cookieHeader, createHarness, type Harness, sleep } from './support/harness';

const harnesses: Harness[] = [];
async function harness(...args: Parameters<typeof createHarness>): Promise<Harness> {
  const h = await createHarness(...args);
  harnesses.push(h);
  return h;
}
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

function onlyEvent(h: Harness): LogoutEvent {
  expect(h.events).toHaveLength(1);
  return h.events[0]!;
}

declare const EXPRESS_MAJOR: number;

it('runs on the Express major version its jest project names', async () => {
  // Express 4 parses `a[b]=1` into an object (qs); Express 5's simple parser keeps the key as it is.
  const app = express();
  app.get('/q', (req, res) => res.json(req.query));
  const res = await request(app).get('/q?a[b]=1');
  expect(res.body).toEqual(EXPRESS_MAJOR === 4 ? { a: { b: '1' } } : { 'a[b]': '1' });
});

describe('a logout that works', () => {
  it('revokes both tokens with the right hints, destroys the session, clears the cookie and redirects 303', async () => {
    const h = await harness();
    const { tokens, sessionId, cookie } = await h.login();
    expect(await h.sessionIds()).toEqual([sessionId]);

    const res = capture(h, await h.post(cookie).expect(303));

    expect(res.headers.location).toBe('/');
    expect(res.headers['cache-control']).toBe('no-store');
    // A bare 303 (no page to negotiate): the answer differs by Accept (JSON for fetch), and says so.
    expect(res.headers['content-length']).toBe('0');
    expect(res.headers.vary).toBe('Accept');
    const cleared = cookieHeader(res).find((c) => c.startsWith('connect.sid='));
    expect(cleared).toMatch(/^connect\.sid=; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax$/);
    expect(await h.sessionIds()).toEqual([]);

    expect(h.fake.isActive(tokens.accessToken)).toBe(false);
    expect(h.fake.isActive(tokens.refreshToken)).toBe(false);
    const calls = [...h.fake.calls].sort((a, b) => String(a.hint).localeCompare(String(b.hint)));
    expect(calls.map((c) => [c.hint, c.token])).toEqual([
      ['access_token', tokens.accessToken],
      ['refresh_token', tokens.refreshToken],
    ]);
    for (const call of calls) {
      expect(call.contentType).toBe('application/x-www-form-urlencoded');
      expect(call.clientAuth).toBe('client_secret_post');
      expect(call.authenticated).toBe(true);
      expect(call.fields.sort()).toEqual(['client_id', 'client_secret', 'token', 'token_type_hint']);
      expect(call.result).toBe(200);
    }
  });

  it('sends both revocations at the same time (observed at the stand-in)', async () => {
    const h = await harness();
    h.fake.setLatency(300);
    const { cookie } = await h.login();
    const started = Date.now();
    await h.post(cookie).expect(303);
    const elapsed = Date.now() - started;

    const [first, second] = [...h.fake.calls].sort((a, b) => a.receivedAt - b.receivedAt);
    expect(h.fake.maxConcurrent).toBe(2);
    // The second call arrived before the first was answered: they overlapped.
    expect(second!.receivedAt).toBeLessThan(first!.answeredAt!);
    // Sequential calls would take at least 600 ms.
    expect(elapsed).toBeLessThan(600);
  });

  it('answers JSON to clients that prefer it', async () => {
    const h = await harness();
    const { cookie } = await h.login();
    const res = capture(h, await h.post(cookie).set('Accept', 'application/json').expect(200));
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual({
      loggedOut: true,
      redirectTo: '/',
      revocation: { accessToken: 'revoked', refreshToken: 'revoked' },
    });
    expect(res.headers['cache-control']).toBe('no-store');
    expect(await h.sessionIds()).toEqual([]);
  });

  it('records a complete audit event with nothing secret in it', async () => {
    const h = await harness();
    const { sessionId, cookie } = await h.login();
    // The id the store keys the session by, and the cookie carries (signed): the hash must be of this id.
    expect(await h.sessionIds()).toEqual([sessionId]);
    expect(decodeURIComponent(cookie)).toContain(`s:${sessionId}.`);
    await h.post(cookie).set('User-Agent', 'audit-test/1.0').expect(303);
    const event = onlyEvent(h);
    expect(event).toEqual({
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      loggedOut: true,
      sessionDestroyed: true,
      revocation: {
        accessToken: { status: 'revoked', attempts: 1, durationMs: expect.any(Number) },
        refreshToken: { status: 'revoked', attempts: 1, durationMs: expect.any(Number) },
      },
      redirectTo: '/',
      durationMs: expect.any(Number),
      ip: expect.stringMatching(/127\.0\.0\.1|::1/),
      userAgent: 'audit-test/1.0',
      sessionIdHash: expect.stringMatching(/^[0-9a-f]{16}$/),
      scope: 'session',
    });
    expect(event.sessionIdHash).toBe(createHash('sha256').update(sessionId).digest('hex').slice(0, 16));
    expect(Math.abs(Date.parse(event.at) - Date.now())).toBeLessThan(10_000);
  });

  it('logs out cleanly with no call to Polar when the session holds no tokens', async () => {
    const h = await harness();
    const { cookie } = await h.login({ user: 'no-tokens' });
    await h.post(cookie).expect(303);
    expect(h.fake.calls).toHaveLength(0);
    expect(await h.sessionIds()).toEqual([]);
    expect(onlyEvent(h).revocation).toEqual({
      accessToken: { status: 'absent', attempts: 0, durationMs: 0 },
      refreshToken: { status: 'absent', attempts: 0, durationMs: 0 },
    });
  });

  it('logs out cleanly with no call to Polar when there is no session at all', async () => {
    const h = await harness();
    const res = await h.post().expect(303);
    expect(res.headers.location).toBe('/');
    expect(h.fake.calls).toHaveLength(0);
    expect(onlyEvent(h).loggedOut).toBe(true);
  });

  it.each([
    ['a number', 42],
    ['an object', { token: 'x' }],
    ['an empty string', ''],
    ['an array', ['x']],
    ['a 9000-character string', 'x'.repeat(9000)],
  ])('treats %s in the session as no token', async (_label, value) => {
    const h = await harness();
    const { tokens, cookie } = await h.login({ accessToken: value });
    await h.post(cookie).expect(303);
    expect(h.fake.calls).toHaveLength(0);
    expect(onlyEvent(h).revocation.accessToken.status).toBe('absent');
    expect(h.fake.isActive(tokens.accessToken)).toBe(true);
    expect(await h.sessionIds()).toEqual([]);
  });

  it('sends only the token that exists', async () => {
    const h = await harness();
    h.fake.resetCalls();
    const pair = h.fake.issueTokens();
    const only = await h.login({ accessToken: pair.accessToken });
    await h.post(only.cookie).expect(303);
    expect(h.fake.calls.map((c) => c.hint)).toEqual(['access_token']);
    expect(h.fake.isActive(pair.accessToken)).toBe(false);
    expect(h.fake.isActive(pair.refreshToken)).toBe(false); // as at Polar: one row per issuance
    expect(h.events.at(-1)!.revocation.refreshToken.status).toBe('absent');
  });

  it('uses getTokens when given, and awaits it', async () => {
    const pair = { accessToken: '', refreshToken: '' };
    const h = await harness({
      logout: {
        getTokens: async (req) => {
          await sleep(5);
          return { accessToken: req.get('x-test-access'), refreshToken: pair.refreshToken };
        },
      },
    });
    Object.assign(pair, h.fake.issueTokens());
    const { cookie } = await h.login({ user: 'elsewhere' });
    await h.post(cookie).set('x-test-access', pair.accessToken).expect(303);
    expect(h.fake.isActive(pair.accessToken)).toBe(false);
    expect(h.fake.isActive(pair.refreshToken)).toBe(false);
  });

  it('authenticates with HTTP Basic when clientAuth is client_secret_basic', async () => {
    const h = await harness({ logout: { clientAuth: 'client_secret_basic' } });
    const { tokens, cookie } = await h.login();
    await h.post(cookie).expect(303);
    expect(h.fake.calls).toHaveLength(2);
    for (const call of h.fake.calls) {
      expect(call.clientAuth).toBe('client_secret_basic');
      expect(call.authenticated).toBe(true);
      expect(call.fields).not.toContain('client_secret');
    }
    expect(h.fake.isActive(tokens.accessToken)).toBe(false);
  });

  it('clears the cookie with the session cookie own name, path, domain and flags', async () => {
    const h = await harness({
      cookieName: 'app.sid',
      cookie: { path: '/', domain: 'example.test', secure: false, httpOnly: true, sameSite: 'strict' },
    });
    const { cookie } = await h.login();
    const res = await h.post(cookie.replace(/^connect\.sid/, 'app.sid')).expect(303);
    const cleared = cookieHeader(res).find((c) => c.startsWith('app.sid='));
    expect(cleared).toBe(
      'app.sid=; Domain=example.test; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Strict',
    );
    expect(await h.sessionIds()).toEqual([]);
  });

  it('survives two logouts of the same session at once (a double click)', async () => {
    const h = await harness();
    const { tokens, cookie } = await h.login();
    const [a, b] = await Promise.all([h.post(cookie), h.post(cookie)]);
    expect(a.status).toBe(303);
    expect(b.status).toBe(303);
    expect(await h.sessionIds()).toEqual([]);
    expect(h.fake.isActive(tokens.refreshToken)).toBe(false);
  });
});

describe('the guard', () => {
  it.each(['GET', 'PUT', 'DELETE', 'PATCH'])('answers %s with 405 and Allow, touching nothing', async (method) => {
    const h = await harness({ mount: 'use' });
    const { tokens, sessionId, cookie } = await h.login();
    const client = request(h.app) as unknown as Record<string, (path: string) => request.Test>;
    const send = client[method.toLowerCase()]!;
    const res = capture(h, await send('/logout').set('Cookie', cookie).expect(405));
    expect(res.headers.allow).toBe('POST');
    expect(cookieHeader(res)).toEqual([]);
    expect(await h.sessionIds()).toEqual([sessionId]);
    expect(h.fake.calls).toHaveLength(0);
    expect(h.fake.isActive(tokens.accessToken)).toBe(true);
    expect(h.events).toHaveLength(0);
  });

  it('answers HEAD with 405 when mounted with app.use', async () => {
    const h = await harness({ mount: 'use' });
    const { sessionId, cookie } = await h.login();
    const res = await request(h.app).head('/logout').set('Cookie', cookie).expect(405);
    expect(res.headers.allow).toBe('POST');
    expect(await h.sessionIds()).toEqual([sessionId]);
  });

  it('accepts the methods it is configured with', async () => {
    const h = await harness({ mount: 'use', logout: { methods: ['post', 'DELETE'] } });
    const { cookie } = await h.login();
    const res = await request(h.app).get('/logout').set('Cookie', cookie).expect(405);
    expect(res.headers.allow).toBe('POST, DELETE');
    await request(h.app).delete('/logout').set('Cookie', cookie).expect(303);
    expect(await h.sessionIds()).toEqual([]);
  });

  it.each([
    ['Sec-Fetch-Site: cross-site', { 'Sec-Fetch-Site': 'cross-site' }],
    ['a foreign Origin', { Origin: 'https://evil.example' }],
    ['Origin: null', { Origin: 'null' }],
    ['a lookalike Origin', { Origin: 'http://127.0.0.1.evil.example' }],
    [
      'a foreign Origin with same-origin Sec-Fetch-Site',
      { Origin: 'https://evil.example', 'Sec-Fetch-Site': 'same-origin' },
    ],
  ])('refuses %s with 403 before anything is touched', async (_label, headers) => {
    const h = await harness();
    const { tokens, sessionId, cookie } = await h.login();
    const res = capture(h, await h.post(cookie).set(headers).expect(403));
    expect(res.text).toMatch(/cross-site/i);
    expect(cookieHeader(res)).toEqual([]);
    expect(await h.sessionIds()).toEqual([sessionId]);
    expect(h.fake.calls).toHaveLength(0);
    expect(h.fake.isActive(tokens.accessToken)).toBe(true);
    expect(h.events).toHaveLength(0);
  });

  it('answers refusals in JSON to JSON clients', async () => {
    const h = await harness();
    const res = await h.post().set({ Origin: 'https://evil.example', Accept: 'application/json' }).expect(403);
    expect(res.body).toEqual({ error: 'cross_site_request', message: expect.any(String) });
  });

  it('accepts its own origin, an https origin on its own host, and trustedOrigins', async () => {
    const h = await harness({ logout: { trustedOrigins: ['https://app.example.com'] } });
    for (const origin of [undefined, 'own-http', 'own-https', 'https://app.example.com']) {
      const { sessionId, cookie } = await h.login();
      const host = 'logout.test:8080';
      const test = h.post(cookie).set('Host', host);
      if (origin === 'own-http') test.set('Origin', `http://${host}`);
      else if (origin === 'own-https') test.set('Origin', `https://${host}`);
      else if (origin) test.set({ Origin: origin, 'Sec-Fetch-Site': 'cross-site' });
      await test.expect(303);
      expect(await h.sessionIds()).not.toContain(sessionId);
    }
  });

  it('refuses an http origin on its own host when the request came over https', async () => {
    const h = await harness();
    h.app.set('trust proxy', true);
    const { sessionId, cookie } = await h.login();
    await h
      .post(cookie)
      .set({ Host: 'logout.test', 'X-Forwarded-Proto': 'https', Origin: 'http://logout.test' })
      .expect(403);
    expect(await h.sessionIds()).toEqual([sessionId]);
  });

  it('accepts Origin: null when the browser says same-origin (Referrer-Policy: no-referrer form posts)', async () => {
    const h = await harness();
    const { cookie } = await h.login();
    await h.post(cookie).set({ Origin: 'null', 'Sec-Fetch-Site': 'same-origin' }).expect(303);
    expect(await h.sessionIds()).toEqual([]);
    const second = await h.login();
    await h.post(second.cookie).set({ Origin: 'null', 'Sec-Fetch-Site': 'same-site' }).expect(403);
    expect(await h.sessionIds()).toEqual([second.sessionId]);
  });

  it.each(['same-origin', 'same-site'])('lets %s fetch metadata through', async (site) => {
    const h = await harness();
    const { sessionId, cookie } = await h.login();
    await h.post(cookie).set('Sec-Fetch-Site', site).expect(303);
    expect(await h.sessionIds()).not.toContain(sessionId);
    expect(h.fake.calls).toHaveLength(2);
  });
});

describe('where the user lands', () => {
  const allowed = ['https://app.example.com'];

  it.each([
    ['a same-site path', '/goodbye?from=logout#top', '/goodbye?from=logout#top'],
    ['a path with unicode', '/au-revoir/é', '/au-revoir/%C3%A9'],
    ['an allowlisted absolute URL', 'https://app.example.com/bye', 'https://app.example.com/bye'],
    ['a protocol-relative URL', '//evil.example/x', '/home'],
    ['a backslash trick', '/\\evil.example', '/home'],
    ['a scheme without slashes', 'https:evil.example', '/home'],
    ['javascript:', 'javascript:alert(1)', '/home'],
    ['an encoded double slash', '/%2F%2Fevil.example', '/home'],
    ['a tab', '/\t/evil.example', '/home'],
    ['a foreign absolute URL', 'https://evil.example/', '/home'],
    ['a lookalike origin', 'https://app.example.com.evil.example/', '/home'],
    ['userinfo', 'https://app.example.com@evil.example/', '/home'],
  ])('%s by query', async (_label, target, expected) => {
    const h = await harness({ logout: { redirectTo: '/home', allowedRedirectOrigins: allowed } });
    const { cookie } = await h.login();
    const res = await h.post(cookie, `/logout?returnTo=${encodeURIComponent(target)}`).expect(303);
    expect(res.headers.location).toBe(expected);
    expect(onlyEvent(h).redirectTo).toBe(expected);
  });

  it('reads a parsed form body, and a custom parameter name', async () => {
    const h = await harness({ logout: { returnToParam: 'next' } });
    const { cookie } = await h.login();
    const res = await h.post(cookie).type('form').send({ next: '/after' }).expect(303);
    expect(res.headers.location).toBe('/after');
    const second = await h.login();
    const bad = await h.post(second.cookie).type('form').send({ next: '//evil.example' }).expect(303);
    expect(bad.headers.location).toBe('/');
  });

  it('puts the chosen target in the JSON answer', async () => {
    const h = await harness({ logout: { redirectTo: 'https://app.example.com/signed-out' } });
    const { cookie } = await h.login();
    const res = await h.post(cookie).set('Accept', 'application/json').expect(200);
    expect((res.body as { redirectTo: string }).redirectTo).toBe('https://app.example.com/signed-out');
  });
});

describe('when Polar misbehaves', () => {
  it('answers within the budget when Polar hangs, and reports TIMEOUT', async () => {
    const h = await harness({ logout: { timeoutMs: 300 } });
    h.fake.fail({ type: 'hang' });
    const { tokens, cookie } = await h.login();
    const started = Date.now();
    await h.post(cookie).expect(303);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1500);
    const { revocation } = onlyEvent(h);
    expect(revocation.accessToken).toMatchObject({ status: 'failed', error: { code: 'TIMEOUT' } });
    expect(revocation.refreshToken).toMatchObject({ status: 'failed', error: { code: 'TIMEOUT' } });
    expect(await h.sessionIds()).toEqual([]);
    expect(h.fake.isActive(tokens.accessToken)).toBe(true);
  });

  it('answers within the budget when the body trickles in forever', async () => {
    const h = await harness({ logout: { timeoutMs: 300 } });
    h.fake.fail({ type: 'trickle', intervalMs: 20 });
    const { cookie } = await h.login();
    const started = Date.now();
    await h.post(cookie).expect(303);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(onlyEvent(h).revocation.accessToken.error).toEqual({ code: 'TIMEOUT' });
  });

  it('retries a 503 and succeeds', async () => {
    const h = await harness();
    h.fake.fail({ type: 'status', status: 503 }, { times: 1, hint: 'access_token' });
    const { tokens, cookie } = await h.login();
    await h.post(cookie).expect(303);
    const { revocation } = onlyEvent(h);
    expect(revocation.accessToken).toMatchObject({ status: 'revoked', attempts: 2 });
    expect(revocation.refreshToken).toMatchObject({ status: 'revoked', attempts: 1 });
    expect(h.fake.calls.filter((c) => c.hint === 'access_token').map((c) => c.result)).toEqual([503, 200]);
    expect(h.fake.isActive(tokens.accessToken)).toBe(false);
  });

  it('retries a reset connection and a 429', async () => {
    const h = await harness({ logout: { retries: 2 } });
    h.fake.fail({ type: 'reset' }, { times: 1, hint: 'refresh_token' });
    h.fake.fail({ type: 'status', status: 429 }, { times: 1, hint: 'refresh_token' });
    const { tokens, cookie } = await h.login();
    await h.post(cookie).expect(303);
    expect(onlyEvent(h).revocation.refreshToken).toMatchObject({ status: 'revoked', attempts: 3 });
    expect(h.fake.calls.filter((c) => c.hint === 'refresh_token').map((c) => c.result)).toEqual([429, 'reset', 200]);
    expect(h.fake.isActive(tokens.refreshToken)).toBe(false);
  });

  it('gives up after `retries` extra attempts', async () => {
    const h = await harness({ logout: { retries: 2 } });
    h.fake.fail({ type: 'status', status: 502 });
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    expect(onlyEvent(h).revocation.accessToken).toMatchObject({
      status: 'failed',
      attempts: 3,
      error: { code: 'SERVER_ERROR', httpStatus: 502 },
    });
  });

  it.each([
    [400, 'REJECTED'],
    [403, 'REJECTED'],
    [404, 'UNEXPECTED_RESPONSE'], // the revoke path exists at Polar: a 404 means baseUrl is wrong
  ])('does not retry a %d', async (status, code) => {
    const h = await harness({ logout: { retries: 3 } });
    h.fake.fail({ type: 'status', status });
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    expect(onlyEvent(h).revocation.accessToken).toMatchObject({
      status: 'failed',
      attempts: 1,
      error: { code, httpStatus: status },
    });
    expect(h.fake.calls).toHaveLength(2);
  });

  it('reports a wrong client secret as INVALID_CLIENT, never as revoked', async () => {
    const h = await harness({ logout: { clientSecret: 'not-the-secret', retries: 3 } });
    const { tokens, cookie } = await h.login();
    await h.post(cookie).expect(303);
    const { revocation } = onlyEvent(h);
    for (const outcome of [revocation.accessToken, revocation.refreshToken]) {
      expect(outcome).toEqual({
        status: 'failed',
        attempts: 1,
        durationMs: expect.any(Number),
        error: { code: 'INVALID_CLIENT', httpStatus: 401 },
      });
    }
    expect(h.fake.isActive(tokens.accessToken)).toBe(true);
  });

  it('treats a 200 web page as UNEXPECTED_RESPONSE, and a 200 with an empty or non-JSON body as revoked', async () => {
    const h = await harness();
    h.fake.fail(
      { type: 'status', status: 200, contentType: 'text/html', body: '<html>hi</html>' },
      { hint: 'access_token' },
    );
    h.fake.fail({ type: 'status', status: 200, contentType: 'text/plain', body: '' }, { hint: 'refresh_token' });
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    const { revocation } = onlyEvent(h);
    expect(revocation.accessToken).toMatchObject({
      status: 'failed',
      attempts: 1,
      error: { code: 'UNEXPECTED_RESPONSE', httpStatus: 200 },
    });
    expect(revocation.refreshToken.status).toBe('revoked');
  });

  it('honours a Retry-After that fits in the budget', async () => {
    const h = await harness({ logout: { timeoutMs: 3000 } });
    h.fake.fail({ type: 'status', status: 503, retryAfter: '1' }, { times: 1, hint: 'access_token' });
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    const outcome = onlyEvent(h).revocation.accessToken;
    expect(outcome).toMatchObject({ status: 'revoked', attempts: 2 });
    expect(outcome.durationMs).toBeGreaterThanOrEqual(950);
  });

  it('does not wait for a Retry-After longer than the remaining budget', async () => {
    const h = await harness({ logout: { timeoutMs: 2000 } });
    h.fake.fail({ type: 'status', status: 503, retryAfter: '30' });
    const { cookie } = await h.login();
    const started = Date.now();
    await h.post(cookie).expect(303);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(onlyEvent(h).revocation.accessToken).toMatchObject({
      status: 'failed',
      attempts: 1,
      error: { code: 'SERVER_ERROR', httpStatus: 503 },
    });
  });

  it('reports NETWORK_ERROR when Polar refuses connections, retrying once', async () => {
    const h = await harness();
    const closedUrl = h.fake.url;
    await h.fake.close();
    const app = express();
    const store = new session.MemoryStore();
    const events: LogoutEvent[] = [];
    app.use(session({ secret: 's', resave: false, saveUninitialized: false, store }));
    app.post('/login', (req, res) => {
      Object.assign(req.session, { accessToken: 'a-token', refreshToken: 'r-token' });
      req.session.save(() => res.end());
    });
    const logout = polarLogout({
      clientId: 'id',
      clientSecret: 'secret',
      baseUrl: closedUrl,
      onLogout: (e) => void events.push(e),
    });
    app.post('/logout', logout);
    const agent = request.agent(app);
    await agent.post('/login');
    await agent.post('/logout').expect(303);
    logout.close();
    expect(events[0]!.revocation.accessToken).toMatchObject({
      status: 'failed',
      attempts: 2,
      error: { code: 'NETWORK_ERROR' },
    });
  });
});

describe("onRevocationFailure: 'fail'", () => {
  it('keeps the session and passes REVOCATION_FAILED (502) to next()', async () => {
    const h = await harness({ logout: { onRevocationFailure: 'fail', retries: 0 } });
    h.fake.fail({ type: 'status', status: 503 }, { hint: 'refresh_token' });
    const { tokens, sessionId, cookie } = await h.login();
    const res = capture(h, await h.post(cookie).expect(502));
    expect(res.body).toEqual({ error: 'REVOCATION_FAILED' });
    expect(cookieHeader(res)).toEqual([]);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(await h.sessionIds()).toEqual([sessionId]);
    expect(h.errors).toHaveLength(1);
    const err = h.errors[0] as PolarLogoutError;
    expect(err).toBeInstanceOf(PolarLogoutError);
    expect(err).toMatchObject({ code: 'REVOCATION_FAILED', status: 502, statusCode: 502 });
    // Both calls still went out: the access token is dead even though the refresh call failed.
    expect(h.fake.isActive(tokens.accessToken)).toBe(false);
    expect(onlyEvent(h)).toMatchObject({
      loggedOut: false,
      sessionDestroyed: false,
      error: { code: 'REVOCATION_FAILED' },
    });
  });

  it('logs out as usual when revocation succeeds', async () => {
    const h = await harness({ logout: { onRevocationFailure: 'fail' } });
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    expect(await h.sessionIds()).toEqual([]);
  });
});

describe('when the session store fails', () => {
  class FailingDestroyStore extends session.MemoryStore {
    override destroy(_sid: string, callback?: (err?: unknown) => void): void {
      callback?.(new Error('store is down'));
    }
  }

  it('claims no success: SESSION_DESTROY_FAILED (500) goes to next(), the cookie is kept', async () => {
    const h = await harness({ store: new FailingDestroyStore() });
    const { sessionId, cookie } = await h.login();
    const res = capture(h, await h.post(cookie).expect(500));
    expect(res.body).toEqual({ error: 'SESSION_DESTROY_FAILED' });
    expect(cookieHeader(res).filter((c) => c.includes('1970'))).toEqual([]);
    expect(await h.sessionIds()).toEqual([sessionId]);
    expect(h.errors[0]).toMatchObject({ code: 'SESSION_DESTROY_FAILED', status: 500 });
    expect(onlyEvent(h)).toMatchObject({
      loggedOut: false,
      sessionDestroyed: false,
      error: { code: 'SESSION_DESTROY_FAILED' },
    });
  });

  it('says what to fix when express-session is not mounted', async () => {
    const h = await harness({ withoutSession: true });
    const res = await h.post().expect(500);
    expect(res.body).toEqual({ error: 'SESSION_UNAVAILABLE' });
    expect(res.headers['cache-control']).toBe('no-store');
    expect((h.errors[0] as Error).message).toMatch(/mount express-session before polarLogout/);
    expect(h.fake.calls).toHaveLength(0);
  });

  it('keeps the session when getTokens throws', async () => {
    const h = await harness({
      logout: {
        getTokens: () => {
          throw new Error('db down');
        },
      },
    });
    const { sessionId, cookie } = await h.login();
    const res = await h.post(cookie).expect(500);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(h.errors[0]).toMatchObject({ code: 'GET_TOKENS_FAILED' });
    expect(await h.sessionIds()).toEqual([sessionId]);
  });
});

describe('the audit hook', () => {
  it('never turns a logout into an error when it throws or rejects', async () => {
    for (const onLogout of [
      () => {
        throw new Error('audit sink down');
      },
      () => Promise.reject(new Error('audit sink down')),
    ]) {
      const h = await harness({ logout: { onLogout } });
      const { cookie } = await h.login();
      await h.post(cookie).expect(303);
      expect(await h.sessionIds()).toEqual([]);
      expect(h.errors).toEqual([]);
    }
  });

  it('is awaited before the answer, but never longer than timeoutMs', async () => {
    let finished = false;
    const slow = await harness({
      logout: {
        onLogout: async () => {
          await sleep(100);
          finished = true;
        },
      },
    });
    const first = await slow.login();
    await slow.post(first.cookie).expect(303);
    expect(finished).toBe(true);

    const hung = await harness({ logout: { timeoutMs: 200, onLogout: () => new Promise<void>(() => undefined) } });
    const second = await hung.login();
    const started = Date.now();
    await hung.post(second.cookie).expect(303);
    expect(Date.now() - started).toBeLessThan(1500);
  });
});

describe('with an outbox', () => {
  class RecordingQueue implements RevocationQueue {
    readonly jobs: Array<{ token: string; hint: TokenTypeHint; sessionIdHash?: string }> = [];
    failing = false;
    enqueue(token: string, hint: TokenTypeHint, context: { sessionIdHash?: string }): Promise<void> {
      if (this.failing) return Promise.reject(new Error('redis down'));
      this.jobs.push({ token, hint, ...context });
      return Promise.resolve();
    }
  }

  it('queues failures that may pass and marks them queued', async () => {
    const queue = new RecordingQueue();
    const h = await harness({ logout: { outbox: queue, retries: 0 } });
    h.fake.fail({ type: 'status', status: 503 }, { hint: 'refresh_token' });
    const { tokens, cookie } = await h.login();
    await h.post(cookie).expect(303);
    const event = onlyEvent(h);
    expect(queue.jobs).toEqual([
      { token: tokens.refreshToken, hint: 'refresh_token', sessionIdHash: event.sessionIdHash },
    ]);
    expect(event.revocation.refreshToken).toMatchObject({ status: 'failed', queued: true });
    expect(event.revocation.accessToken.queued).toBeUndefined();
  });

  it('queues with the session id hash without an audit hook too (computed only then: the healthy path skips it)', async () => {
    const queue = new RecordingQueue();
    const h = await harness({ logout: { outbox: queue, retries: 0, onLogout: undefined } });
    h.fake.fail({ type: 'status', status: 503 }, { hint: 'access_token' });
    const { tokens, cookie, sessionId } = await h.login();
    await h.post(cookie).expect(303);
    expect(h.events).toEqual([]);
    expect(queue.jobs).toEqual([
      {
        token: tokens.accessToken,
        hint: 'access_token',
        sessionIdHash: createHash('sha256').update(sessionId).digest('hex').slice(0, 16),
      },
    ]);
  });

  it('does not queue answers that will not change (401, 400)', async () => {
    const queue = new RecordingQueue();
    const h = await harness({ logout: { outbox: queue, clientSecret: 'wrong' } });
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    expect(queue.jobs).toEqual([]);
    expect(onlyEvent(h).revocation.accessToken.queued).toBeUndefined();
  });

  it('reports an outbox that cannot take the job, and still logs out', async () => {
    const queue = new RecordingQueue();
    queue.failing = true;
    const h = await harness({ logout: { outbox: queue, retries: 0 } });
    h.fake.fail({ type: 'status', status: 503 });
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    expect(await h.sessionIds()).toEqual([]);
    expect(onlyEvent(h).revocation.accessToken).toMatchObject({ status: 'failed', queued: false });
  });

  it('does not let an outbox that never answers hold the logout past timeoutMs', async () => {
    const hanging: RevocationQueue = { enqueue: () => new Promise<void>(() => undefined) };
    const h = await harness({ logout: { outbox: hanging, retries: 0, timeoutMs: 300 } });
    h.fake.fail({ type: 'status', status: 503 });
    const { cookie } = await h.login();
    const started = Date.now();
    await h.post(cookie).expect(303);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(onlyEvent(h).revocation.accessToken).toMatchObject({ status: 'failed', queued: false });
    expect(await h.sessionIds()).toEqual([]);
  });

  it("queues nothing with onRevocationFailure: 'fail'", async () => {
    const queue = new RecordingQueue();
    const h = await harness({ logout: { outbox: queue, retries: 0, onRevocationFailure: 'fail' } });
    h.fake.fail({ type: 'status', status: 503 });
    const { cookie } = await h.login();
    await h.post(cookie).expect(502);
    expect(queue.jobs).toEqual([]);
  });
});

describe('what onLogout can read', () => {
  it('sees who logged out in req.session: a frozen copy without the cookie or the tokens', async () => {
    const seen: Array<{ user: unknown; keys: string[]; frozen: boolean; text: string }> = [];
    const h = await harness({
      logout: {
        onLogout: async (event, req) => {
          await sleep(5); // still readable after an await
          seen.push({
            user: req.session.user,
            keys: Object.keys(req.session),
            frozen: Object.isFrozen(req.session),
            text: JSON.stringify(req.session),
          });
          h.events.push(event);
        },
      },
    });
    const { tokens, cookie } = await h.login();
    await h.post(cookie).expect(303);
    expect(seen).toEqual([{ user: 'ada', keys: ['user'], frozen: true, text: '{"user":"ada"}' }]);
    expect(seen[0]!.text).not.toContain(tokens.accessToken);
    expect(onlyEvent(h).loggedOut).toBe(true);
    expect(JSON.stringify(h.events)).not.toContain('ada');
  });

  it('never shows a token getTokens read from another field, at any depth', async () => {
    let text = '';
    const h = await harness({
      logout: {
        getTokens: (req) => {
          const { polar } = req.session as unknown as { polar: { access: string; refresh: string } };
          return { accessToken: polar.access, refreshToken: polar.refresh };
        },
        onLogout: (_event, req) => {
          text = JSON.stringify(req.session);
        },
      },
    });
    const pair = h.fake.issueTokens();
    const { cookie } = await h.login({ user: 'ada', polar: { access: pair.accessToken, refresh: pair.refreshToken } });
    await h.post(cookie).expect(303);
    expect(JSON.parse(text)).toEqual({ user: 'ada', polar: {} });
    expect(h.fake.isActive(pair.refreshToken)).toBe(false);
  });

  it('cannot write the session back: a hook that mutates or saves changes nothing in the store', async () => {
    const failures: string[] = [];
    const h = await harness({
      logout: {
        onLogout: (_event, req) => {
          for (const attempt of [
            () => Object.assign(req.session, { user: 'mallory' }),
            () => req.session.save(),
            () => req.session.regenerate(() => undefined),
          ]) {
            try {
              attempt();
            } catch (err) {
              failures.push((err as Error).name);
            }
          }
        },
      },
    });
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    expect(failures).toEqual(['TypeError', 'TypeError', 'TypeError']);
    expect(await h.sessionIds()).toEqual([]);
  });

  it('sees the copy when the session is kept, and the real session is back (and unchanged) afterwards', async () => {
    let user: unknown;
    const h = await harness({
      logout: {
        onRevocationFailure: 'fail',
        retries: 0,
        onLogout: (_event, req) => {
          user = req.session.user;
          expect(Object.isFrozen(req.session)).toBe(true);
        },
      },
    });
    h.fake.fail({ type: 'status', status: 503 });
    const { sessionId, cookie } = await h.login();
    await h.post(cookie).expect(502);
    expect(user).toBe('ada');
    expect(await h.sessionIds()).toEqual([sessionId]);
    const stored = await new Promise<session.SessionData | null | undefined>((resolve, reject) =>
      h.store.get(sessionId, (err, data) => (err ? reject(err as Error) : resolve(data))),
    );
    expect(stored).toMatchObject({ user: 'ada' });
  });

  it('has no session after it settled, so a late hook cannot see or resurrect it', async () => {
    let late: unknown = 'unset';
    let hookEnded: () => void = () => undefined;
    const ended = new Promise<void>((resolve) => (hookEnded = resolve));
    let release: () => void = () => undefined;
    const answered = new Promise<void>((resolve) => (release = resolve));
    const h = await harness({
      logout: {
        timeoutMs: 200,
        onLogout: async (_event, req) => {
          await answered; // outlives timeoutMs: the answer goes out first
          late = req.session;
          hookEnded();
        },
      },
    });
    const { cookie } = await h.login();
    await h.post(cookie).expect(303);
    release();
    await ended;
    expect(late).toBeUndefined();
    expect(await h.sessionIds()).toEqual([]);
  });
});

describe("onRevocationFailure: 'fail' and refusals that will not pass", () => {
  it.each([
    [
      '400 invalid_grant',
      { type: 'status', status: 400, contentType: 'application/json', body: '{"error":"invalid_grant"}' } as const,
      { code: 'REJECTED', httpStatus: 400 },
    ],
    [
      'a 200 web page',
      { type: 'status', status: 200, contentType: 'text/html', body: '<html>hi</html>' } as const,
      { code: 'UNEXPECTED_RESPONSE', httpStatus: 200 },
    ],
  ])('logs out on %s and reports it in the event', async (_label, fault, error) => {
    const h = await harness({ logout: { onRevocationFailure: 'fail', retries: 2 } });
    h.fake.fail(fault);
    const { sessionId, cookie } = await h.login();
    const res = await h.post(cookie).expect(303);
    expect(cookieHeader(res).some((c) => c.startsWith('connect.sid=;'))).toBe(true);
    expect(await h.sessionIds()).not.toContain(sessionId);
    expect(h.errors).toEqual([]);
    const event = onlyEvent(h);
    expect(event).toMatchObject({ loggedOut: true, sessionDestroyed: true });
    expect(event.error).toBeUndefined();
    expect(event.revocation.accessToken).toMatchObject({ status: 'failed', attempts: 1, error });
    expect(event.revocation.refreshToken).toMatchObject({ status: 'failed', attempts: 1, error });
  });

  it('logs out on a wrong client secret (INVALID_CLIENT)', async () => {
    const h = await harness({ logout: { onRevocationFailure: 'fail', clientSecret: 'wrong' } });
    const { sessionId, cookie } = await h.login();
    await h.post(cookie).expect(303);
    expect(await h.sessionIds()).not.toContain(sessionId);
    expect(onlyEvent(h).revocation.accessToken.error).toEqual({ code: 'INVALID_CLIENT', httpStatus: 401 });
  });

  it('keeps the session when one token was refused for good and the other may pass', async () => {
    const h = await harness({ logout: { onRevocationFailure: 'fail', retries: 0 } });
    h.fake.fail({ type: 'status', status: 400 }, { hint: 'access_token' });
    h.fake.fail({ type: 'status', status: 503 }, { hint: 'refresh_token' });
    const { sessionId, cookie } = await h.login();
    await h.post(cookie).expect(502);
    expect(await h.sessionIds()).toEqual([sessionId]);
    expect(onlyEvent(h).error).toEqual({ code: 'REVOCATION_FAILED' });
  });
});

describe('a logout without a session cookie', () => {
  /** Memory tombstones that count what they are asked to record. */
  function countingTombstones(maxEntries: number): SessionTombstones & { added: number } {
    const inner = createMemoryTombstones({ maxEntries });
    const counter = {
      added: 0,
      add(key: string, ttlMs: number) {
        counter.added++;
        return inner.add(key, ttlMs);
      },
      has: (key: string) => inner.has(key),
    };
    return counter;
  }

  it('stores nothing: a flood of logouts without a live session cookie records no tombstone, evicts none', async () => {
    const inner = new session.MemoryStore();
    const tombstones = countingTombstones(20);
    const h = await harness({ store: guardSessionStore(inner, { tombstones }) });
    const victim = await h.login();
    const before = await new Promise<session.SessionData>((resolve, reject) =>
      inner.get(victim.sessionId, (err, data) => (err || !data ? reject(new Error('no session')) : resolve(data))),
    );
    await h.post(victim.cookie).expect(303);
    expect(tombstones.added).toBe(1);

    // No cookie, a forged one, an unsigned one, and the victim's own cookie now that its session is gone.
    const cookies = [undefined, 'connect.sid=s%3Aforged.c2lnbmF0dXJl', 'connect.sid=anything', victim.cookie];
    for (let i = 0; i < 28; i++) {
      const res = await h.post(cookies[i % cookies.length]).expect(303);
      expect(res.headers['cache-control']).toBe('no-store');
      // Still answered as a logout: the (absent) cookie is cleared, and no new session cookie is set.
      expect(cookieHeader(res)).toEqual([expect.stringMatching(/^connect\.sid=; Path=\/; Expires=Thu, 01 Jan 1970/)]);
    }
    expect(tombstones.added).toBe(1);
    expect(h.events.filter((e) => e.loggedOut)).toHaveLength(29);
    expect(await h.sessionIds()).toEqual([]);

    // A request that loaded the victim's session before the logout now tries to save it: still refused.
    await new Promise<void>((resolve) => h.store.set(victim.sessionId, before, () => resolve()));
    expect(await sessionIdsOfStore(inner)).toEqual([]);
  });

  it('still revokes tokens getTokens found', async () => {
    const pair = { accessToken: '', refreshToken: '' };
    const tombstones = countingTombstones(20);
    const h = await harness({
      store: guardSessionStore(new session.MemoryStore(), { tombstones }),
      logout: { getTokens: () => pair },
    });
    Object.assign(pair, h.fake.issueTokens());
    await h.post().expect(303);
    expect(h.fake.isActive(pair.accessToken)).toBe(false);
    expect(h.fake.isActive(pair.refreshToken)).toBe(false);
    expect(tombstones.added).toBe(0);
    expect(onlyEvent(h).revocation.refreshToken.status).toBe('revoked');
  });

  it('destroys a session whose cookie it carries among others', async () => {
    const tombstones = countingTombstones(20);
    const h = await harness({ store: guardSessionStore(new session.MemoryStore(), { tombstones }) });
    const { sessionId, cookie } = await h.login();
    await h.post(`theme=dark; xconnect.sid=1;${cookie}; lang=en`).expect(303);
    expect(await h.sessionIds()).not.toContain(sessionId);
    expect(tombstones.added).toBe(1);
  });
});

function sessionIdsOfStore(store: session.Store): Promise<string[]> {
  return new Promise((resolve, reject) =>
    store.all!((err, all) => (err ? reject(err as Error) : resolve(Object.keys(all ?? {})))),
  );
}

describe('a session cookie name that does not match cookieName', () => {
  /** The warnings this library emits (jest gives each test file its own `process`, so spy on the emitter). */
  function captureWarnings(): { warnings: Array<{ message: string; code?: string }>; stop(): void } {
    const warnings: Array<{ message: string; code?: string }> = [];
    const spy = jest.spyOn(process, 'emitWarning').mockImplementation((warning, options) => {
      const { type, code } = (options ?? {}) as { type?: string; code?: string };
      if (type === 'PolarLogoutWarning') warnings.push({ message: String(warning), code });
    });
    return { warnings, stop: () => spy.mockRestore() };
  }

  it('is reported once with a process warning that says what to fix, and the session is still destroyed', async () => {
    const captured = captureWarnings();
    try {
      const right = await harness({ cookieName: 'app.sid' });
      const ok = await right.login();
      await right.post(ok.cookie).expect(303);
      expect(captured.warnings).toEqual([]);

      const h = await harness({ cookieName: 'app.sid', logout: { cookieName: 'connect.sid' } });
      const sessions = [await h.login(), await h.login()];
      for (const { cookie } of sessions) await h.post(cookie).expect(303);
      const ours = captured.warnings;
      expect(ours).toHaveLength(1);
      expect(ours[0]).toMatchObject({ code: 'EPL_COOKIE_NAME' });
      expect(ours[0]!.message).toMatch(/no cookie named "connect\.sid".*cookieName/s);
      for (const { sessionId, cookie } of sessions) {
        expect(ours[0]!.message).not.toContain(sessionId);
        expect(ours[0]!.message).not.toContain(cookie.split('=')[1]!.slice(0, 12));
      }
      expect(await h.sessionIds()).toEqual([]);
    } finally {
      captured.stop();
    }
  });
});

describe('the trusted origins', () => {
  it('lets trustedOrigins ask for a logout, and allowedRedirectOrigins only receive users', async () => {
    const h = await harness({
      logout: { allowedRedirectOrigins: ['https://landing.example'], trustedOrigins: ['https://portal.example/'] },
    });
    const landing = await h.login();
    const refused = await h
      .post(landing.cookie, '/logout?returnTo=https%3A%2F%2Flanding.example%2Fbye')
      .set({ Origin: 'https://landing.example', 'Sec-Fetch-Site': 'cross-site' })
      .expect(403);
    expect(cookieHeader(refused)).toEqual([]);
    expect(await h.sessionIds()).toContain(landing.sessionId);
    expect(h.fake.calls).toHaveLength(0);

    const portal = await h.login();
    const res = await h
      .post(portal.cookie, '/logout?returnTo=https%3A%2F%2Flanding.example%2Fbye')
      .set({ Origin: 'https://portal.example', 'Sec-Fetch-Site': 'cross-site' })
      .expect(303);
    expect(res.headers.location).toBe('https://landing.example/bye');
    expect(await h.sessionIds()).toEqual([landing.sessionId]);
  });

  it.each([
    [{ trustedOrigins: 'https://a.example' }, /`trustedOrigins` must be an array/],
    [{ trustedOrigins: ['https://a.example/path'] }, /`trustedOrigins\[0\]` must be an origin only/],
    [{ trustedOrigins: ['a.example'] }, /`trustedOrigins\[0\]` is not an origin/],
    [{ trustedOrigins: [42] }, /`trustedOrigins\[0\]` must be a string/],
    [{ clearSiteData: 'yes' }, /`clearSiteData` must be true, false, or a non-empty array of 'cache'/],
    [{ clearSiteData: [] }, /`clearSiteData` must be true, false/],
    [{ clearSiteData: ['cookies', 'everything'] }, /`clearSiteData\[1\]` must be true, false/],
  ])('validates %j at construction', (extra, message) => {
    expect(() => polarLogout({ clientId: 'id', clientSecret: 'secret', ...extra } as PolarLogoutOptions)).toThrow(
      message,
    );
  });
});

describe('clearing what the browser holds', () => {
  it('clears a partitioned cookie as partitioned, with its priority', async () => {
    const h = await harness({ cookie: { httpOnly: true, sameSite: 'lax', partitioned: true, priority: 'high' } });
    const { cookie } = await h.login();
    const res = await h.post(cookie).expect(303);
    const cleared = cookieHeader(res).find((c) => c.startsWith('connect.sid='));
    expect(cleared?.split('; ').sort()).toEqual(
      [
        'connect.sid=',
        'Path=/',
        'Expires=Thu, 01 Jan 1970 00:00:00 GMT',
        'HttpOnly',
        'SameSite=Lax',
        'Partitioned',
        'Priority=High',
      ].sort(),
    );
  });

  it('sends no Clear-Site-Data unless asked', async () => {
    const h = await harness();
    const { cookie } = await h.login();
    const res = await h.post(cookie).expect(303);
    expect(res.headers['clear-site-data']).toBeUndefined();
  });

  it.each([
    [true, '"cache", "cookies", "storage"'],
    [['cookies', 'storage', 'cookies'], '"cookies", "storage"'],
  ] as const)('with clearSiteData: %j sends Clear-Site-Data on success only', async (clearSiteData, header) => {
    const h = await harness({ logout: { clearSiteData, onRevocationFailure: 'fail', retries: 0 } });
    const first = await h.login();
    const ok = await h.post(first.cookie).expect(303);
    expect(ok.headers['clear-site-data']).toBe(header);
    const json = await h
      .post((await h.login()).cookie)
      .set('Accept', 'application/json')
      .expect(200);
    expect(json.headers['clear-site-data']).toBe(header);

    const kept = await h.login();
    const refused = await h.post(kept.cookie).set('Origin', 'https://evil.example').expect(403);
    expect(refused.headers['clear-site-data']).toBeUndefined();
    h.fake.fail({ type: 'status', status: 503 });
    const failed = await h.post(kept.cookie).expect(502);
    expect(failed.headers['clear-site-data']).toBeUndefined();
    expect(await h.sessionIds()).toEqual([kept.sessionId]);
  });
});
