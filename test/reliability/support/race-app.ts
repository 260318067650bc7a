/**
 * An app for race tests: a real express-session store (memory or Redis), the logout, a login, and a
 * "slow" route that loads the session, waits until the test releases it, then (optionally) modifies the
 * session and answers, so that express-session saves it at the end of the request, after the logout.
 */
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type ErrorRequestHandler } from 'express';
import session from 'express-session';
import request from 'supertest';
import { polarLogout, type LogoutEvent, type PolarLogoutHandler } from '../../../lib';
import type { FakePolar } from '../../../lib/testing';

export interface Gate {
  /** Resolves once the slow request has loaded its session. */
  loaded: Promise<void>;
  release(): void;
  /** The slow request's response. */
  response: Promise<request.Response>;
}

export interface RaceApp {
  server: http.Server;
  url: string;
  logout: PolarLogoutHandler;
  events: LogoutEvent[];
  errors: unknown[];
  login(): Promise<{ sessionId: string; cookie: string; tokens: { accessToken: string; refreshToken: string } }>;
  /** Starts a slow request with this cookie; it waits for release() after loading the session. */
  slow(cookie: string): Gate;
  whoami(cookie: string): Promise<string | null>;
  postLogout(cookie: string): request.Test;
  close(): Promise<void>;
}

export interface RaceAppOptions {
  store: session.Store;
  fake: FakePolar;
  /** `modify`: the slow route changes the session (saved with resave: false); `read`: it does not. */
  slowRoute?: 'modify' | 'read';
  resave?: boolean;
  rolling?: boolean;
}

const SECRET = 'race-app-cookie-signing-secret';

export async function startRaceApp(options: RaceAppOptions): Promise<RaceApp> {
  const { fake, store } = options;
  const events: LogoutEvent[] = [];
  const errors: unknown[] = [];
  const gates = new Map<string, { loaded: () => void; released: Promise<void> }>();
  let nextGate = 0;

  const app = express();
  app.use(
    session({
      secret: SECRET,
      store,
      resave: options.resave ?? false,
      rolling: options.rolling ?? false,
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: 'lax' },
    }),
  );
  app.post('/login', (req, res) => {
    const tokens = fake.issueTokens();
    Object.assign(req.session, { ...tokens, user: 'ada' });
    req.session.save((err) => (err ? res.status(500).end() : res.json({ sessionId: req.sessionID, tokens })));
  });
  app.post('/slow', (req, res) => {
    const gate = gates.get(String(req.get('x-gate')));
    if (!gate || !req.session.user) return void res.status(400).json({ error: 'no gate or no session' });
    gate.loaded();
    void gate.released.then(() => {
      if (options.slowRoute !== 'read') (req.session as { cart?: number }).cart = Date.now();
      res.json({ ok: true });
    });
  });
  app.get('/whoami', (req, res) => {
    res.json({ user: req.session.user ?? null });
  });
  const logout = polarLogout({
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    baseUrl: fake.url,
    onLogout: (event) => void events.push(event),
  });
  app.post('/logout', logout);
  app.use(((err: unknown, _req, res, _next) => {
    errors.push(err);
    const e = err as { status?: number; code?: string };
    res.status(e.status ?? 500).json({ error: e.code ?? 'error' });
  }) as ErrorRequestHandler);

  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    server,
    url,
    logout,
    events,
    errors,
    async login() {
      const res = await request(url).post('/login').expect(200);
      const cookie = (res.headers['set-cookie'] as unknown as string[])[0]!.split(';', 1)[0]!;
      const body = res.body as { sessionId: string; tokens: { accessToken: string; refreshToken: string } };
      return { sessionId: body.sessionId, cookie, tokens: body.tokens };
    },
    slow(cookie) {
      const id = String(nextGate++);
      let loaded!: () => void;
      let release!: () => void;
      const loadedPromise = new Promise<void>((resolve) => (loaded = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      gates.set(id, { loaded, released });
      const response = request(url)
        .post('/slow')
        .set({ Cookie: cookie, 'x-gate': id })
        .then((r) => r);
      return { loaded: loadedPromise, release, response };
    },
    async whoami(cookie) {
      const res = await request(url).get('/whoami').set('Cookie', cookie).expect(200);
      return (res.body as { user: string | null }).user;
    },
    postLogout(cookie) {
      return request(url).post('/logout').set('Cookie', cookie);
    },
    async close() {
      logout.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `store.get` as a promise: what the store really holds (use the inner store, not the guard). */
export function storedSession(store: session.Store, sid: string): Promise<unknown> {
  return new Promise((resolve, reject) => store.get(sid, (err, value) => (err ? reject(err) : resolve(value ?? null))));
}

/** The Cookie header express-session would accept for `sid` (s: + HMAC-SHA256 signature, as cookie-signature). */
export function signedCookie(sid: string, name = 'connect.sid', secret = SECRET): string {
  const signature = createHmac('sha256', secret).update(sid).digest('base64').replace(/=+$/, '');
  return `${name}=${encodeURIComponent(`s:${sid}.${signature}`)}`;
}
