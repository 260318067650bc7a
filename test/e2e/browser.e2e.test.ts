/**
 * The example app in a real browser (Debian's headless Chromium driven by playwright-core): sign in with the
 * Polar stand-in, sign out, and check everything a user and an operator could check afterwards, once with
 * the memory session store and once with a real redis-server.
 *
 * Needs /usr/bin/chromium and redis-server. Without them the suite is skipped with a message, except in CI
 * (CI is set), where it fails: .ci/run installs them with apt-get.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createClient } from 'redis';
import { freePort, redisAvailable, startRedisServer, type RedisServer } from '../support/redis-server';
import {
  ARTIFACTS,
  CHROMIUM,
  CHROMIUM_ARGS,
  loadExample,
  sessionIdOfCookie,
  storedIds,
  storedSession,
  type ExampleApp,
} from './e2e-support';

const haveChromium = existsSync(CHROMIUM);
const haveRedis = redisAvailable;
const missing = [haveChromium ? undefined : CHROMIUM, haveRedis ? undefined : 'redis-server'].filter(Boolean);
const inCI = Boolean(process.env.CI);

if (missing.length > 0 && !inCI) {
  console.warn(
    `Skipping the example app's browser test: ${missing.join(' and ')} not found. ` +
      'Install them with: sudo apt-get install -y chromium redis-server',
  );
}
const suite = missing.length > 0 && !inCI ? describe.skip : describe;

jest.setTimeout(60_000);

suite('example app in Chromium', () => {
  let browser: Browser | undefined;

  beforeAll(async () => {
    if (missing.length > 0)
      throw new Error(`CI is set but ${missing.join(' and ')} is missing: .ci/run must apt-get install it.`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    await browser?.close();
  });

  test('sign in and sign out with the memory store', async () => {
    await signInAndOut(browser!, 'memory');
  });

  test('sign in and sign out with Redis', async () => {
    const redis = await startRedisServer();
    try {
      await signInAndOut(browser!, 'redis', redis);
    } finally {
      await redis.stop();
    }
  });

  test('"Your sessions" with two browsers, memory store', async () => {
    await twoBrowsers(browser!, 'memory');
  });

  test('"Your sessions" with two browsers, Redis', async () => {
    const redis = await startRedisServer();
    try {
      await twoBrowsers(browser!, 'redis', redis);
    } finally {
      await redis.stop();
    }
  });
});

/** The example app listening on a loopback port, reached by the browser as http://localhost:PORT. */
async function startExample(
  redisUrl: string | undefined,
): Promise<{ example: ExampleApp; url: string; logs: string[]; stop(): Promise<void> }> {
  const { readConfig, createExampleApp } = loadExample();
  const port = await freePort();
  const config = readConfig({ PORT: String(port), ...(redisUrl ? { REDIS_URL: redisUrl } : {}) });
  const logs: string[] = [];
  const example = await createExampleApp(config, { log: (line) => logs.push(line) });
  const server = http.createServer(example.app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  expect((server.address() as AddressInfo).port).toBe(port);
  return {
    example,
    url: config.publicUrl,
    logs,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await example.close();
    },
  };
}

async function signInAndOut(browser: Browser, storeKind: 'memory' | 'redis', redis?: RedisServer): Promise<void> {
  const { example, url: appUrl, logs, stop } = await startExample(redis?.url);
  const standin = example.standin!;
  const redisClient = redis ? createClient({ url: redis.url }) : undefined;
  await redisClient?.connect();
  const context: BrowserContext = await browser.newContext();
  const page: Page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const consoleProblems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning')
      consoleProblems.push(`${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => consoleProblems.push(err.message));
  const shots: Record<string, Buffer> = {};

  try {
    expect(example.sessionStore.kind).toBe(storeKind);

    // Signed out: the home page offers to sign in.
    const home = await page.goto(`${appUrl}/`);
    expect(home?.status()).toBe(200);
    expect(home?.headers()['content-security-policy']).toContain("script-src 'none'");
    await page.getByRole('link', { name: 'Sign in with Polar' }).waitFor();

    // Sign in: the app sends us to the (stand-in) Polar consent page with state and PKCE.
    await page.getByRole('link', { name: 'Sign in with Polar' }).click();
    await page.waitForURL((u) => u.href.startsWith(standin.authorizeUrl));
    const authorize = new URL(page.url()).searchParams;
    expect(authorize.get('client_id')).toBe(standin.clientId);
    expect(authorize.get('redirect_uri')).toBe(`${appUrl}/auth/callback`);
    expect(authorize.get('code_challenge_method')).toBe('S256');
    expect(authorize.get('state')).toMatch(/^[A-Za-z0-9_-]{32}$/);
    await page.getByRole('button', { name: 'Allow' }).click();

    // Signed in: who we are, from userinfo, and a Sign out button.
    await page.waitForURL(`${appUrl}/`);
    await page.locator('#signed-in').waitFor();
    expect(await page.locator('h1').textContent()).toBe(`Hello, ${standin.user.name}`);
    expect(await page.locator('main').textContent()).toContain(standin.user.email);
    shots.signedIn = await page.screenshot({ fullPage: true });

    const cookies = await context.cookies(appUrl);
    const cookie = cookies.find((c) => c.name === example.cookieName);
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
    const sid = sessionIdOfCookie(cookie!.value);
    const stored = await storedSession(example.sessionStore.store, sid);
    const accessToken = stored?.accessToken as string;
    const refreshToken = stored?.refreshToken as string;
    expect(accessToken).toMatch(/^polar_at_/);
    expect(refreshToken).toMatch(/^polar_rt_/);
    expect(standin.fake.isActive(accessToken)).toBe(true);
    expect(standin.fake.isActive(refreshToken)).toBe(true);
    const redisKey = `${example.sessionStore.prefix}${sid}`;
    if (redisClient) expect(await redisClient.exists(redisKey)).toBe(1);

    // The signed-in page must never be stored by a cache, and never shows a token.
    const signedInHtml = await page.content();
    expect(signedInHtml).not.toContain(accessToken);
    expect(signedInHtml).not.toContain(refreshToken);
    const again = await context.request.get(`${appUrl}/`);
    expect(again.headers()['cache-control']).toBe('no-store');
    expect(await again.text()).toContain('Sign out');

    // Sign out: a form POST to /logout, answered 303 to the signed-out page.
    const [logoutResponse] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${appUrl}/logout`),
      page.getByRole('button', { name: 'Sign out' }).click(),
    ]);
    expect(logoutResponse.request().method()).toBe('POST');
    expect(logoutResponse.status()).toBe(303); // 403 here: the browser sent an Origin the logout guard refused
    expect(logoutResponse.headers()['cache-control']).toBe('no-store');
    await page.waitForURL(`${appUrl}/signed-out`);
    await page.locator('#signed-out').waitFor();
    shots.signedOut = await page.screenshot({ fullPage: true });

    // The browser has no session cookie any more; the store has no session; Polar has no live token.
    expect((await context.cookies(appUrl)).map((c) => c.name)).not.toContain(example.cookieName);
    expect(await storedSession(example.sessionStore.store, sid)).toBeFalsy();
    if (redisClient) {
      expect(await redisClient.exists(redisKey)).toBe(0);
      expect(await redisClient.keys(`${example.sessionStore.prefix}*`)).toEqual([]);
    }
    expect(standin.fake.isActive(accessToken)).toBe(false);
    expect(standin.fake.isActive(refreshToken)).toBe(false);
    // This user's tokens only: the app's start-up verify() revoked a random token of its own.
    const revokeCalls = standin.fake.calls
      .filter((c) => c.token === accessToken || c.token === refreshToken)
      .map((c) => ({
        hint: c.hint,
        authenticated: c.authenticated,
        result: c.result,
      }));
    expect(revokeCalls).toEqual(
      expect.arrayContaining([
        { hint: 'access_token', authenticated: true, result: 200 },
        { hint: 'refresh_token', authenticated: true, result: 200 },
      ]),
    );
    expect(revokeCalls).toHaveLength(2);

    // Back: the signed-in page is fetched again (no-store), and the server now says we are signed out.
    const back = await page.goBack();
    expect(page.url()).toBe(`${appUrl}/`);
    expect(back).not.toBeNull();
    expect(back!.status()).toBe(200);
    expect(await page.locator('#signed-in').count()).toBe(0); // 1 here: the page came from a cache
    expect(await page.content()).not.toContain(standin.user.email);
    await page.getByRole('link', { name: 'Sign in with Polar' }).waitFor();

    // The audit page shows this logout, correlated by the hash of the session id only.
    const hash = createHash('sha256').update(sid).digest('hex').slice(0, 16);
    expect(example.auditEvents[0]).toMatchObject({
      loggedOut: true,
      sessionDestroyed: true,
      sessionIdHash: hash,
      revocation: { accessToken: { status: 'revoked' }, refreshToken: { status: 'revoked' } },
    });
    await page.goto(`${appUrl}/audit`);
    const row = page.locator('#events tbody tr').first();
    const cells = (await row.locator('td').allTextContents()).map((text) => text.replace(/\s+/g, ' ').trim());
    expect(cells.slice(1, 5)).toEqual(['signed out', 'revoked', 'revoked', 'yes']);
    expect(cells[6]).toBe(hash);

    // Nothing the app or the page printed holds a secret, and the pages broke no CSP rule.
    const printed = [...logs, await page.content()].join('\n');
    for (const secret of [accessToken, refreshToken, sid, standin.clientSecret]) expect(printed).not.toContain(secret);
    expect(consoleProblems).toEqual([]);
  } catch (err) {
    mkdirSync(ARTIFACTS, { recursive: true });
    for (const [name, shot] of Object.entries(shots))
      writeFileSync(path.join(ARTIFACTS, `${storeKind}-${name}.png`), shot);
    await page
      .screenshot({ path: path.join(ARTIFACTS, `${storeKind}-at-failure.png`), fullPage: true })
      .catch(() => undefined);
    throw err;
  } finally {
    await context.close();
    await redisClient?.close();
    await stop();
  }
}

/** Browser B's User-Agent: another device as the sessions page names it. */
const SAFARI_ON_MAC =
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15';

/** One browser (a context of its own: its own cookies) of the same Polar user. */
interface Device {
  context: BrowserContext;
  page: Page;
  problems: string[];
}

async function openDevice(browser: Browser, userAgent?: string): Promise<Device> {
  const context = await browser.newContext(userAgent ? { userAgent } : {});
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => problems.push(err.message));
  return { context, page, problems };
}

/**
 * Two browser contexts signed in as the same user. A opens "Your sessions" (two rows), signs B out with "Sign out
 * this device"; B signs in again, A signs out everywhere else; then A signs out everywhere. After each step: the page,
 * the stand-in (tokens inactive) and the store.
 */
async function twoBrowsers(browser: Browser, storeKind: 'memory' | 'redis', redis?: RedisServer): Promise<void> {
  const { example, url: appUrl, logs, stop } = await startExample(redis?.url);
  const standin = example.standin!;
  const a = await openDevice(browser);
  const b = await openDevice(browser, SAFARI_ON_MAC);
  const secrets: string[] = [];

  /** Signs the device in through the stand-in's consent page; returns its session id and tokens. */
  async function signIn(device: Device): Promise<{ sid: string; accessToken: string; refreshToken: string }> {
    await device.page.goto(`${appUrl}/`);
    await device.page.getByRole('link', { name: 'Sign in with Polar' }).click();
    await device.page.getByRole('button', { name: 'Allow' }).click();
    await device.page.waitForURL(`${appUrl}/`);
    await device.page.locator('#signed-in').waitFor();
    const cookie = (await device.context.cookies(appUrl)).find((c) => c.name === example.cookieName)!;
    const sid = sessionIdOfCookie(cookie.value);
    const stored = await storedSession(example.sessionStore.inner, sid);
    const session = { sid, accessToken: stored?.accessToken as string, refreshToken: stored?.refreshToken as string };
    expect(isActive(session)).toEqual([true, true]);
    secrets.push(session.sid, session.accessToken, session.refreshToken);
    return session;
  }
  const isActive = (s: { accessToken: string; refreshToken: string }): boolean[] => [
    standin.fake.isActive(s.accessToken),
    standin.fake.isActive(s.refreshToken),
  ];
  /** A fresh page load of the home page: signed in or not, as the server says. */
  async function signedIn(device: Device): Promise<boolean> {
    const res = await device.page.goto(`${appUrl}/`);
    expect(res?.status()).toBe(200);
    return (await device.page.locator('#signed-in').count()) === 1;
  }
  /** The rows of the sessions page: device, "This device" marker, sign-out button. */
  async function rows(device: Device): Promise<Array<{ device: string; current: boolean; button: boolean }>> {
    const trs = device.page.locator('#sessions tbody tr');
    const out = [];
    for (let i = 0; i < (await trs.count()); i++) {
      const tr = trs.nth(i);
      out.push({
        device: ((await tr.locator('td.device').textContent()) ?? '').trim(),
        current: (await tr.getByText('This device', { exact: true }).count()) === 1,
        button: (await tr.getByRole('button', { name: 'Sign out this device' }).count()) === 1,
      });
    }
    return out;
  }
  /** Clicks a button that posts a form; returns the POST's answer (a 303 when all is well). */
  async function submit(device: Device, button: ReturnType<Page['getByRole']>, path: RegExp): Promise<number> {
    const [response] = await Promise.all([
      device.page.waitForResponse((r) => r.request().method() === 'POST' && path.test(new URL(r.url()).pathname)),
      button.click(),
    ]);
    return response.status();
  }

  try {
    expect(example.sessionStore.kind).toBe(storeKind);
    const first = await signIn(a);
    const bFirst = await signIn(b);

    // A opens "Your sessions" from the signed-in page: two rows, this device first, B's named from its User-Agent.
    await a.page.goto(`${appUrl}/`);
    await a.page.getByRole('link', { name: 'Your sessions' }).click();
    await a.page.waitForURL(`${appUrl}/sessions`);
    expect(await rows(a)).toEqual([
      { device: 'Headless Chrome on Linux', current: true, button: false },
      { device: 'Safari on macOS', current: false, button: true },
    ]);
    const html = await a.page.content();
    for (const secret of [...secrets, standin.user.sub, standin.clientSecret]) expect(html).not.toContain(secret);

    // "Sign out this device" on B's row: back to the page with one row; B's tokens revoked, its session gone.
    const signOutB = a.page.locator('#sessions tbody tr', { hasText: 'Safari on macOS' }).getByRole('button');
    expect(await submit(a, signOutB, /^\/sessions\/[^/]+\/logout$/)).toBe(303);
    await a.page.waitForURL(`${appUrl}/sessions`);
    expect(await rows(a)).toEqual([{ device: 'Headless Chrome on Linux', current: true, button: false }]);
    expect(isActive(bFirst)).toEqual([false, false]);
    expect(await storedSession(example.sessionStore.inner, bFirst.sid)).toBeFalsy();
    expect(await signedIn(b)).toBe(false);
    await b.page.getByRole('link', { name: 'Sign in with Polar' }).waitFor();
    expect(await signedIn(a)).toBe(true);
    expect(isActive(first)).toEqual([true, true]);

    // B signs in again; A (page reloaded: two rows) signs out everywhere else: B out, A still in.
    const bSecond = await signIn(b);
    await a.page.goto(`${appUrl}/sessions`);
    expect((await rows(a)).map((r) => r.current)).toEqual([true, false]);
    expect(
      await submit(a, a.page.getByRole('button', { name: 'Sign out everywhere else' }), /^\/logout\/others$/),
    ).toBe(303);
    await a.page.waitForURL(`${appUrl}/sessions`);
    expect(await rows(a)).toEqual([{ device: 'Headless Chrome on Linux', current: true, button: false }]);
    expect(isActive(bSecond)).toEqual([false, false]);
    expect(await storedSession(example.sessionStore.inner, bSecond.sid)).toBeFalsy();
    expect(await signedIn(b)).toBe(false);
    expect(await signedIn(a)).toBe(true);
    expect(isActive(first)).toEqual([true, true]);
    expect(await storedIds(example.sessionStore.inner)).toEqual([first.sid]);

    // B signs in once more; A signs out everywhere: both out, every token revoked, the store empty.
    const bThird = await signIn(b);
    await a.page.goto(`${appUrl}/sessions`);
    expect(
      await submit(
        a,
        a.page.getByRole('button', { name: 'Sign out everywhere', exact: true }),
        /^\/logout\/everywhere$/,
      ),
    ).toBe(303);
    await a.page.waitForURL(`${appUrl}/signed-out`);
    await a.page.locator('#signed-out').waitFor();
    expect((await a.context.cookies(appUrl)).map((c) => c.name)).not.toContain(example.cookieName);
    for (const s of [first, bThird]) expect(isActive(s)).toEqual([false, false]);
    expect(await storedIds(example.sessionStore.inner)).toEqual([]);
    expect(await example.sessionStore.sessions.list(standin.user.sub)).toEqual([]);
    expect(await signedIn(a)).toBe(false);
    expect(await signedIn(b)).toBe(false);
    expect(example.auditEvents[0]).toMatchObject({
      scope: 'everywhere',
      loggedOut: true,
      sessions: { sessions: 2, revoked: 4, queued: 0, failed: 0 },
    });

    // Nothing printed holds a secret, and no page broke a CSP rule.
    const printed = [...logs, await a.page.content(), await b.page.content()].join('\n');
    for (const secret of [...secrets, standin.clientSecret]) expect(printed).not.toContain(secret);
    expect([...a.problems, ...b.problems]).toEqual([]);
  } catch (err) {
    mkdirSync(ARTIFACTS, { recursive: true });
    for (const [name, device] of Object.entries({ a, b })) {
      await device.page
        .screenshot({ path: path.join(ARTIFACTS, `${storeKind}-sessions-${name}-at-failure.png`), fullPage: true })
        .catch(() => undefined);
    }
    throw err;
  } finally {
    await a.context.close();
    await b.context.close();
    await stop();
  }
}
