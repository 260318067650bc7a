/**
 * The example app without a browser: its configuration and start-up failures, its Polar stand-in's OAuth
 * endpoints (real HTTP), its settings for the real Polar, the sign-in callback's edge cases, and a logout
 * while Polar is down (the revocation outbox, in memory and on a real redis-server).
 * The browser flow is in browser.e2e.test.ts.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import request from 'supertest';
import { createPolarRevoker } from '../../lib';
import { freePort, redisAvailable, startRedisServer, type RedisServer } from '../support/redis-server';
import {
  loadExample,
  ROOT,
  sessionIdOfCookie,
  storedIds,
  storedSession,
  type ExampleApp,
  type ExampleModules,
  type PolarStandin,
} from './e2e-support';

let example: ExampleModules;
let startPolarStandin: (options: { redirectUris: string[] }) => Promise<PolarStandin>;

beforeAll(() => {
  example = loadExample();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  ({ startPolarStandin } = require('../../example-app/polar-standin.js') as {
    startPolarStandin: typeof startPolarStandin;
  });
});

const CLIENT_SECRET = 'polar_cs_do_not_print_this_secret';
const SESSION_SECRET = 'a-session-secret-of-forty-characters-long';
const REAL = { POLAR_CLIENT_ID: 'polar_ci_example', POLAR_CLIENT_SECRET: CLIENT_SECRET, SESSION_SECRET };
const HOST = 'localhost:3000';
const ORIGIN = 'http://localhost:3000';

/** /login on the app, then the stand-in's consent page; returns the callback path and query the browser would follow. */
async function throughStandin(app: ExampleApp, agent: request.Agent, decision: 'allow' | 'deny'): Promise<string> {
  const login = await agent.get('/login').set('Host', HOST).expect(302);
  const consent = await fetch(login.headers.location as string);
  const id = /name="request" value="([^"]+)"/.exec(await consent.text())![1]!;
  const decided = await fetch(`${app.standin!.url}/oauth2/authorize`, {
    method: 'POST',
    body: new URLSearchParams({ request: id, decision }),
    redirect: 'manual',
  });
  const back = new URL(decided.headers.get('location')!);
  expect(back.origin).toBe(ORIGIN);
  return back.pathname + back.search;
}

describe('configuration', () => {
  test('with nothing set: the stand-in, memory sessions, http://localhost:3000 on loopback', () => {
    expect(example.readConfig({})).toEqual({
      port: 3000,
      host: '127.0.0.1',
      publicUrl: 'http://localhost:3000',
      sessionSecret: undefined,
      redisUrl: undefined,
      trustProxy: false,
      polar: undefined,
    });
    expect(example.readConfig({ PORT: '8080' }).publicUrl).toBe('http://localhost:8080');
  });

  test('real Polar with everything it needs', () => {
    const config = example.readConfig({
      ...REAL,
      POLAR_SERVER: 'sandbox',
      REDIS_URL: 'redis://127.0.0.1:6379',
      PUBLIC_URL: 'https://app.example.com/',
    });
    expect(config.polar).toEqual({ clientId: 'polar_ci_example', clientSecret: CLIENT_SECRET, server: 'sandbox' });
    expect(config.publicUrl).toBe('https://app.example.com');
    expect(config.redisUrl).toBe('redis://127.0.0.1:6379');
  });

  test.each([
    [{ POLAR_CLIENT_ID: 'polar_ci_example', POLAR_SERVER: 'sandbox' }, /POLAR_CLIENT_SECRET is not/],
    [{ POLAR_CLIENT_SECRET: CLIENT_SECRET }, /POLAR_CLIENT_ID is not/],
    [{ POLAR_SERVER: 'sandbox' }, /POLAR_CLIENT_ID is not/],
    [{ ...REAL }, /POLAR_SERVER must be "sandbox" or "production".*not set/],
    [{ ...REAL, POLAR_SERVER: 'staging' }, /POLAR_SERVER must be "sandbox" or "production"/],
    [{ ...REAL, POLAR_SERVER: 'sandbox', SESSION_SECRET: undefined }, /SESSION_SECRET is required/],
    [{ ...REAL, POLAR_SERVER: 'sandbox', SESSION_SECRET: 'short' }, /SESSION_SECRET must be at least 32/],
    [{ PORT: 'http' }, /PORT must be a port number/],
    [{ PORT: '70000' }, /PORT must be a port number/],
    [{ PUBLIC_URL: 'http://app.example.com' }, /PUBLIC_URL must use https/],
    [{ PUBLIC_URL: 'https://app.example.com/app' }, /PUBLIC_URL must be an origin only/],
    [{ REDIS_URL: 'http://127.0.0.1:6379' }, /REDIS_URL must start with redis:\/\//],
    [{ REDIS_URL: 'not a url' }, /REDIS_URL must be a URL/],
  ])('%j is refused: %s', (env, message) => {
    let error: unknown;
    try {
      example.readConfig(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(example.ConfigError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain(CLIENT_SECRET);
  });
});

describe('start-up failures stop the app before it serves anything', () => {
  test('an unreachable Redis rejects createExampleApp() at once, without the password', async () => {
    const port = await freePort(); // nothing listens there
    const config = example.readConfig({ REDIS_URL: `redis://:hunter2secret@127.0.0.1:${port}` });
    const started = Date.now();
    const error = await example.createExampleApp(config, { log: () => undefined }).catch((err: unknown) => err);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(error).toBeInstanceOf(example.StartupError);
    expect((error as Error).message).toContain(`Cannot use Redis at redis://127.0.0.1:${port}`);
    expect((error as Error).message).toContain('REDIS_URL');
    expect((error as Error).message).not.toContain('hunter2secret');
  });

  /** Runs `node example-app/server.js` with only the given variables (no POLAR_* or REDIS_URL from this shell). */
  function runServer(env: Record<string, string>): {
    exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
    kill(): void;
    output(): string;
  } {
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) => !/^(POLAR_|REDIS_URL|SESSION_SECRET|PORT|HOST|PUBLIC_URL|TRUST_PROXY)/.test(k),
      ),
    );
    const child = spawn(process.execPath, [path.join(ROOT, 'example-app/server.js')], {
      cwd: ROOT,
      env: { ...clean, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      }),
    );
    return { exited, kill: () => child.kill('SIGTERM'), output: () => stdout };
  }

  test('server.js exits 1 with the variable to fix when the client secret is missing', async () => {
    const { code, stderr } = await runServer({ POLAR_CLIENT_ID: 'polar_ci_example', POLAR_SERVER: 'sandbox' }).exited;
    expect(code).toBe(1);
    expect(stderr).toContain('The example app cannot start: POLAR_CLIENT_ID is set but POLAR_CLIENT_SECRET is not');
  });

  test('server.js exits 1 when Redis cannot be reached', async () => {
    const port = await freePort();
    const { code, stderr } = await runServer({ REDIS_URL: `redis://127.0.0.1:${port}`, PORT: String(await freePort()) })
      .exited;
    expect(code).toBe(1);
    expect(stderr).toContain(`Cannot use Redis at redis://127.0.0.1:${port}`);
  });

  test('server.js serves the app with no configuration and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const server = runServer({ PORT: String(port) });
    const deadline = Date.now() + 10_000;
    while (!server.output().includes('Ctrl+C') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(server.output()).toContain(`express-polar-logout example: http://localhost:${port}`);
    expect(server.output()).toContain('Sessions: in memory');
    expect(server.output()).toContain('Revocation outbox: in memory (queued revocations are lost on restart)');
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('Sign in with Polar');
    server.kill();
    expect((await server.exited).code).toBe(0);
  });
});

describe('the Polar stand-in (OAuth endpoints over real HTTP)', () => {
  const redirectUri = 'http://localhost:3000/auth/callback';
  let standin: PolarStandin;

  beforeAll(async () => {
    standin = await startPolarStandin({ redirectUris: [redirectUri] });
  });
  afterAll(() => standin.close());

  function pkce(): { verifier: string; challenge: string } {
    const verifier = randomBytes(32).toString('base64url');
    return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
  }

  function authorizeUrl(params: Record<string, string | undefined>): string {
    const url = new URL(standin.authorizeUrl);
    for (const [key, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(key, value);
    return url.href;
  }

  const validParams = (challenge: string): Record<string, string> => ({
    response_type: 'code',
    client_id: standin.clientId,
    redirect_uri: redirectUri,
    scope: 'openid profile email',
    state: 'state-123',
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });

  /** Goes through the consent page; returns the Location the browser would be sent to. */
  async function decide(challenge: string, decision: 'allow' | 'deny'): Promise<URL> {
    const page = await fetch(authorizeUrl(validParams(challenge)));
    expect(page.status).toBe(200);
    const html = await page.text();
    const id = /name="request" value="([^"]+)"/.exec(html)?.[1];
    expect(id).toBeDefined();
    const res = await fetch(`${standin.url}/oauth2/authorize`, {
      method: 'POST',
      body: new URLSearchParams({ request: id!, decision }),
      redirect: 'manual',
    });
    expect(res.status).toBe(303);
    return new URL(res.headers.get('location')!);
  }

  async function codeFor(challenge: string): Promise<string> {
    const back = await decide(challenge, 'allow');
    expect(back.origin + back.pathname).toBe(redirectUri);
    expect(back.searchParams.get('state')).toBe('state-123');
    return back.searchParams.get('code')!;
  }

  function token(fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${standin.url}/v1/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(fields),
    });
  }

  const exchange = (code: string, verifier: string, extra: Record<string, string> = {}): Promise<Response> =>
    token({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      client_id: standin.clientId,
      client_secret: standin.clientSecret,
      ...extra,
    });

  test('authorize refuses an unknown client or redirect_uri on its own page, never redirecting', async () => {
    const { challenge } = pkce();
    for (const params of [
      { ...validParams(challenge), client_id: 'polar_ci_someone_else' },
      { ...validParams(challenge), redirect_uri: 'https://evil.example/callback' },
    ]) {
      const res = await fetch(authorizeUrl(params), { redirect: 'manual' });
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
    }
  });

  test.each([
    ['no PKCE', { code_challenge: undefined, code_challenge_method: undefined }, 'invalid_request'],
    ['PKCE plain', { code_challenge_method: 'plain' }, 'invalid_request'],
    ['no state', { state: undefined }, 'invalid_request'],
    ['response_type token', { response_type: 'token' }, 'unsupported_response_type'],
  ])('authorize with %s redirects back with an error', async (_name, override, error) => {
    const res = await fetch(authorizeUrl({ ...validParams(pkce().challenge), ...override }), { redirect: 'manual' });
    expect(res.status).toBe(303);
    const back = new URL(res.headers.get('location')!);
    expect(back.origin + back.pathname).toBe(redirectUri);
    expect(back.searchParams.get('error')).toBe(error);
    expect(back.searchParams.get('code')).toBeNull();
  });

  test('Deny redirects back with access_denied and the state', async () => {
    const back = await decide(pkce().challenge, 'deny');
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('state')).toBe('state-123');
  });

  test('the token endpoint checks PKCE, and a code works once', async () => {
    const { verifier, challenge } = pkce();
    const code = await codeFor(challenge);
    const res = await exchange(code, verifier);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 864000, scope: 'openid profile email' });
    expect(standin.fake.isActive(body.access_token as string)).toBe(true);
    expect(standin.fake.isActive(body.refresh_token as string)).toBe(true);
    const reused = await exchange(code, verifier);
    expect(reused.status).toBe(400);
    expect(await reused.json()).toMatchObject({ error: 'invalid_grant' });
  });

  test('a wrong verifier fails, and burns the code', async () => {
    const { verifier, challenge } = pkce();
    const code = await codeFor(challenge);
    const wrong = await exchange(code, pkce().verifier);
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toMatchObject({
      error: 'invalid_grant',
      error_description: 'PKCE verification failed.',
    });
    expect((await exchange(code, verifier)).status).toBe(400);
  });

  test('wrong client credentials, redirect_uri or grant type are refused', async () => {
    const { verifier, challenge } = pkce();
    const badSecret = await exchange(await codeFor(challenge), verifier, { client_secret: 'polar_cs_wrong' });
    expect(badSecret.status).toBe(401);
    expect(await badSecret.json()).toEqual({ error: 'invalid_client' });
    const badRedirect = await exchange(await codeFor(challenge), verifier, {
      redirect_uri: 'http://localhost:3000/other',
    });
    expect(await badRedirect.json()).toMatchObject({ error: 'invalid_grant' });
    const refresh = await token({
      grant_type: 'refresh_token',
      refresh_token: 'x',
      client_id: standin.clientId,
      client_secret: standin.clientSecret,
    });
    expect(await refresh.json()).toMatchObject({ error: 'unsupported_grant_type' });
    const json = await fetch(`${standin.url}/v1/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(json.status).toBe(400);
  });

  test('HTTP Basic client authentication works too', async () => {
    const { verifier, challenge } = pkce();
    const basic = Buffer.from(`${standin.clientId}:${standin.clientSecret}`).toString('base64');
    const res = await token(
      {
        grant_type: 'authorization_code',
        code: await codeFor(challenge),
        redirect_uri: redirectUri,
        code_verifier: verifier,
      },
      { Authorization: `Basic ${basic}` },
    );
    expect(res.status).toBe(200);
  });

  test('userinfo and introspection follow revocation', async () => {
    const { verifier, challenge } = pkce();
    const tokens = (await (await exchange(await codeFor(challenge), verifier)).json()) as {
      access_token: string;
      refresh_token: string;
    };
    const userinfo = (bearer: string): Promise<Response> =>
      fetch(`${standin.url}/v1/oauth2/userinfo`, { headers: { Authorization: `Bearer ${bearer}` } });
    const introspect = async (tokenValue: string): Promise<Record<string, unknown>> =>
      (await (
        await fetch(`${standin.url}/v1/oauth2/introspect`, {
          method: 'POST',
          body: new URLSearchParams({
            token: tokenValue,
            client_id: standin.clientId,
            client_secret: standin.clientSecret,
          }),
        })
      ).json()) as Record<string, unknown>;

    const me = await userinfo(tokens.access_token);
    expect(me.status).toBe(200);
    expect(await me.json()).toEqual({ ...standin.user, email_verified: true });
    expect((await userinfo(tokens.refresh_token)).status).toBe(401);
    expect(await introspect(tokens.access_token)).toMatchObject({
      active: true,
      token_type: 'access_token',
      sub: standin.user.sub,
    });
    expect(await introspect(tokens.refresh_token)).toMatchObject({ active: true, token_type: 'refresh_token' });

    // Revoking the refresh token ends the grant, as at Polar.
    const revoked = await fetch(`${standin.url}/v1/oauth2/revoke`, {
      method: 'POST',
      body: new URLSearchParams({
        token: tokens.refresh_token,
        token_type_hint: 'refresh_token',
        client_id: standin.clientId,
        client_secret: standin.clientSecret,
      }),
    });
    expect(revoked.status).toBe(200);
    const after = await userinfo(tokens.access_token);
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(await introspect(tokens.access_token)).toEqual({ active: false });
    const unauthenticated = await fetch(`${standin.url}/v1/oauth2/introspect`, {
      method: 'POST',
      body: new URLSearchParams({ token: tokens.access_token }),
    });
    expect(unauthenticated.status).toBe(401);
  });
});

describe('configured for the real Polar (nothing is sent to Polar by these tests)', () => {
  test.each([
    ['sandbox', 'https://sandbox.polar.sh/oauth2/authorize', 'Polar sandbox (sandbox.polar.sh)'],
    ['production', 'https://polar.sh/oauth2/authorize', 'Polar (polar.sh)'],
  ])('%s: sign-in goes to %s with PKCE and state', async (server, authorize, label) => {
    const app = await example.createExampleApp(example.readConfig({ ...REAL, POLAR_SERVER: server }), {
      log: () => undefined,
      verifyAtStartup: false, // nothing is sent to the real Polar
    });
    try {
      expect(app.standin).toBeUndefined();
      expect(app.polarLabel).toBe(label);
      const agent = request.agent(app.app);
      const res = await agent.get('/login').set('Host', 'localhost:3000').expect(302);
      const location = new URL(res.headers.location as string);
      expect(location.origin + location.pathname).toBe(authorize);
      const q = Object.fromEntries(location.searchParams);
      expect(q).toMatchObject({
        response_type: 'code',
        client_id: 'polar_ci_example',
        redirect_uri: 'http://localhost:3000/auth/callback',
        scope: 'openid profile email',
        code_challenge_method: 'S256',
      });
      expect(JSON.stringify(q)).not.toContain(CLIENT_SECRET);
      // What the session remembers until Polar sends the browser back: the state and the PKCE verifier.
      const cookie = (res.headers['set-cookie'] as unknown as string[])[0]!;
      const sid = decodeURIComponent(cookie.split(';')[0]!.split('=')[1]!).slice(2).split('.')[0]!;
      const stored = (await storedSession(app.sessionStore.store, sid)) as {
        oauth: { state: string; codeVerifier: string };
      };
      expect(stored.oauth.state).toBe(q.state);
      expect(createHash('sha256').update(stored.oauth.codeVerifier).digest('base64url')).toBe(q.code_challenge);
    } finally {
      await app.close();
    }
  });
});

describe('the sign-in callback and logout over HTTP (no browser)', () => {
  let app: ExampleApp;
  let logs: string[];

  beforeEach(async () => {
    logs = [];
    app = await example.createExampleApp(example.readConfig({}), { log: (line) => logs.push(line) });
  });
  afterEach(() => app.close());

  const throughPolar = (agent: request.Agent, decision: 'allow' | 'deny'): Promise<string> =>
    throughStandin(app, agent, decision);

  async function sessionCount(): Promise<number> {
    return new Promise((resolve, reject) =>
      app.sessionStore.store.length!((err, n) =>
        err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(n ?? 0),
      ),
    );
  }

  test('a callback whose state does not match is refused and signs nobody in', async () => {
    const agent = request.agent(app.app);
    const callback = await throughPolar(agent, 'allow');
    const forged = callback.replace(/state=[^&]+/, 'state=forged');
    const res = await agent.get(forged).set('Host', HOST).expect(400);
    expect(res.text).toContain('Sign-in failed');
    expect(res.headers['cache-control']).toBe('no-store');
    const home = await agent.get('/').set('Host', HOST).expect(200);
    expect(home.text).toContain('Sign in with Polar');
    // The one-time sign-in data is gone: replaying the real callback fails too.
    await agent.get(callback).set('Host', HOST).expect(400);
  });

  test('a callback in another browser (no session) is refused', async () => {
    const callback = await throughPolar(request.agent(app.app), 'allow');
    const res = await request(app.app).get(callback).set('Host', HOST).expect(400);
    expect(res.text).toContain('does not match a sign-in started in this browser');
  });

  test('Deny on the consent page shows a cancelled sign-in', async () => {
    const agent = request.agent(app.app);
    const res = await agent
      .get(await throughPolar(agent, 'deny'))
      .set('Host', HOST)
      .expect(400);
    expect(res.text).toContain('You declined the request on Polar.');
  });

  test('sign in, a cross-site logout is refused, a same-origin one revokes both tokens', async () => {
    const agent = request.agent(app.app);
    const done = await agent
      .get(await throughPolar(agent, 'allow'))
      .set('Host', HOST)
      .expect(303);
    expect(done.headers.location).toBe('/');
    const home = await agent.get('/').set('Host', HOST).expect(200);
    expect(home.headers['cache-control']).toBe('no-store');
    expect(home.text).toContain(`Hello, ${app.standin!.user.name}`);
    expect(await sessionCount()).toBe(1);
    const [sid] = await new Promise<string[]>((resolve) =>
      app.sessionStore.store.all!((_e, all) => resolve(Object.keys(all ?? {}))),
    );
    const stored = (await storedSession(app.sessionStore.store, sid!)) as { accessToken: string; refreshToken: string };

    const crossSite = await agent.post('/logout').set('Host', HOST).set('Origin', 'https://evil.example').expect(403);
    expect(crossSite.text).toContain('Cross-site logout requests are refused');
    expect(await sessionCount()).toBe(1);
    expect(app.standin!.fake.isActive(stored.accessToken)).toBe(true);

    const out = await agent.post('/logout').set('Host', HOST).set('Origin', ORIGIN).expect(303);
    expect(out.headers.location).toBe('/signed-out');
    expect(await sessionCount()).toBe(0);
    expect(app.standin!.fake.isActive(stored.accessToken)).toBe(false);
    expect(app.standin!.fake.isActive(stored.refreshToken)).toBe(false);
    const audit = await agent.get('/audit').set('Host', HOST).expect(200);
    expect(audit.text).toContain(createHash('sha256').update(sid!).digest('hex').slice(0, 16));
    const printed = [...logs, home.text, audit.text].join('\n');
    for (const secret of [stored.accessToken, stored.refreshToken, sid!, app.standin!.clientSecret])
      expect(printed).not.toContain(secret);
  });

  test('pages send a CSP with no script and a Referrer-Policy that keeps the Origin header', async () => {
    const res = await request(app.app).get('/').set('Host', HOST).expect(200);
    const csp = res.headers['content-security-policy'] as string;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'none'");
    expect(csp).toContain("form-action 'self'");
    expect(csp).not.toContain('upgrade-insecure-requests'); // http://localhost must keep working
    expect(res.headers['referrer-policy']).toBe('same-origin');
    expect(res.text).not.toMatch(/<script|style="/);
  });
});

describe('Polar down at logout: the user is signed out, the revocation outbox revokes the tokens later', () => {
  const haveRedis = redisAvailable;
  const inCI = Boolean(process.env.CI);
  if (!haveRedis && !inCI) {
    console.warn(
      'Skipping the Redis outbox case of the example app: redis-server not found. Install it with: sudo apt-get install -y redis-server',
    );
  }
  const kinds: ('memory' | 'redis')[] = haveRedis || inCI ? ['memory', 'redis'] : ['memory'];

  /** Polls until `check` returns true; fails with `what` after a generous deadline. */
  async function waitFor(what: string, check: () => boolean, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** The cells of a table's body rows on the audit page, whitespace collapsed. */
  function rowsOf(page: string, tableId: string): string[][] {
    const table = new RegExp(`<table id="${tableId}">([\\s\\S]*?)</table>`).exec(page)?.[1] ?? '';
    const body = /<tbody>([\s\S]*?)<\/tbody>/.exec(table)?.[1] ?? '';
    return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((row) =>
      [...row[1]!.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((cell) =>
        cell[1]!
          .replace(/<[^>]+>/g, '')
          .replace(/\s+/g, ' ')
          .trim(),
      ),
    );
  }

  test.each(kinds)('with the %s outbox: queued at logout, revoked once Polar heals', async (kind) => {
    if (kind === 'redis' && !haveRedis)
      throw new Error('CI is set but redis-server is missing: .ci/run must install it.');
    let redis: RedisServer | undefined;
    let app: ExampleApp | undefined;
    try {
      redis = kind === 'redis' ? await startRedisServer() : undefined;
      const logs: string[] = [];
      app = await example.createExampleApp(example.readConfig(redis ? { REDIS_URL: redis.url } : {}), {
        log: (line) => logs.push(line),
        outboxBackoff: { initialDelayMs: 50, maxDelayMs: 200 },
      });
      expect(app.outbox.kind).toBe(kind);
      expect(app.outbox.outbox.mode).toBe(kind);
      expect(app.sessionStore.kind).toBe(kind);
      const fake = app.standin!.fake;

      // Signed in, with two live tokens at the stand-in.
      const agent = request.agent(app.app);
      const signedIn = await agent
        .get(await throughStandin(app, agent, 'allow'))
        .set('Host', HOST)
        .expect(303);
      const cookie = (signedIn.headers['set-cookie'] as unknown as string[]).find((c) =>
        c.startsWith(`${app!.cookieName}=`),
      )!;
      const sid = sessionIdOfCookie(cookie.split(';')[0]!.slice(app.cookieName.length + 1));
      const stored = (await storedSession(app.sessionStore.store, sid)) as {
        accessToken: string;
        refreshToken: string;
      };
      const { accessToken, refreshToken } = stored;
      expect(fake.isActive(accessToken)).toBe(true);
      const hash = createHash('sha256').update(sid).digest('hex').slice(0, 16);

      // Polar answers 503 to every revocation: the user is signed out all the same.
      fake.fail({ type: 'status', status: 503 });
      const started = Date.now();
      const out = await agent.post('/logout').set('Host', HOST).set('Origin', ORIGIN).expect(303);
      expect(Date.now() - started).toBeLessThan(5000); // polarLogout's own budget
      expect(out.headers.location).toBe('/signed-out');
      expect((out.headers['set-cookie'] as unknown as string[]).join('\n')).toMatch(
        new RegExp(`${app.cookieName}=;.*Expires=Thu, 01 Jan 1970`),
      );
      expect(await storedSession(app.sessionStore.store, sid)).toBeFalsy();
      expect(fake.isActive(accessToken)).toBe(true);
      expect(fake.isActive(refreshToken)).toBe(true);
      const failedQueued = { status: 'failed', queued: true, error: { code: 'SERVER_ERROR', httpStatus: 503 } };
      const event = app.auditEvents[0]!;
      expect(event).toMatchObject({
        loggedOut: true,
        sessionDestroyed: true,
        sessionIdHash: hash,
        revocation: { accessToken: failedQueued, refreshToken: failedQueued },
      });
      expect(logs).toContain(
        `logout done: access token failed (queued), refresh token failed (queued), ${event.durationMs} ms, session ${hash}`,
      );

      // The audit page: the logout with both tokens queued, nothing settled yet, two tokens pending.
      const before = await agent.get('/audit').set('Host', HOST).expect(200);
      expect(rowsOf(before.text, 'events')[0]!.slice(1, 4)).toEqual([
        'signed out',
        'failed (SERVER_ERROR 503), queued',
        'failed (SERVER_ERROR 503), queued',
      ]);
      expect(before.text).toContain(`outbox (${app.outbox.description})`);
      expect(before.text).toContain('id="no-settled"');
      expect(before.text).toMatch(/<span id="pending">2 token\(s\) not revoked yet:/);
      expect(app.settledEvents).toEqual([]);
      if (redis) {
        // The jobs are in Redis, and nothing in Redis holds a token or the client secret in clear.
        const dump = await redis.dump();
        expect(dump).toContain('{polar-logout}:revocations-');
        for (const secret of [accessToken, refreshToken, sid, app.standin!.clientSecret])
          expect(dump).not.toContain(secret);
      }

      // The outbox keeps trying while Polar is down: at least one call of its own per token, answered 503.
      const failedCalls = (hint: string): number =>
        fake.calls.filter((c) => c.hint === hint && c.result === 503).length;
      await waitFor(
        'a failed outbox attempt per token',
        () =>
          failedCalls('access_token') > event.revocation.accessToken.attempts &&
          failedCalls('refresh_token') > event.revocation.refreshToken.attempts,
      );
      expect(fake.isActive(accessToken)).toBe(true);

      // Polar heals: within a few 50-200 ms backoff steps both tokens are revoked, and onSettled says so.
      fake.heal();
      await waitFor('both queued tokens to settle', () => app!.settledEvents.length === 2);
      expect(fake.isActive(accessToken)).toBe(false);
      expect(fake.isActive(refreshToken)).toBe(false);
      expect(fake.calls.filter((c) => c.result === 200).every((c) => c.authenticated)).toBe(true);
      expect(fake.calls.filter((c) => c.result === 200).length).toBeGreaterThanOrEqual(2);
      expect([...app.settledEvents].map((e) => e.tokenType).sort()).toEqual(['access_token', 'refresh_token']);
      for (const settled of app.settledEvents) {
        expect(settled).toEqual({
          tokenType: settled.tokenType,
          outcome: 'revoked',
          attempts: expect.any(Number),
          queuedAt: expect.any(String),
          settledAt: expect.any(String),
          sessionIdHash: hash,
        });
        expect(settled.attempts).toBeGreaterThanOrEqual(2);
        expect(Date.parse(settled.queuedAt)).toBeGreaterThanOrEqual(Date.parse(event.at));
        expect(Date.parse(settled.settledAt)).toBeGreaterThanOrEqual(Date.parse(settled.queuedAt));
        expect(logs).toContain(
          `queued ${settled.tokenType.replace('_', ' ')} revoked after ${settled.attempts} attempt(s), session ${hash}`,
        );
      }

      // The audit page now shows both outcomes next to the logout, correlated by the session hash.
      const after = await agent.get('/audit').set('Host', HOST).expect(200);
      const settledRows = rowsOf(after.text, 'settled');
      expect(settledRows).toHaveLength(2);
      expect(settledRows.map((cells) => cells[1]).sort()).toEqual(['access', 'refresh']);
      for (const cells of settledRows) {
        expect(cells[2]).toBe('revoked');
        expect(Number(cells[3])).toBeGreaterThanOrEqual(2);
        expect(cells[5]).toBe('-');
        expect(cells[6]).toBe(hash);
      }
      expect(after.text).toContain('<span id="pending">No token waiting.</span>');
      expect(await app.outbox.outbox.counts()).toEqual({ waiting: 0, delayed: 0, active: 0 });

      const printed = [...logs, before.text, after.text].join('\n');
      for (const secret of [accessToken, refreshToken, sid, app.standin!.clientSecret])
        expect(printed).not.toContain(secret);
    } finally {
      await app?.close();
      await redis?.stop();
    }
  });
});

describe('"Your sessions": list, sign out one device, everywhere else, everywhere (no browser)', () => {
  const kinds: ('memory' | 'redis')[] = redisAvailable || process.env.CI ? ['memory', 'redis'] : ['memory'];
  const CHROME =
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
  const FIREFOX = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0';
  const HOSTILE = '<img src=x onerror=alert(1)> "quoted" & more';

  interface Browser {
    agent: request.Agent;
    ua: string;
    sid: string;
    accessToken: string;
    refreshToken: string;
    get(path: string): request.Test;
    post(path: string, origin?: string): request.Test;
  }

  /** The handle in a row's "Sign out this device" form, by the row's device text. */
  function rowsOf(page: string): Array<{ device: string; current: boolean; action: string | undefined }> {
    const body = /<table id="sessions">[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/.exec(page)?.[1] ?? '';
    return [...body.matchAll(/<tr class="(current|other)">([\s\S]*?)<\/tr>/g)].map((row) => ({
      current: row[1] === 'current',
      device: /<td class="device">([\s\S]*?)<\/td>/.exec(row[2]!)![1]!.trim(),
      action: /<form method="post" action="([^"]+)"/.exec(row[2]!)?.[1],
    }));
  }

  for (const kind of kinds) {
    describe(`with the ${kind} store`, () => {
      let redis: RedisServer | undefined;
      let app: ExampleApp;
      let logs: string[];

      // A Redis of its own per test: what a test finds in the store and in Redis is its own.
      beforeEach(async () => {
        logs = [];
        redis = kind === 'redis' ? await startRedisServer() : undefined;
        app = await example.createExampleApp(example.readConfig(redis ? { REDIS_URL: redis.url } : {}), {
          log: (line) => logs.push(line),
        });
      });
      afterEach(async () => {
        await app.close();
        await redis?.stop();
      });

      async function signIn(ua: string): Promise<Browser> {
        const agent = request.agent(app.app);
        const login = await agent.get('/login').set('Host', HOST).set('User-Agent', ua).expect(302);
        const consent = await fetch(login.headers.location as string);
        const id = /name="request" value="([^"]+)"/.exec(await consent.text())![1]!;
        const decided = await fetch(`${app.standin!.url}/oauth2/authorize`, {
          method: 'POST',
          body: new URLSearchParams({ request: id, decision: 'allow' }),
          redirect: 'manual',
        });
        const back = new URL(decided.headers.get('location')!);
        const done = await agent
          .get(back.pathname + back.search)
          .set('Host', HOST)
          .set('User-Agent', ua)
          .expect(303);
        const cookie = (done.headers['set-cookie'] as unknown as string[]).find((c) =>
          c.startsWith(`${app.cookieName}=`),
        )!;
        const sid = sessionIdOfCookie(cookie.split(';')[0]!.slice(app.cookieName.length + 1));
        const stored = (await storedSession(app.sessionStore.inner, sid)) as {
          accessToken: string;
          refreshToken: string;
        };
        expect(app.standin!.fake.isActive(stored.accessToken)).toBe(true);
        return {
          agent,
          ua,
          sid,
          accessToken: stored.accessToken,
          refreshToken: stored.refreshToken,
          get: (path) => agent.get(path).set('Host', HOST).set('User-Agent', ua),
          post: (path, origin = ORIGIN) =>
            agent.post(path).set('Host', HOST).set('User-Agent', ua).set('Origin', origin),
        };
      }

      const signedIn = async (b: Browser): Promise<boolean> => {
        const home = await b.get('/').expect(200);
        return home.text.includes('id="signed-in"');
      };
      const active = (b: Browser): boolean[] => [
        app.standin!.fake.isActive(b.accessToken),
        app.standin!.fake.isActive(b.refreshToken),
      ];

      test('the page lists every session of the user, marks this one, and holds no secret', async () => {
        const a = await signIn(CHROME);
        const b = await signIn(FIREFOX);
        const c = await signIn(HOSTILE);
        const home = await a.get('/').expect(200);
        expect(home.text).toContain('<a href="/sessions" id="your-sessions">Your sessions</a>');

        const page = await a.get('/sessions').expect(200);
        expect(page.headers['cache-control']).toBe('no-store');
        const rows = rowsOf(page.text);
        // This device first (the hostile User-Agent is named "Unknown device", never printed).
        expect(rows.map((r) => [r.device, r.current])).toEqual([
          ['Chrome on Linux', true],
          [expect.any(String), false],
          [expect.any(String), false],
        ]);
        expect(
          rows
            .slice(1)
            .map((r) => r.device)
            .sort(),
        ).toEqual(['Firefox on Windows', 'Unknown device']);
        expect(rows[0]!.action).toBeUndefined(); // no "Sign out this device" on this device
        const handles = (await app.sessionStore.sessions.list(app.standin!.user.sub)).map((s) => s.id);
        const others = [b, c].map((x) => `/sessions/${app.sessionStore.sessions.idOf({ sessionID: x.sid })!}/logout`);
        expect(
          rows
            .slice(1)
            .map((r) => r.action)
            .sort(),
        ).toEqual(others.sort());
        expect(handles).toHaveLength(3);
        expect(page.text).toContain('<button type="submit" class="button">Sign out everywhere else</button>');
        expect(page.text).toContain('<button type="submit" class="button danger">Sign out everywhere</button>');
        expect(page.text).not.toMatch(/<img|onerror|<script/);
        for (const secret of [a, b, c].flatMap((x) => [x.sid, x.accessToken, x.refreshToken]))
          expect(page.text).not.toContain(secret);
        expect(page.text).not.toContain(app.standin!.user.sub);
      });

      test('"sign out this device" ends that session only, revokes its tokens, and refuses cross-site requests', async () => {
        const a = await signIn(CHROME);
        const b = await signIn(FIREFOX);
        const action = rowsOf((await a.get('/sessions').expect(200)).text).find((r) => !r.current)!.action!;

        // Cross-site (a foreign Origin, or only the browser's Sec-Fetch-Site): refused, nothing ended.
        const foreign = await a.post(action, 'https://evil.example').expect(403);
        expect(foreign.text).toBe('Cross-site requests are refused.');
        await a.agent.post(action).set('Host', HOST).set('Sec-Fetch-Site', 'cross-site').expect(403);
        await a.agent.post(action).set('Host', HOST).set('Origin', 'null').expect(403);
        expect(await storedSession(app.sessionStore.inner, b.sid)).toBeTruthy();
        expect(active(b)).toEqual([true, true]);
        expect(await signedIn(b)).toBe(true);

        // Same origin: 303 back to the page, B's session gone from the store, its tokens inactive at the stand-in.
        const out = await a.post(action).expect(303);
        expect(out.headers.location).toBe('/sessions');
        expect(await storedSession(app.sessionStore.inner, b.sid)).toBeFalsy();
        expect(active(b)).toEqual([false, false]);
        expect(await signedIn(b)).toBe(false);
        expect(await signedIn(a)).toBe(true);
        expect(active(a)).toEqual([true, true]);
        expect(rowsOf((await a.get('/sessions').expect(200)).text).map((r) => r.device)).toEqual(['Chrome on Linux']);
        expect(logs).toContain('sign out a device: 1 session(s) ended, tokens: 2 revoked, 0 queued, 0 failed');

        // Again (a stale page): nothing left to end. JSON callers get the summary.
        const again = await a.post(action).set('Accept', 'application/json').expect(200);
        expect(again.body).toEqual({ sessions: { sessions: 0, revoked: 0, queued: 0, failed: 0 } });
      });

      test("a handle of another user's session ends nothing; this device's own handle is refused", async () => {
        const mine = await signIn(CHROME);
        // Another Polar user signs in (the stand-in's user, changed for this sign-in: the app stores who it was).
        const original = { ...app.standin!.user };
        Object.assign(app.standin!.user, {
          sub: 'another-polar-user',
          name: 'Grace Hopper',
          email: 'grace@example.com',
        });
        const theirs = await signIn(FIREFOX).finally(() => Object.assign(app.standin!.user, original));
        const theirHandle = app.sessionStore.sessions.idOf({ sessionID: theirs.sid })!;
        expect((await app.sessionStore.sessions.list('another-polar-user')).map((s) => s.id)).toEqual([theirHandle]);
        expect(rowsOf((await mine.get('/sessions').expect(200)).text)).toHaveLength(1);

        const res = await mine.post(`/sessions/${theirHandle}/logout`).set('Accept', 'application/json').expect(200);
        expect(res.body).toEqual({ sessions: { sessions: 0, revoked: 0, queued: 0, failed: 0 } });
        expect(await storedSession(app.sessionStore.inner, theirs.sid)).toBeTruthy();
        expect(active(theirs)).toEqual([true, true]);
        expect(await signedIn(theirs)).toBe(true);

        const own = app.sessionStore.sessions.idOf({ sessionID: mine.sid })!;
        const refused = await mine.post(`/sessions/${own}/logout`).expect(400);
        expect(refused.text).toContain('Use Sign out to sign out the device you are using.');
        expect(await signedIn(mine)).toBe(true);
        expect(active(mine)).toEqual([true, true]);
      });

      test('signed out: the page and the route send you home and end nothing', async () => {
        const a = await signIn(CHROME);
        const handle = app.sessionStore.sessions.idOf({ sessionID: a.sid })!;
        const stranger = request.agent(app.app);
        expect((await stranger.get('/sessions').set('Host', HOST).expect(303)).headers.location).toBe('/');
        const post = await stranger.post(`/sessions/${handle}/logout`).set('Host', HOST).set('Origin', ORIGIN);
        expect([post.status, post.headers.location]).toEqual([303, '/']);
        expect(await signedIn(a)).toBe(true);
      });

      test('"sign out everywhere else" keeps this session; "sign out everywhere" ends them all', async () => {
        const a = await signIn(CHROME);
        const b = await signIn(FIREFOX);
        const c = await signIn(FIREFOX);

        await a.post('/logout/others', 'https://evil.example').expect(403);
        expect(await signedIn(b)).toBe(true);

        const others = await a.post('/logout/others').expect(303);
        expect(others.headers.location).toBe('/sessions');
        for (const x of [b, c]) {
          expect(await storedSession(app.sessionStore.inner, x.sid)).toBeFalsy();
          expect(active(x)).toEqual([false, false]);
          expect(await signedIn(x)).toBe(false);
        }
        expect(await signedIn(a)).toBe(true);
        expect(active(a)).toEqual([true, true]);
        expect(await storedIds(app.sessionStore.inner)).toEqual([a.sid]);
        expect(app.auditEvents[0]).toMatchObject({
          scope: 'others',
          loggedOut: false,
          sessions: { sessions: 2, revoked: 4, queued: 0, failed: 0 },
        });

        expect(logs).toContainEqual(
          expect.stringMatching(
            /^sign out everywhere else done: 2 session\(s\) ended, tokens: 4 revoked, 0 queued, 0 failed, session [0-9a-f]{16}$/,
          ),
        );

        // B signs in again, then everything ends from A, answered in JSON with the summary.
        const b2 = await signIn(FIREFOX);
        await a.post('/logout/everywhere', 'https://evil.example').expect(403);
        const all = await a.post('/logout/everywhere').set('Accept', 'application/json').expect(200);
        expect(all.body).toMatchObject({
          loggedOut: true,
          redirectTo: '/signed-out',
          sessions: { sessions: 2, revoked: 4, queued: 0, failed: 0 },
        });
        for (const x of [a, b2]) {
          expect(active(x)).toEqual([false, false]);
          expect(await signedIn(x)).toBe(false);
        }
        expect(await storedIds(app.sessionStore.inner)).toEqual([]);
        expect(await app.sessionStore.sessions.list(app.standin!.user.sub)).toEqual([]);
        // The audit page says what each of the two did, newest first.
        const audit = (await a.get('/audit').expect(200)).text.replace(/\s+/g, ' ');
        expect(audit).toMatch(
          /<td class="revoked">signed out everywhere \(2 session\(s\) ended\)<\/td>[\s\S]*<td class="revoked">signed out everywhere else \(2 session\(s\) ended\)<\/td>/,
        );
        expect(logs).toContainEqual(
          expect.stringMatching(
            /^logout done: .*, everywhere: 2 session\(s\) ended, tokens: 4 revoked, 0 queued, 0 failed$/,
          ),
        );

        if (redis) {
          // Every session ended: what is left in Redis (tombstones, "not before" mark, budget) names no user and
          // holds no session id or token.
          // The rate budget took its turns in this Redis too, over the sessions' connection.
          expect(await redis.keys('{polar-logout}:budget:*')).toHaveLength(1);
          const dump = await redis.dump();
          for (const secret of [a, b, c, b2].flatMap((x) => [x.sid, x.accessToken, x.refreshToken]))
            expect(dump).not.toContain(secret);
          expect(dump).not.toContain(app.standin!.user.sub);
        }
        const printed = logs.join('\n');
        for (const secret of [a, b, c, b2].flatMap((x) => [x.sid, x.accessToken, x.refreshToken]))
          expect(printed).not.toContain(secret);
      });

      test('a browser form post with no Origin header is answered like a same-origin one', async () => {
        // Old browsers and some privacy settings send neither Origin nor Sec-Fetch-Site: allowed, as by polarLogout().
        const a = await signIn(CHROME);
        const b = await signIn(FIREFOX);
        const handle = app.sessionStore.sessions.idOf({ sessionID: b.sid })!;
        await a.agent.post(`/sessions/${handle}/logout`).set('Host', HOST).expect(303);
        expect(await signedIn(b)).toBe(false);
      });

      if (kind === 'redis') {
        test('the index is kept in Redis: a second app process on the same Redis sees and ends the sessions', async () => {
          const a = await signIn(CHROME);
          const b = await signIn(FIREFOX);
          const other = await example.createExampleApp(example.readConfig({ REDIS_URL: redis!.url }), {
            log: () => undefined,
            verifyAtStartup: false,
          });
          try {
            const keys = await redis!.keys('{polar-logout}:*');
            expect(keys.filter((k) => !k.includes(':revocations-')).length).toBeGreaterThan(0);
            const seen = await other.sessionStore.sessions.list(app.standin!.user.sub);
            expect(seen.map((s) => s.userAgent).sort()).toEqual([CHROME, FIREFOX].sort());
            // Ended from the other process (with a revoker for the first app's Polar, the one that issued them).
            const revoker = createPolarRevoker({
              clientId: app.standin!.clientId,
              clientSecret: app.standin!.clientSecret,
              baseUrl: app.standin!.url,
            });
            const summary = await other.sessionStore.sessions
              .logoutUser(app.standin!.user.sub, { revoker })
              .finally(() => revoker.close());
            expect(summary).toEqual({ sessions: 2, revoked: 4, queued: 0, failed: 0 });
            expect([...active(a), ...active(b)]).toEqual([false, false, false, false]);
            expect(await signedIn(a)).toBe(false);
            expect(await signedIn(b)).toBe(false);
          } finally {
            await other.close();
          }
        });
      }
    });
  }
});
