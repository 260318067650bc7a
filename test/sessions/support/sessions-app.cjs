// @ts-check
'use strict';
/**
 * The app of the log-out-everywhere tests, the same in a child process (fixtures/child.cjs, the library bundled) and
 * in the test process (the library from lib/): express-session on the registry's wrapped store, a login that stores
 * the token pair and the user it is given (optionally held at a gate, its session already generated, until the test
 * releases it), a slow route that loads the session and modifies it after a gate, regenerate, whoami, list, the three
 * logout scopes and the registry's admin calls. Everything the test waits for is printed as a record.
 */
const express = require('express');
const session = require('express-session');

const COOKIE_SECRET = 'sessions-test-cookie-secret';

/**
 * @param {any} lib express-polar-logout (lib/ or the bundle)
 * @param {{
 *   store: import('express-session').Store,
 *   sessions: any,
 *   polar: { clientId: string, clientSecret: string, baseUrl: string },
 *   outbox?: any,
 *   rateLimit?: { requests: number, perMs: number },
 *   redis?: unknown,
 *   timeoutMs?: number,
 *   print: (record: Record<string, unknown>) => void,
 * }} options
 */
function createSessionsApp(lib, options) {
  const { sessions, polar, outbox, print } = options;
  /** @type {Map<string, { release: () => void, released: Promise<void> }>} */
  const gates = new Map();
  /** @param {string} id */
  function gate(id) {
    /** @type {() => void} */
    let release = () => undefined;
    const released = new Promise((resolve) => (release = () => resolve(undefined)));
    gates.set(id, { release, released: /** @type {Promise<void>} */ (released) });
    return released;
  }

  const app = express();
  app.use(
    session({
      secret: COOKIE_SECRET,
      store: options.store,
      resave: false,
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: 'lax' },
    }),
  );
  app.use(express.json());

  /** @param {any} req */
  const whoami = (req) => ({ user: req.session.user?.id ?? null, handle: sessions.idOf(req) ?? null });

  app.post('/login', async (req, res) => {
    const { accessToken, refreshToken, userId, maxAgeMs, gate: gateId } = req.body;
    if (gateId !== undefined) {
      // The session was generated when this request began; it is saved only once the test releases the gate.
      const released = gate(String(gateId));
      print({ type: 'gated', gate: String(gateId) });
      await released;
    }
    if (typeof maxAgeMs === 'number') req.session.cookie.maxAge = maxAgeMs;
    Object.assign(req.session, { accessToken, refreshToken });
    if (userId !== undefined && userId !== null) Object.assign(req.session, { user: { id: userId } });
    else {
      // Signed out within the session (or never signed in): a cart, no user.
      Object.assign(req.session, { cart: ['anonymous'] });
      delete (/** @type {any} */ (req.session).user);
    }
    req.session.save((err) => {
      if (err) return void res.status(500).json({ error: 'save failed' });
      res.json(whoami(req));
    });
  });

  app.post('/release', (req, res) => {
    const found = gates.get(String(req.body.gate));
    if (!found) return void res.status(404).json({ error: 'no such gate' });
    gates.delete(String(req.body.gate));
    found.release();
    res.json({ ok: true });
  });

  // Loads the session, waits at the gate, then modifies it: express-session saves it at the end of the request.
  app.post('/slow', async (req, res) => {
    /** @type {any} */
    const s = req.session;
    if (!s.user) return void res.status(400).json({ error: 'not signed in' });
    const gateId = String(req.get('x-gate'));
    const released = gate(gateId);
    print({ type: 'loaded', gate: gateId });
    await released;
    s.cart = Date.now();
    res.json({ ok: true });
  });

  app.get('/whoami', (req, res) => void res.json(whoami(req)));

  app.post('/regenerate', (req, res) => {
    /** @type {any} */
    const s = req.session;
    const { user, accessToken, refreshToken } = s;
    req.session.regenerate((err) => {
      if (err) return void res.status(500).json({ error: 'regenerate failed' });
      Object.assign(req.session, { user, accessToken, refreshToken });
      req.session.save((saveErr) => {
        if (saveErr) return void res.status(500).json({ error: 'save failed' });
        res.json(whoami(req));
      });
    });
  });

  app.get('/list', async (req, res, next) => {
    try {
      res.json(await sessions.list(String(req.query.user)));
    } catch (err) {
      next(err);
    }
  });

  const base = {
    ...polar,
    timeoutMs: options.timeoutMs ?? 2000,
    ...(options.rateLimit && { rateLimit: options.rateLimit }),
    ...(options.redis !== undefined && { redis: options.redis }),
    ...(outbox && { outbox }),
    sessions,
    /** @param {any} event */
    onLogout: (event) => print({ type: 'logout', event }),
  };
  const handlers = [
    lib.polarLogout(base),
    lib.polarLogout({ ...base, scope: 'others' }),
    lib.polarLogout({ ...base, scope: 'everywhere' }),
  ];
  app.post('/logout', handlers[0]);
  app.post('/logout/others', handlers[1]);
  app.post('/logout/everywhere', handlers[2]);

  const revoker = lib.createPolarRevoker({
    ...polar,
    timeoutMs: options.timeoutMs ?? 2000,
    ...(options.rateLimit && { rateLimit: options.rateLimit }),
    ...(options.redis !== undefined && { redis: options.redis }),
  });
  app.post('/admin/logout-user', async (req, res, next) => {
    try {
      const { userId, except } = req.body;
      res.json(await sessions.logoutUser(userId, { revoker, ...(outbox && { outbox }), ...(except && { except }) }));
    } catch (err) {
      next(err);
    }
  });
  app.post('/admin/logout-session', async (req, res, next) => {
    try {
      const { userId, id } = req.body;
      res.json(await sessions.logoutSession(userId, id, { revoker, ...(outbox && { outbox }) }));
    } catch (err) {
      next(err);
    }
  });

  // Express knows an error handler by its four parameters.
  /** @type {import('express').ErrorRequestHandler} */
  // eslint-disable-next-line no-unused-vars
  const onError = (err, _req, res, _next) => {
    print({ type: 'error', code: err?.code ?? null, name: err?.name ?? null });
    res.status(err?.status ?? 500).json({ error: err?.code ?? 'error' });
  };
  app.use(onError);

  return {
    app,
    close() {
      for (const handler of handlers) handler.close();
      revoker.close();
      for (const { release } of gates.values()) release();
    },
  };
}

module.exports = { createSessionsApp, COOKIE_SECRET };
