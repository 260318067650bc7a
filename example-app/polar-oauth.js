// @ts-check
'use strict';
/**
 * Signing in with Polar: the OAuth 2.0 authorization code flow with PKCE (S256) and `state`, the code
 * exchange at Polar's token endpoint, and the user's identity from its userinfo endpoint. This is the part
 * of a real app that express-polar-logout does not do; it uses Node's fetch and nothing else.
 */
const { createHash, randomBytes } = require('node:crypto');

/** Polar's endpoints. The consent screen lives on the dashboard's host, the API on its own. */
const POLAR_SERVERS = {
  production: { authorizeUrl: 'https://polar.sh/oauth2/authorize', apiUrl: 'https://api.polar.sh' },
  sandbox: { authorizeUrl: 'https://sandbox.polar.sh/oauth2/authorize', apiUrl: 'https://sandbox-api.polar.sh' },
};

/** What the example asks for: who the user is, nothing else. */
const DEFAULT_SCOPE = 'openid profile email';

/** Thrown when signing in fails; `message` is safe to show (no token, code or secret in it). */
class OAuthError extends Error {
  /**
   * @param {'POLAR_UNREACHABLE' | 'TOKEN_REJECTED' | 'USERINFO_REJECTED' | 'UNEXPECTED_RESPONSE'} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'OAuthError';
    this.code = code;
  }
}

/**
 * @typedef {object} PolarOAuthOptions
 * @property {string} clientId
 * @property {string} clientSecret
 * @property {string} authorizeUrl Polar's authorization page.
 * @property {string} apiUrl Polar's API origin (token and userinfo endpoints).
 * @property {string} redirectUri Must be registered on the OAuth client at Polar.
 * @property {string} [scope]
 * @property {number} [timeoutMs] Per request to Polar. Default 5000.
 */

/**
 * @typedef {object} PolarTokens
 * @property {string} accessToken
 * @property {string | undefined} refreshToken
 * @property {number | undefined} expiresAt Epoch ms.
 */

/**
 * @typedef {object} PolarUser
 * @property {string} sub Polar's id for the user.
 * @property {string | undefined} name
 * @property {string | undefined} email
 */

/** @param {Buffer} bytes */
const base64url = (bytes) => bytes.toString('base64url');

/** RFC 7636: a 43-character verifier (32 random bytes) and its S256 challenge. */
function createPkcePair() {
  const codeVerifier = base64url(randomBytes(32));
  const codeChallenge = base64url(createHash('sha256').update(codeVerifier).digest());
  return { codeVerifier, codeChallenge };
}

/** @param {unknown} value */
const optionalString = (value) => (typeof value === 'string' && value !== '' ? value : undefined);

/** @param {PolarOAuthOptions} options */
function createPolarOAuthClient(options) {
  const { clientId, clientSecret, authorizeUrl, apiUrl, redirectUri } = options;
  const scope = options.scope ?? DEFAULT_SCOPE;
  const timeoutMs = options.timeoutMs ?? 5000;

  /**
   * @param {string} what e.g. "the token endpoint"
   * @param {string} url
   * @param {RequestInit} init
   * @returns {Promise<{ status: number, ok: boolean, body: Record<string, unknown> | undefined }>}
   */
  async function call(what, url, init) {
    let res;
    try {
      res = await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const reason =
        err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : 'network error';
      throw new OAuthError('POLAR_UNREACHABLE', `Could not reach Polar's ${what} (${reason}).`);
    }
    let body;
    try {
      const parsed = /** @type {unknown} */ (await res.json());
      body =
        typeof parsed === 'object' && parsed !== null ? /** @type {Record<string, unknown>} */ (parsed) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.status, ok: res.ok, body };
  }

  return {
    /**
     * Where to send the browser, and what to remember in the session until it comes back.
     * @returns {{ url: string, state: string, codeVerifier: string }}
     */
    startAuthorization() {
      const state = base64url(randomBytes(24));
      const { codeVerifier, codeChallenge } = createPkcePair();
      const url = new URL(authorizeUrl);
      url.search = new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: redirectUri,
        scope,
        state,
        code_challenge: codeChallenge,
        code_challenge_method: 'S256',
      }).toString();
      return { url: url.href, state, codeVerifier };
    },

    /**
     * Exchanges the authorization code for tokens (client_secret_post, as Polar documents).
     * @param {string} code
     * @param {string} codeVerifier
     * @returns {Promise<PolarTokens>}
     */
    async exchangeCode(code, codeVerifier) {
      const { status, ok, body } = await call('token endpoint', `${apiUrl}/v1/oauth2/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: redirectUri,
          code_verifier: codeVerifier,
          client_id: clientId,
          client_secret: clientSecret,
        }),
      });
      if (!ok) {
        const error = optionalString(body?.error) ?? 'no error code';
        throw new OAuthError('TOKEN_REJECTED', `Polar refused the sign-in code (HTTP ${status}, ${error}).`);
      }
      const accessToken = optionalString(body?.access_token);
      if (!accessToken)
        throw new OAuthError('UNEXPECTED_RESPONSE', "Polar's token endpoint answered without an access token.");
      const expiresIn = body?.expires_in;
      return {
        accessToken,
        refreshToken: optionalString(body?.refresh_token),
        expiresAt: typeof expiresIn === 'number' && expiresIn > 0 ? Date.now() + expiresIn * 1000 : undefined,
      };
    },

    /**
     * @param {string} accessToken
     * @returns {Promise<PolarUser>}
     */
    async userinfo(accessToken) {
      const { status, ok, body } = await call('userinfo endpoint', `${apiUrl}/v1/oauth2/userinfo`, {
        headers: { Authorization: `Bearer ${accessToken}`, Accept: 'application/json' },
      });
      if (!ok) throw new OAuthError('USERINFO_REJECTED', `Polar refused to say who signed in (HTTP ${status}).`);
      const sub = optionalString(body?.sub);
      if (!sub) throw new OAuthError('UNEXPECTED_RESPONSE', "Polar's userinfo endpoint answered without a subject.");
      return { sub, name: optionalString(body?.name), email: optionalString(body?.email) };
    },
  };
}

/** @typedef {ReturnType<typeof createPolarOAuthClient>} PolarOAuthClient */

module.exports = { createPolarOAuthClient, createPkcePair, OAuthError, POLAR_SERVERS, DEFAULT_SCOPE };
