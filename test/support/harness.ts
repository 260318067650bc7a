/**
 * A real Express app with a real express-session store and the logout middleware, talking real HTTP to
 * the Polar stand-in. Everything the tests can observe is captured: audit events, errors handed to
 * next(), debug output, and the store itself.
 */
import { format } from 'node:util';
import express, { type ErrorRequestHandler } from 'express';
import session from 'express-session';
import request from 'supertest';
import createDebug from 'debug';
import { polarLogout, type LogoutEvent, type PolarLogoutHandler, type PolarLogoutOptions } from '../../lib';
import { startFakePolar, type FakePolar, type FakeTokenPair } from '../../lib/testing';

declare module 'express-session' {
  interface SessionData {
    accessToken?: unknown;
    refreshToken?: unknown;
    user?: string;
  }
}

/** Everything debug() prints, for the secrets scan. */
export const debugOutput: string[] = [];
createDebug.enable('express-polar-logout*');
createDebug.log = (...args: unknown[]) => void debugOutput.push(format(...args));

export interface HarnessOptions {
  logout?: Partial<PolarLogoutOptions>;
  /** `post` mounts on app.post('/logout'); `use` on app.use('/logout') so every method reaches it. */
  mount?: 'post' | 'use';
  store?: session.Store;
  cookie?: session.CookieOptions;
  cookieName?: string;
  /** Leave express-session out (misconfiguration tests). */
  withoutSession?: boolean;
}

export interface LoginResult {
  tokens: FakeTokenPair;
  sessionId: string;
  /** The Cookie header value to send. */
  cookie: string;
}

export interface Harness {
  app: express.Express;
  fake: FakePolar;
  store: session.Store;
  logout: PolarLogoutHandler;
  events: LogoutEvent[];
  errors: unknown[];
  /** Response bodies and headers seen by the tests, for the secrets scan. */
  responses: string[];
  /** Creates a session holding a fresh token pair (or the given session fields). */
  login(fields?: Record<string, unknown>): Promise<LoginResult>;
  sessionIds(): Promise<string[]>;
  /** supertest request for POST /logout carrying the session cookie. */
  post(cookie?: string, path?: string): request.Test;
  close(): Promise<void>;
}

export function sessionIdsOf(store: session.Store): Promise<string[]> {
  return new Promise((resolve, reject) => {
    if (!store.all) return reject(new Error('store has no all()'));
    store.all((err, sessions) => {
      if (err) return reject(err instanceof Error ? err : new Error(String(err)));
      resolve(Object.keys(sessions ?? {}));
    });
  });
}

export async function createHarness(options: HarnessOptions = {}): Promise<Harness> {
  const fake = await startFakePolar();
  const store = options.store ?? new session.MemoryStore();
  const events: LogoutEvent[] = [];
  const errors: unknown[] = [];
  const responses: string[] = [];
  const cookieName = options.cookieName ?? 'connect.sid';

  const app = express();
  if (!options.withoutSession) {
    app.use(
      session({
        name: cookieName,
        secret: 'harness-cookie-signing-secret',
        resave: false,
        saveUninitialized: false,
        store,
        cookie: options.cookie ?? { httpOnly: true, sameSite: 'lax' },
      }),
    );
  }
  app.use(express.urlencoded({ extended: false }));
  app.use(express.json());

  let nextLogin: Record<string, unknown> | undefined;
  app.post('/login', (req, res) => {
    const fields = nextLogin ?? {};
    nextLogin = undefined;
    Object.assign(req.session, fields);
    req.session.save(() => res.json({ sessionId: req.sessionID }));
  });

  const logout = polarLogout({
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    baseUrl: fake.url,
    cookieName,
    onLogout: (event) => {
      events.push(event);
    },
    ...options.logout,
  } as PolarLogoutOptions);
  if (options.mount === 'use') app.use('/logout', logout);
  else app.post('/logout', logout);

  const onError: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    errors.push(err);
    const e = err as { status?: number; code?: string };
    res.status(e.status ?? 500).json({ error: e.code ?? 'error' });
  };
  app.use(onError);

  async function login(fields?: Record<string, unknown>): Promise<LoginResult> {
    const tokens = fake.issueTokens();
    nextLogin = fields ?? { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, user: 'ada' };
    const res = await request(app).post('/login').expect(200);
    const setCookie = res.headers['set-cookie'] as unknown as string[];
    const cookie = setCookie[0]!.split(';', 1)[0]!;
    return { tokens, sessionId: (res.body as { sessionId: string }).sessionId, cookie };
  }

  return {
    app,
    fake,
    store,
    logout,
    events,
    errors,
    responses,
    login,
    sessionIds: () => sessionIdsOf(store),
    post(cookie, path = '/logout') {
      const test = request(app).post(path);
      if (cookie) test.set('Cookie', cookie);
      return test;
    },
    async close() {
      logout.close();
      await fake.close();
    },
  };
}

/** Records a response's status line, headers and body for the secrets scan. */
export function capture(h: Harness, res: request.Response): request.Response {
  h.responses.push(JSON.stringify({ status: res.status, headers: res.headers, text: res.text }));
  return res;
}

/** Every string a test could have leaked a secret into. */
export function everythingCaptured(h: Harness): string {
  const errors = h.errors.map((e) => `${format(e)} ${JSON.stringify(e)} ${e instanceof Error ? e.stack : ''}`);
  return [...h.responses, JSON.stringify(h.events), format(h.events), ...errors, ...debugOutput].join('\n');
}

export function cookieHeader(res: request.Response): string[] {
  return (res.headers['set-cookie'] as unknown as string[] | undefined) ?? [];
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
