// The reference for figure 3b: only the work any parallel logout must do, nothing the library adds. The
// session is loaded (by express-session) and destroyed, both tokens are revoked with two requests under
// Promise.all on an axios instance built with the same settings as lib/revoker.ts, and the user is
// redirected. No guard, redirect check, budget, audit, cookie clearing or error translation, and no retry but
// the one every keep-alive client needs (a connection the server closed as the request went out on it).
import http from 'node:http';
import { Axios } from 'axios';

const formEncode = (value) => encodeURIComponent(value).replace(/%20/g, '+');

/** A minimal logout route; `revoke(token, hint)` is the client under test (see peer-routes.mjs for others). */
export function parallelLogout(revoke) {
  return (req, res, next) => {
    const { accessToken, refreshToken } = req.session;
    Promise.all([revoke(accessToken, 'access_token'), revoke(refreshToken, 'refresh_token')]).then(() => {
      req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/')));
    }, next);
  };
}

/** axios configured as lib/revoker.ts configures it (http: the bench's stand-in is on loopback). */
export function referenceRevoke({ baseUrl, clientId, clientSecret }) {
  const agent = new http.Agent({ keepAlive: true, keepAliveMsecs: 60_000 });
  const client = new Axios({
    adapter: 'http',
    httpAgent: agent,
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
      'Accept-Encoding': 'identity',
      'User-Agent': 'express-polar-logout-bench/reference',
    },
    timeout: 0,
    maxRedirects: 0,
    proxy: false,
    maxContentLength: 64 * 1024,
    decompress: false,
    responseType: 'text',
    transformRequest: [],
    transformResponse: [],
    validateStatus: () => true,
  });
  const url = `${baseUrl}/v1/oauth2/revoke`;
  const credentials = `&client_id=${formEncode(clientId)}&client_secret=${formEncode(clientSecret)}`;
  const send = (token, hint) =>
    client.request({ url, method: 'post', data: `token=${formEncode(token)}&token_type_hint=${hint}${credentials}` });
  const revoke = async (token, hint) => {
    let res;
    try {
      res = await send(token, hint);
    } catch (err) {
      // The keep-alive race every HTTP client meets: the server closed an idle connection as the request went
      // out on it (seen once in 8,000 calls). Sent again once, as any production route must (the library retries).
      if (err?.code !== 'ECONNRESET') throw err;
      res = await send(token, hint);
    }
    // A failed revocation must not look like a logout (the run's checks would catch it too).
    if (res.status !== 200) throw new Error(`revocation answered ${res.status}`);
  };
  return { revoke, close: () => agent.destroy() };
}
