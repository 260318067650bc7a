/**
 * The browsers of the log-out-everywhere tests: each is a cookie jar (one session cookie) talking real HTTP to an app
 * of support/sessions-app.cjs, in a child process or in this one. Apps print records (audit events, gates reached);
 * the helpers wait for them.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import session from 'express-session';
import type { FakePolar, FakeTokenPair } from '../../../lib/testing';
import { createSessionsApp, type SessionsAppOptions } from './sessions-app.cjs';

/** An app the browsers talk to: its URL and what it printed. */
export interface AppHandle {
  readonly name: string;
  readonly url: string;
  readonly records: Record<string, unknown>[];
  waitFor(
    match: (record: Record<string, unknown>) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<Record<string, unknown>>;
}

export interface Browser {
  readonly app: AppHandle;
  readonly userId: string | undefined;
  /** The Cookie header value. */
  readonly cookie: string;
  readonly sessionId: string;
  readonly tokens: FakeTokenPair;
  /** The registry's handle for this session, as the app's idOf() named it at login. */
  readonly handle: string | null;
}

export interface Who {
  user: string | null;
  handle: string | null;
}

/** The session id inside a signed express-session cookie (`s:<id>.<signature>`). */
export function sessionIdOf(cookie: string): string {
  const value = decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1));
  return value.slice(2, value.lastIndexOf('.'));
}

function cookieOf(res: Response): string | undefined {
  const header = res.headers.getSetCookie().find((c) => c.startsWith('connect.sid='));
  return header?.split(';', 1)[0];
}

async function post(app: AppHandle, path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${app.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    redirect: 'manual',
  });
}

export interface LoginOptions {
  maxAgeMs?: number;
  userAgent?: string;
  /** Hold the login at this gate (its session already generated) until released. */
  gate?: string;
  /** Sign in within this browser's session (its cookie), instead of a new browser. */
  cookie?: string;
}

async function finishLogin(
  app: AppHandle,
  userId: string | undefined,
  tokens: FakeTokenPair,
  res: Response,
  sent?: string,
) {
  if (res.status !== 200) throw new Error(`login at ${app.name} answered ${res.status}: ${await res.text()}`);
  const cookie = cookieOf(res) ?? sent;
  if (!cookie) throw new Error(`login at ${app.name} set no session cookie`);
  const who = (await res.json()) as Who;
  return { app, userId, cookie, sessionId: sessionIdOf(cookie), tokens, handle: who.handle };
}

/** Signs a new browser in as `userId` (undefined: an anonymous session holding a cart) with a fresh token pair. */
export async function login(
  app: AppHandle,
  fake: FakePolar,
  userId: string | undefined,
  options: LoginOptions = {},
): Promise<Browser> {
  const tokens = fake.issueTokens();
  const res = await post(
    app,
    '/login',
    { ...tokens, userId: userId ?? null, ...(options.maxAgeMs !== undefined && { maxAgeMs: options.maxAgeMs }) },
    {
      ...(options.userAgent && { 'user-agent': options.userAgent }),
      ...(options.cookie && { cookie: options.cookie }),
    },
  );
  return finishLogin(app, userId, tokens, res, options.cookie);
}

export interface GatedLogin {
  /** Resolves once the app has begun the login (its session generated) and waits at the gate. */
  reached: Promise<void>;
  release(): Promise<void>;
  done: Promise<Browser>;
}

let gateCounter = 0;
const nextGate = (): string => `g${process.pid}-${++gateCounter}`;

/** A login that begins now and is saved only after release(). */
export function gatedLogin(app: AppHandle, fake: FakePolar, userId: string): GatedLogin {
  const gate = nextGate();
  const tokens = fake.issueTokens();
  const done = post(app, '/login', { ...tokens, userId, gate }).then((res) => finishLogin(app, userId, tokens, res));
  return {
    reached: app.waitFor((r) => r.type === 'gated' && r.gate === gate, 10_000, `login gate ${gate}`).then(() => {}),
    release: () => release(app, gate),
    done,
  };
}

async function release(app: AppHandle, gate: string): Promise<void> {
  const res = await post(app, '/release', { gate });
  if (res.status !== 200) throw new Error(`release ${gate} at ${app.name}: ${res.status}`);
}

export interface SlowRequest {
  /** Resolves once the request has loaded its session. */
  loaded: Promise<void>;
  /** Lets it modify the session and answer (express-session then saves it). */
  release(): Promise<void>;
  response: Promise<Response>;
}

/** A request that loads the session now and modifies it only after release(). */
export function slowRequest(app: AppHandle, cookie: string): SlowRequest {
  const gate = nextGate();
  const response = post(app, '/slow', {}, { cookie, 'x-gate': gate });
  return {
    loaded: app.waitFor((r) => r.type === 'loaded' && r.gate === gate, 10_000, `slow gate ${gate}`).then(() => {}),
    release: () => release(app, gate),
    response,
  };
}

export async function whoami(app: AppHandle, cookie: string): Promise<Who> {
  const res = await fetch(`${app.url}/whoami`, { headers: { cookie } });
  if (res.status !== 200) throw new Error(`whoami at ${app.name} answered ${res.status}`);
  return (await res.json()) as Who;
}

export type Scope = 'session' | 'others' | 'everywhere';
const PATHS: Record<Scope, string> = { session: '/logout', others: '/logout/others', everywhere: '/logout/everywhere' };

/** POST to the scope's logout route; `json`: Accept: application/json. */
export function logout(app: AppHandle, cookie: string, scope: Scope, json = false): Promise<Response> {
  return fetch(`${app.url}${PATHS[scope]}`, {
    method: 'POST',
    headers: { cookie, ...(json && { accept: 'application/json' }) },
    redirect: 'manual',
  });
}

export interface ListedSession {
  id: string;
  createdAt: string;
  lastSeenAt: string;
  userAgent?: string;
}

export async function list(app: AppHandle, userId: string): Promise<ListedSession[]> {
  const res = await fetch(`${app.url}/list?user=${encodeURIComponent(userId)}`);
  if (res.status !== 200) throw new Error(`list at ${app.name} answered ${res.status}`);
  return (await res.json()) as ListedSession[];
}

/** req.session.regenerate() at `app`, data copied over: the browser's new cookie. */
export async function regenerate(browser: Browser, app: AppHandle = browser.app): Promise<Browser> {
  const res = await post(app, '/regenerate', {}, { cookie: browser.cookie });
  if (res.status !== 200) throw new Error(`regenerate at ${app.name} answered ${res.status}`);
  const cookie = cookieOf(res);
  if (!cookie) throw new Error('regenerate set no cookie');
  const who = (await res.json()) as Who;
  return { ...browser, cookie, sessionId: sessionIdOf(cookie), handle: who.handle };
}

export async function adminPost(app: AppHandle, path: string, body: unknown): Promise<unknown> {
  const res = await post(app, path, body);
  if (res.status !== 200) throw new Error(`${path} at ${app.name} answered ${res.status}: ${await res.text()}`);
  return res.json();
}

/** The audit events an app printed. */
export function events(app: AppHandle): Record<string, unknown>[] {
  return app.records.filter((r) => r.type === 'logout').map((r) => r.event as Record<string, unknown>);
}

/** Polls until `check` holds; resolves to the time it took. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export interface InProcessApp extends AppHandle {
  close(): Promise<void>;
}

/** The same app in this process (the library from lib/), listening on 127.0.0.1. */
export async function startInProcessApp(
  lib: unknown,
  options: Omit<SessionsAppOptions, 'print'> & { name?: string },
): Promise<InProcessApp> {
  const records: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const { app, close } = createSessionsApp(lib, {
    ...options,
    print: (record) => {
      // As a child's stdout would carry it: JSON, nothing but data.
      records.push(JSON.parse(JSON.stringify(record)) as Record<string, unknown>);
      for (const wake of waiters) wake();
    },
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    name: options.name ?? 'in-process app',
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    records,
    waitFor(match, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = records.find(match);
          if (!found) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `store.get` as a promise, on the app's own (inner) store: what it really holds. */
export function stored(store: session.Store, sid: string): Promise<unknown> {
  return new Promise((resolve, reject) =>
    store.get(sid, (err, value) => (err ? reject(err as Error) : resolve(value ?? null))),
  );
}

/**
 * Whether the stand-in received `token` and answered 200. Stronger than `!fake.isActive(token)`: revoking an access
 * token also makes its refresh token inactive (Polar's one row per issuance), without the refresh token being sent.
 */
export function revokedAtPolar(fake: FakePolar, token: string): boolean {
  return fake.calls.some((c) => c.token === token && c.result === 200);
}
