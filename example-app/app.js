// @ts-check
'use strict';
/**
 * The example app: sign in with Polar (OAuth 2.0 code flow with PKCE), sign out with express-polar-logout.
 *
 * createExampleApp(config) builds everything (Polar stand-in when no real Polar is configured, session store,
 * Express app) and returns it without listening, so tests can drive it; server.js reads the environment and
 * listens.
 */
const { randomBytes, timingSafeEqual } = require('node:crypto');
const path = require('node:path');
const express = require('express');
const session = require('express-session');
// helmet's CommonJS typings only declare the default export; at run time both forms work.
const { default: helmet } = require('helmet');
// Imported by its package name, exactly as in your app (this repository resolves it to its own build in dist/).
const { polarLogout, createPolarRevoker, PolarLogoutError } = require('express-polar-logout');
const pages = require('./pages');
const { describeDevice } = require('./devices');
const { refuseCrossSite } = require('./same-origin');
const { createOutbox } = require('./outbox');
const { metricsHandler, startMetrics } = require('./metrics');
const { createPolarOAuthClient, OAuthError, POLAR_SERVERS } = require('./polar-oauth');
const { startPolarStandin } = require('./polar-standin');
const { createSessionStore, StartupError } = require('./session-store');

/** The session cookie's name: given to express-session and, so it can clear it, to polarLogout(). */
const SESSION_COOKIE = 'polar-example.sid';
/** How many logout events, and how many settled queued tokens, the audit page keeps. */
const AUDIT_LIMIT = 20;
/** How long a sign-in may take between leaving for Polar and coming back. */
const SIGN_IN_TTL_MS = 10 * 60 * 1000;

/**
 * What the example keeps in the session. accessToken and refreshToken are where polarLogout() looks by default.
 * @typedef {object} ExampleSessionData
 * @property {{ state: string, codeVerifier: string, startedAt: number }} [oauth] A sign-in in progress.
 * @property {string} [accessToken]
 * @property {string} [refreshToken]
 * @property {number} [expiresAt]
 * @property {import('./polar-oauth').PolarUser} [user]
 */

/**
 * @param {import('express').Request} req
 * @returns {import('express-session').Session & ExampleSessionData}
 */
const sessionOf = (req) => /** @type {any} */ (req.session);

/**
 * @param {unknown} a
 * @param {string} b
 */
function safeEqual(a, b) {
  if (typeof a !== 'string') return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * @param {import('express').Request} req
 * @param {'regenerate' | 'save'} method
 * @returns {Promise<void>}
 */
function sessionCall(req, method) {
  return new Promise((resolve, reject) =>
    req.session[method]((/** @type {unknown} */ err) => (err ? reject(err) : resolve())),
  );
}

/**
 * @param {import('express-polar-logout').SessionsLogoutSummary} summary
 * @returns {string} e.g. "2 session(s) ended, tokens: 4 revoked, 0 queued, 0 failed"
 */
function summaryText({ sessions, revoked, queued, failed }) {
  return `${sessions} session(s) ended, tokens: ${revoked} revoked, ${queued} queued, ${failed} failed`;
}

/**
 * Where sign-in and revocation go: the real Polar (sandbox or production) or the stand-in.
 * @param {import('./config').ExampleConfig} config
 * @param {import('./polar-standin').PolarStandin | undefined} standin
 */
function describePolar(config, standin) {
  if (config.polar) {
    const { clientId, clientSecret, server } = config.polar;
    return {
      clientId,
      clientSecret,
      ...POLAR_SERVERS[server],
      // polarLogout() knows Polar's API hosts by name, and with them Polar's rate limit: it, the outbox and the
      // revoker apply 80 % of it by default (400 calls a minute, 80 in sandbox), from one budget per process.
      revocation: { server },
      label: server === 'sandbox' ? 'Polar sandbox (sandbox.polar.sh)' : 'Polar (polar.sh)',
    };
  }
  if (!standin) throw new Error('describePolar: no Polar configured and no stand-in started');
  return {
    clientId: standin.clientId,
    clientSecret: standin.clientSecret,
    authorizeUrl: standin.authorizeUrl,
    apiUrl: standin.url,
    // The stand-in has no limit of its own; a budget still applies (with a baseUrl there is no default), generous
    // enough for the tests, so that the example runs the same code path as with Polar.
    revocation: { baseUrl: standin.url, rateLimit: { requests: 6000, perMs: 60_000 } },
    label: 'in-process stand-in (no Polar account needed)',
  };
}

/**
 * @typedef {object} ExampleAppOptions
 * @property {(message: string) => void} [log] Where the app reports what happens (default console.log).
 *   It never receives a token, the client secret or a session id.
 * @property {import('express-polar-logout').OutboxBackoffOptions} [outboxBackoff] For tests only: shorter retry
 *   steps for the revocation outbox than its default (1 s doubling up to 5 min). Not read from the environment.
 * @property {boolean} [verifyAtStartup] Check the client credentials against Polar before serving (default true).
 *   For tests only: `false` where the configuration names the real Polar, which tests must never call.
 */

/**
 * @param {import('./config').ExampleConfig} config
 * @param {ExampleAppOptions} [options]
 */
async function createExampleApp(config, options = {}) {
  const log = options.log ?? ((message) => console.log(message));
  // Before polarLogout() and the outbox: they find the registered MeterProvider when they are built.
  startMetrics();
  const redirectUri = `${config.publicUrl}/auth/callback`;
  const https = config.publicUrl.startsWith('https:');

  // Polar: the real one when configured, otherwise the in-process stand-in.
  const standin = config.polar ? undefined : await startPolarStandin({ redirectUris: [redirectUri] });
  const polar = describePolar(config, standin);

  /** @type {import('express-polar-logout').LogoutEvent[]} */
  const auditEvents = [];
  /** @param {import('express-polar-logout').LogoutEvent} event */
  const recordLogout = (event) => {
    auditEvents.unshift(event);
    auditEvents.length = Math.min(auditEvents.length, AUDIT_LIMIT);
    const { accessToken: at, refreshToken: rt } = event.revocation;
    /** @param {import('express-polar-logout').TokenOutcome} outcome */
    const queued = (outcome) =>
      outcome.queued === undefined ? '' : outcome.queued ? ' (queued)' : ' (NOT queued: outbox unavailable)';
    if (event.scope === 'others') {
      // This session stays: no token of its own was touched, only the others ended.
      const result = event.error ? `FAILED (${event.error.code})` : 'done';
      const ended = event.sessions ? summaryText(event.sessions) : 'nothing ended';
      log(`sign out everywhere else ${result}: ${ended}, session ${event.sessionIdHash ?? '-'}`);
      return;
    }
    const ended = event.sessions ? `, ${event.scope}: ${summaryText(event.sessions)}` : '';
    log(
      `logout ${event.loggedOut ? 'done' : `FAILED (${event.error?.code})`}: access token ${at.status}${queued(at)}, ` +
        `refresh token ${rt.status}${queued(rt)}, ${event.durationMs} ms, session ${event.sessionIdHash ?? '-'}${ended}`,
    );
  };

  /** @type {import('express-polar-logout').OutboxSettledEvent[]} */
  const settledEvents = [];
  /** @param {import('express-polar-logout').OutboxSettledEvent} event */
  const recordSettled = (event) => {
    settledEvents.unshift(event);
    settledEvents.length = Math.min(settledEvents.length, AUDIT_LIMIT);
    const why = event.error
      ? ` (${event.error.code}${event.error.httpStatus ? ` ${event.error.httpStatus}` : ''})`
      : '';
    log(
      `queued ${event.tokenType.replace('_', ' ')} ${event.outcome}${why} after ${event.attempts} attempt(s), ` +
        `session ${event.sessionIdHash ?? '-'}`,
    );
  };

  const client = { clientId: polar.clientId, clientSecret: polar.clientSecret, ...polar.revocation };
  /** @type {import('express-polar-logout').PolarLogoutHandler[]} */
  const logouts = [];
  let logout;
  let revoker;
  let sessionStore;
  let outbox;
  try {
    // The sessions (wrapped by the session registry) and, with REDIS_URL, the Redis connection they use.
    sessionStore = await createSessionStore({ redisUrl: config.redisUrl, log });
    // With Redis, the rate budget is shared with the outbox's worker and every other instance of the app, over
    // the sessions' connection.
    const budget = sessionStore.client ? { redis: sessionStore.client } : {};
    // For tokens to give back outside a logout: a sign-in that fails half-way, "sign out this device".
    revoker = createPolarRevoker({ ...client, ...budget });
    // Where tokens go when Polar cannot revoke them at logout: revoked later, outcome on the audit page.
    outbox = await createOutbox({
      client,
      redisUrl: config.redisUrl,
      onSettled: recordSettled,
      backoff: options.outboxBackoff,
    });
    // The point of the example. Its options are checked here, at start-up.
    /** @type {import('express-polar-logout').PolarLogoutOptions} */
    const logoutOptions = {
      ...client,
      ...budget,
      cookieName: SESSION_COOKIE,
      redirectTo: '/signed-out',
      onLogout: recordLogout,
      outbox: outbox.outbox,
      // The registry: a logout also leaves the per-user index, and the scopes below can find the other sessions.
      sessions: sessionStore.sessions,
    };
    logout = polarLogout(logoutOptions);
    logouts.push(logout);
    // "Sign out everywhere else": this session stays, back to the sessions page.
    logouts.push(polarLogout({ ...logoutOptions, scope: 'others', redirectTo: '/sessions' }));
    // "Sign out everywhere": every session of the user, this one included.
    logouts.push(polarLogout({ ...logoutOptions, scope: 'everywhere' }));
    // A wrong secret or URL shows here, at start-up, not weeks later in the audit log.
    const check = options.verifyAtStartup === false ? { ok: /** @type {const} */ (true) } : await logout.verify();
    if (!check.ok) {
      const status = check.error.httpStatus === undefined ? '' : ` (HTTP ${check.error.httpStatus})`;
      throw new StartupError(
        `Polar refused the revocation configuration: ${check.error.code}${status}. ` +
          (check.error.code === 'INVALID_CLIENT'
            ? 'Check POLAR_CLIENT_ID, POLAR_CLIENT_SECRET and POLAR_SERVER.'
            : 'Check POLAR_SERVER and that Polar is reachable from here.'),
      );
    }
  } catch (err) {
    for (const handler of logouts) handler.close();
    await outbox?.close();
    revoker?.close();
    await sessionStore?.close();
    await standin?.close();
    throw err;
  }

  const oauth = createPolarOAuthClient({
    clientId: polar.clientId,
    clientSecret: polar.clientSecret,
    authorizeUrl: polar.authorizeUrl,
    apiUrl: polar.apiUrl,
    redirectUri,
  });

  const app = express();
  app.set('trust proxy', config.trustProxy);
  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'none'"],
          scriptSrc: ["'none'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          baseUri: ["'none'"],
          ...(https ? { upgradeInsecureRequests: [] } : {}),
        },
      },
      strictTransportSecurity: https,
      // Not helmet's default (no-referrer): with it, browsers send `Origin: null` on same-origin form POSTs,
      // and polarLogout() refuses those as cross-site (logout CSRF protection).
      referrerPolicy: { policy: 'same-origin' },
    }),
  );
  app.use(express.static(path.join(__dirname, 'public'), { index: false, maxAge: '1h' }));
  app.use(
    session({
      name: SESSION_COOKIE,
      secret: config.sessionSecret ?? randomBytes(32).toString('hex'),
      store: sessionStore.store,
      resave: false,
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: 'lax', secure: https, maxAge: 8 * 60 * 60 * 1000 },
    }),
  );
  // Every page below depends on the session: never let a cache (the browser's back button included) replay one.
  app.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  /**
   * @param {import('express').Response} res
   * @param {import('./pages').SafeHtml} page
   * @param {number} [status]
   */
  const render = (res, page, status = 200) => res.status(status).type('html').send(page.value);
  /**
   * @param {import('express').Response} res
   * @param {number} status
   * @param {string} title
   * @param {string} message
   */
  const renderError = (res, status, title, message) =>
    render(res, pages.errorPage({ polarLabel: polar.label, title, message }), status);

  app.get('/', (req, res) => {
    const s = sessionOf(req);
    if (s.user && s.accessToken) {
      return render(res, pages.homeSignedIn({ polarLabel: polar.label, user: s.user, expiresAt: s.expiresAt }));
    }
    render(res, pages.homeSignedOut({ polarLabel: polar.label }));
  });

  const publicHost = new URL(config.publicUrl).host;
  const localPublicUrl = /^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(publicHost);

  app.get('/login', (req, res, next) => {
    // The session cookie belongs to one host name: sign in on the one Polar will redirect back to
    // (http://127.0.0.1:3000 and http://localhost:3000 do not share cookies).
    if (localPublicUrl && req.get('host') !== publicHost) return res.redirect(302, `${config.publicUrl}/login`);
    const s = sessionOf(req);
    if (s.user) return res.redirect(303, '/');
    const { url, state, codeVerifier } = oauth.startAuthorization();
    s.oauth = { state, codeVerifier, startedAt: Date.now() };
    s.save((err) => (err ? next(err) : res.redirect(302, url)));
  });

  app.get('/auth/callback', async (req, res) => {
    const s = sessionOf(req);
    const pending = s.oauth;
    delete s.oauth; // one use, whatever happens
    const { state, code, error } = req.query;
    if (!pending || !safeEqual(state, pending.state) || Date.now() - pending.startedAt > SIGN_IN_TTL_MS) {
      return renderError(
        res,
        400,
        'Sign-in failed',
        'This sign-in answer does not match a sign-in started in this browser, or it took too long. Please start again.',
      );
    }
    if (typeof error === 'string') {
      const reason =
        error === 'access_denied' ? 'You declined the request on Polar.' : `Polar answered "${error.slice(0, 64)}".`;
      return renderError(res, 400, 'Sign-in cancelled', reason);
    }
    if (typeof code !== 'string' || code === '') return renderError(res, 400, 'Sign-in failed', 'Polar sent no code.');

    let tokens;
    let user;
    try {
      tokens = await oauth.exchangeCode(code, pending.codeVerifier);
      user = await oauth.userinfo(tokens.accessToken);
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      // Tokens we cannot use are given back instead of left active.
      if (tokens) await revoker.revoke({ accessToken: tokens.accessToken, refreshToken: tokens.refreshToken });
      log(`sign-in failed: ${err.code}`);
      return renderError(res, 502, 'Sign-in failed', err.message);
    }
    // A new session id at sign-in (session fixation), then the tokens where polarLogout() finds them.
    await sessionCall(req, 'regenerate');
    Object.assign(sessionOf(req), {
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      expiresAt: tokens.expiresAt,
      user,
    });
    await sessionCall(req, 'save');
    log(`sign-in: ${user.sub}`);
    res.redirect(303, '/');
  });

  const [logoutOthers, logoutEverywhere] = logouts.slice(1);
  const sessions = sessionStore.sessions;
  app.post('/logout', logout);
  app.post('/logout/others', /** @type {import('express').RequestHandler} */ (logoutOthers));
  app.post('/logout/everywhere', /** @type {import('express').RequestHandler} */ (logoutEverywhere));

  // "Your sessions": every session of the signed-in user, from the registry's index.
  app.get('/sessions', async (req, res) => {
    const user = sessionOf(req).user;
    if (!user) return res.redirect(303, '/');
    const current = sessions.idOf(req);
    // This device first, then the others, most recently seen first (list()'s order).
    const list = (await sessions.list(user.sub)).sort((a, b) => Number(b.id === current) - Number(a.id === current));
    render(res, pages.sessionsPage({ polarLabel: polar.label, sessions: list, current, describeDevice }));
  });

  // "Sign out this device": one of the user's other sessions, by its handle from the page. The user id comes from
  // this session, so a handle of someone else's session finds nothing.
  app.post('/sessions/:id/logout', refuseCrossSite, async (req, res) => {
    const user = sessionOf(req).user;
    if (!user) return res.redirect(303, '/');
    const id = String(req.params.id);
    if (id === sessions.idOf(req)) {
      return renderError(
        res,
        400,
        'This is your current session',
        'Use Sign out to sign out the device you are using.',
      );
    }
    const summary = await sessions.logoutSession(user.sub, id, { revoker, outbox: outbox.outbox });
    log(`sign out a device: ${summaryText(summary)}`);
    if (req.accepts(['html', 'json']) === 'json') return res.json({ sessions: summary });
    res.redirect(303, '/sessions');
  });

  app.get('/signed-out', (_req, res) => {
    render(res, pages.signedOut({ polarLabel: polar.label }));
  });

  app.get('/audit', async (_req, res) => {
    render(
      res,
      pages.audit({
        polarLabel: polar.label,
        events: auditEvents,
        settled: settledEvents,
        outbox: { description: outbox.description, counts: await outbox.counts() },
        limit: AUDIT_LIMIT,
      }),
    );
  });

  // Prometheus scrapes this (see README.md, "Metrics").
  app.get('/metrics', metricsHandler);

  app.use((_req, res) => {
    renderError(res, 404, 'Not found', 'There is no page here.');
  });

  /** @type {import('express').ErrorRequestHandler} */
  const onError = (err, req, res, next) => {
    if (res.headersSent) return next(err);
    // PolarLogoutError messages are written to be shown; other errors (a store failing...) are not.
    const known = err instanceof PolarLogoutError;
    log(`request failed: ${known ? `${err.name} ${err.code}` : err instanceof Error ? err.name : typeof err}`);
    const status = known ? err.status : 500;
    const message = known ? err.message : 'Something went wrong. Please try again.';
    if (req.accepts(['html', 'json']) === 'json') {
      res.status(status).json({ error: known ? err.code : 'internal_error', message });
      return;
    }
    renderError(res, status, known && err.code === 'REVOCATION_FAILED' ? 'Sign-out failed' : 'Error', message);
  };
  app.use(onError);

  return {
    app,
    config,
    /** The stand-in, when no real Polar is configured. */
    standin,
    sessionStore,
    /** The revocation outbox handed to polarLogout(): `outbox.outbox` is the library's object. */
    outbox,
    cookieName: SESSION_COOKIE,
    redirectUri,
    polarLabel: polar.label,
    /** Logout events, newest first. */
    auditEvents: /** @type {readonly import('express-polar-logout').LogoutEvent[]} */ (auditEvents),
    /** Queued tokens' outcomes from the outbox's onSettled hook, newest first. */
    settledEvents: /** @type {readonly import('express-polar-logout').OutboxSettledEvent[]} */ (settledEvents),
    /** Stops the outbox (calls in flight finish; in memory, tokens still queued are lost), then the rest. */
    async close() {
      for (const handler of logouts) handler.close();
      await outbox.close();
      revoker.close();
      await sessionStore.close();
      await standin?.close();
    },
  };
}

/** @typedef {Awaited<ReturnType<typeof createExampleApp>>} ExampleApp */

module.exports = { createExampleApp, SESSION_COOKIE };
