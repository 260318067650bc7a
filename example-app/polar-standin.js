// @ts-check
'use strict';
/**
 * An in-process stand-in for Polar's OAuth 2.0 server, so the example runs with no Polar account.
 *
 * The revocation endpoint (POST /v1/oauth2/revoke) is the library's own stand-in from
 * `express-polar-logout/testing`; this module adds, through its `fallback` option, what signing in needs:
 *
 *   GET  /oauth2/authorize        a consent page (checks client_id, redirect_uri, state, PKCE S256)
 *   POST /oauth2/authorize        the user's decision: redirect back with a code, or with error=access_denied
 *   POST /v1/oauth2/token         authorization_code grant with PKCE verification (client_secret_post or Basic)
 *   GET  /v1/oauth2/userinfo      Bearer; 401 once the token is revoked
 *   POST /v1/oauth2/introspect    RFC 7662, for tests and curious people
 *
 * It listens on 127.0.0.1 only and approves whoever clicks "Allow": never point real credentials at it.
 */
const { createHash, randomBytes, randomUUID, timingSafeEqual } = require('node:crypto');
const express = require('express');
const { startFakePolar } = require('express-polar-logout/testing');
const { DEFAULT_SCOPE } = require('./polar-oauth');

/** Polar's authorization codes live 10 minutes. */
const CODE_TTL_MS = 10 * 60 * 1000;
/** How long the consent page may stay open. */
const REQUEST_TTL_MS = 10 * 60 * 1000;
/** Polar's access tokens: 10 days. */
const ACCESS_TOKEN_TTL_S = 864000;

const PKCE_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
const PKCE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;

/**
 * @typedef {object} StandinUser
 * @property {string} sub
 * @property {string} name
 * @property {string} email
 */

/**
 * @typedef {object} PolarStandinOptions
 * @property {readonly string[]} redirectUris The OAuth client's registered redirect URIs (exact match).
 * @property {StandinUser} [user] Who signs in. Default: a demo user.
 * @property {string} [clientName] Shown on the consent page.
 */

/**
 * @typedef {object} IssuedToken
 * @property {'access_token' | 'refresh_token'} type
 * @property {StandinUser} user
 * @property {string} scope
 * @property {number} iat Epoch seconds.
 * @property {number | undefined} exp Epoch seconds.
 */

/** @param {string} value */
const escapeHtml = (value) =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

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
 * Python's `urllib.parse.unquote`, which Polar (authlib) applies to Basic credentials, as the library's stand-in
 * does: %XX runs become UTF-8, a malformed % stays, and `+` stays `+`.
 * @param {string} value
 */
const unquote = (value) =>
  value.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'));

/** @param {unknown} value */
const str = (value) => (typeof value === 'string' ? value : undefined);

/** @param {PolarStandinOptions} options */
async function startPolarStandin(options) {
  const redirectUris = new Set(options.redirectUris);
  const user = options.user ?? { sub: randomUUID(), name: 'Ada Lovelace', email: 'ada@example.com' };
  const clientName = options.clientName ?? 'express-polar-logout example';

  /** Authorization requests waiting for the user's decision, by id. */
  const pending = new Map();
  /** Authorization codes not yet exchanged. */
  const codes = new Map();
  /** @type {Map<string, IssuedToken>} */
  const issued = new Map();

  /** @type {import('express-polar-logout/testing').FakePolar} */
  let fake;

  /**
   * RFC 6749 §2.3.1: client_secret_post or client_secret_basic.
   * @param {import('express').Request} req
   */
  function clientAuthenticated(req) {
    const header = req.get('authorization');
    if (header?.startsWith('Basic ')) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) return false;
      const id = unquote(decoded.slice(0, colon));
      const secret = unquote(decoded.slice(colon + 1));
      return safeEqual(id, fake.clientId) && safeEqual(secret, fake.clientSecret);
    }
    const body = req.body ?? {};
    return safeEqual(body.client_id, fake.clientId) && safeEqual(body.client_secret, fake.clientSecret);
  }

  /**
   * @param {import('express').Response} res
   * @param {number} status
   * @param {string} error
   * @param {string} [description]
   */
  function oauthError(res, status, error, description) {
    res.set('Cache-Control', 'no-store');
    if (status === 401) res.set('WWW-Authenticate', 'Basic realm="polar-standin"');
    res.status(status).json(description ? { error, error_description: description } : { error });
  }

  /**
   * @param {import('express').Response} res
   * @param {string} redirectUri
   * @param {Record<string, string>} params
   */
  function redirectBack(res, redirectUri, params) {
    const url = new URL(redirectUri);
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    res.redirect(303, url.href);
  }

  /**
   * An error that must not be sent to an unverified redirect_uri (RFC 6749 §4.1.2.1): shown here instead.
   * @param {import('express').Response} res
   * @param {string} message
   */
  function refusePage(res, message) {
    res
      .status(400)
      .type('html')
      .send(page('Authorization refused', `<p>${escapeHtml(message)}</p>`));
  }

  const app = express();
  app.disable('x-powered-by');
  app.use(express.urlencoded({ extended: false, limit: '16kb' }));

  app.get('/oauth2/authorize', (req, res) => {
    const q = req.query;
    const clientId = str(q.client_id);
    const redirectUri = str(q.redirect_uri);
    if (!clientId || !safeEqual(clientId, fake.clientId)) return refusePage(res, 'Unknown client_id.');
    if (!redirectUri || !redirectUris.has(redirectUri)) {
      return refusePage(res, 'redirect_uri is not registered for this client.');
    }
    const state = str(q.state);
    const fail = (/** @type {string} */ error, /** @type {string} */ description) =>
      redirectBack(res, redirectUri, { error, error_description: description, ...(state ? { state } : {}) });
    if (q.response_type !== 'code') return fail('unsupported_response_type', 'response_type must be "code".');
    if (!state) return fail('invalid_request', 'state is required.');
    const codeChallenge = str(q.code_challenge);
    if (q.code_challenge_method !== 'S256' || !codeChallenge || !PKCE_CHALLENGE.test(codeChallenge)) {
      return fail(
        'invalid_request',
        'PKCE is required: code_challenge (43 base64url characters) with code_challenge_method=S256.',
      );
    }
    const scope = str(q.scope) ?? DEFAULT_SCOPE;
    const id = randomBytes(16).toString('base64url');
    pending.set(id, { redirectUri, state, codeChallenge, scope, expiresAt: Date.now() + REQUEST_TTL_MS });
    res.set('Cache-Control', 'no-store');
    res.type('html').send(consentPage(id, clientName, scope, user));
  });

  app.post('/oauth2/authorize', (req, res) => {
    const id = str(req.body?.request);
    const request = id ? pending.get(id) : undefined;
    if (!id || !request || request.expiresAt < Date.now()) {
      return refusePage(res, 'This authorization request is unknown or has expired. Start signing in again.');
    }
    pending.delete(id);
    if (req.body.decision !== 'allow') {
      return redirectBack(res, request.redirectUri, { error: 'access_denied', state: request.state });
    }
    const code = `polar_ac_${randomBytes(24).toString('base64url')}`;
    codes.set(code, { ...request, expiresAt: Date.now() + CODE_TTL_MS });
    redirectBack(res, request.redirectUri, { code, state: request.state });
  });

  app.post('/v1/oauth2/token', (req, res) => {
    if (!req.is('application/x-www-form-urlencoded'))
      return oauthError(res, 400, 'invalid_request', 'Send a form-encoded body.');
    if (!clientAuthenticated(req)) return oauthError(res, 401, 'invalid_client');
    const body = req.body;
    if (body.grant_type !== 'authorization_code') {
      return oauthError(res, 400, 'unsupported_grant_type', 'This stand-in only supports authorization_code.');
    }
    const code = str(body.code);
    const grant = code ? codes.get(code) : undefined;
    if (code) codes.delete(code); // single use, whatever happens next
    if (!grant || grant.expiresAt < Date.now())
      return oauthError(res, 400, 'invalid_grant', 'Unknown, used or expired code.');
    if (body.redirect_uri !== grant.redirectUri)
      return oauthError(res, 400, 'invalid_grant', 'redirect_uri does not match.');
    const verifier = str(body.code_verifier);
    if (!verifier || !PKCE_VERIFIER.test(verifier))
      return oauthError(res, 400, 'invalid_grant', 'code_verifier is missing or malformed.');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    if (!safeEqual(challenge, grant.codeChallenge))
      return oauthError(res, 400, 'invalid_grant', 'PKCE verification failed.');

    const { accessToken, refreshToken } = fake.issueTokens();
    const iat = Math.floor(Date.now() / 1000);
    issued.set(accessToken, { type: 'access_token', user, scope: grant.scope, iat, exp: iat + ACCESS_TOKEN_TTL_S });
    issued.set(refreshToken, { type: 'refresh_token', user, scope: grant.scope, iat, exp: undefined });
    res.set('Cache-Control', 'no-store');
    res.json({
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: ACCESS_TOKEN_TTL_S,
      refresh_token: refreshToken,
      scope: grant.scope,
    });
  });

  app.get('/v1/oauth2/userinfo', (req, res) => {
    const header = req.get('authorization') ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7) : '';
    const info = issued.get(token);
    if (!info || info.type !== 'access_token' || !fake.isActive(token)) {
      res.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      return res.status(401).json({ error: 'invalid_token' });
    }
    res.set('Cache-Control', 'no-store');
    res.json({ sub: info.user.sub, name: info.user.name, email: info.user.email, email_verified: true });
  });

  app.post('/v1/oauth2/introspect', (req, res) => {
    if (!clientAuthenticated(req)) return oauthError(res, 401, 'invalid_client');
    const token = str(req.body?.token) ?? '';
    const info = issued.get(token);
    res.set('Cache-Control', 'no-store');
    if (!info || !fake.isActive(token)) return res.json({ active: false });
    res.json({
      active: true,
      client_id: fake.clientId,
      token_type: info.type,
      scope: info.scope,
      sub: info.user.sub,
      iat: info.iat,
      ...(info.exp === undefined ? {} : { exp: info.exp }),
    });
  });

  app.use((_req, res) => {
    res.status(404).json({ detail: 'Not Found' });
  });

  fake = await startFakePolar({ fallback: app });
  return {
    /** Base URL of the stand-in's API, e.g. http://127.0.0.1:54321. */
    url: fake.url,
    /** Its consent page, the stand-in for https://polar.sh/oauth2/authorize. */
    authorizeUrl: `${fake.url}/oauth2/authorize`,
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    user,
    /** The library's stand-in underneath: isActive(token), calls[], fail(), ... */
    fake,
    close: () => fake.close(),
  };
}

/**
 * @param {string} title
 * @param {string} body trusted HTML
 */
function page(title, body) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Polar stand-in</title>
<link rel="icon" href="data:,">
<style>
body { font: 16px/1.5 system-ui, sans-serif; background: #f4f4f6; color: #111; margin: 0; }
main { max-width: 28rem; margin: 4rem auto; background: #fff; border-radius: 12px; padding: 2rem; box-shadow: 0 2px 12px #0001; }
.note { font-size: .85rem; color: #555; border-top: 1px solid #eee; padding-top: 1rem; margin-top: 1.5rem; }
button { font: inherit; padding: .6rem 1.2rem; border-radius: 8px; border: 1px solid #ccc; background: #fff; cursor: pointer; }
button[value=allow] { background: #0062ff; border-color: #0062ff; color: #fff; }
code { background: #f0f0f3; padding: 0 .25rem; border-radius: 4px; }
</style>
</head>
<body><main>
<h1>${escapeHtml(title)}</h1>
${body}
<p class="note">This is the example app's in-process <strong>Polar stand-in</strong>, not polar.sh.
With <code>POLAR_CLIENT_ID</code> set, real Polar shows its own consent screen here.</p>
</main></body>
</html>`;
}

/**
 * @param {string} id
 * @param {string} clientName
 * @param {string} scope
 * @param {StandinUser} user
 */
function consentPage(id, clientName, scope, user) {
  return page(
    'Authorize access',
    `<p><strong>${escapeHtml(clientName)}</strong> wants to sign you in with Polar as
<strong>${escapeHtml(user.name)}</strong> (${escapeHtml(user.email)}).</p>
<p>Requested scopes: <code>${escapeHtml(scope)}</code></p>
<form method="post" action="/oauth2/authorize">
<input type="hidden" name="request" value="${escapeHtml(id)}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>`,
  );
}

/** @typedef {Awaited<ReturnType<typeof startPolarStandin>>} PolarStandin */

module.exports = { startPolarStandin, ACCESS_TOKEN_TTL_S };
