/**
 * A real Express app with a real express-session store, polarLogout() and an outbox, for the outbox
 * tests: what the user gets, what the store holds, what the audit says.
 */
import { format } from 'node:util';
import express, { type ErrorRequestHandler } from 'express';
import session from 'express-session';
import request from 'supertest';
import createDebug from 'debug';
import { polarLogout, type LogoutEvent, type PolarLogoutOptions, type RevocationQueue } from '../../../lib';
import type { FakePolar, FakeTokenPair } from '../../../lib/testing';

declare module 'express-session' {
  interface SessionData {
    accessToken?: unknown;
    refreshToken?: unknown;
  }
}

/** Everything debug() prints in this test process (every namespace of the library, the outbox's included). */
export const debugOutput: string[] = [];
createDebug.enable('express-polar-logout*');
createDebug.log = (...args: unknown[]) => void debugOutput.push(format(...args));

export interface OutboxApp {
  events: LogoutEvent[];
  errors: unknown[];
  /** Logs in with a fresh token pair from the stand-in. */
  login(): Promise<{ tokens: FakeTokenPair; sessionId: string; cookie: string }>;
  logout(cookie: string): request.Test;
  sessionIds(): Promise<string[]>;
  close(): void;
}

export function createOutboxApp(
  fake: FakePolar,
  outbox: RevocationQueue,
  options: { baseUrl?: string; logout?: Partial<PolarLogoutOptions> } = {},
): OutboxApp {
  const store = new session.MemoryStore();
  const events: LogoutEvent[] = [];
  const errors: unknown[] = [];
  const app = express();
  app.use(session({ secret: 'outbox-test-cookie-secret', resave: false, saveUninitialized: false, store }));
  let next: FakeTokenPair | undefined;
  app.post('/login', (req, res) => {
    Object.assign(req.session, next);
    req.session.save(() => res.json({ sessionId: req.sessionID }));
  });
  const handler = polarLogout({
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    baseUrl: options.baseUrl ?? fake.url,
    timeoutMs: 1000,
    outbox,
    onLogout: (event) => void events.push(event),
    ...options.logout,
  });
  app.post('/logout', handler);
  const onError: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    errors.push(err);
    res.status((err as { status?: number }).status ?? 500).json({ error: (err as { code?: string }).code ?? 'error' });
  };
  app.use(onError);

  return {
    events,
    errors,
    async login() {
      const tokens = fake.issueTokens();
      next = tokens;
      const res = await request(app).post('/login').expect(200);
      const cookie = (res.headers['set-cookie'] as unknown as string[])[0]!.split(';', 1)[0]!;
      return { tokens, sessionId: (res.body as { sessionId: string }).sessionId, cookie };
    },
    logout: (cookie) => request(app).post('/logout').set('Cookie', cookie),
    sessionIds: () =>
      new Promise((resolve, reject) => {
        store.all((err, sessions) => (err ? reject(err as Error) : resolve(Object.keys(sessions ?? {}))));
      }),
    close: () => handler.close(),
  };
}

/** Polls until `check` is true or `timeoutMs` passes; resolves to the time it took. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
