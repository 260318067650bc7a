// @ts-check
'use strict';
/**
 * Cross-site request refusal for the example's own state-changing routes ("sign out this device"), by the rule
 * polarLogout() applies to /logout: a request whose Origin is not this site, or that the browser marks
 * `Sec-Fetch-Site: cross-site`, is refused with 403 before anything is read or ended. `Origin: null` passes only
 * when the browser itself says the request is same-origin.
 */

/** Answered to refused requests, worded like polarLogout()'s. */
const MESSAGE = 'Cross-site requests are refused.';

/**
 * @param {import('express').Request} req
 * @returns {boolean}
 */
function isCrossSite(req) {
  const origin = req.headers.origin;
  const fetchSite = req.headers['sec-fetch-site'];
  if (origin === 'null') return fetchSite !== 'same-origin';
  if (origin !== undefined) {
    const host = req.headers.host;
    // Behind a TLS-terminating proxy req.protocol is "http" while the browser says "https": both are us.
    if (!host || (origin !== `https://${host}` && origin !== `${req.protocol}://${host}`)) return true;
  }
  return fetchSite === 'cross-site';
}

/** @type {import('express').RequestHandler} */
function refuseCrossSite(req, res, next) {
  if (!isCrossSite(req)) return next();
  res.set('Cache-Control', 'no-store');
  res.status(403);
  if (req.accepts(['text', 'json']) === 'json') res.json({ error: 'cross_site_request', message: MESSAGE });
  else res.type('text').send(MESSAGE);
}

module.exports = { refuseCrossSite, isCrossSite };
