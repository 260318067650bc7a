/**
 * The first step of a logout: refuse methods that must not log out (405) and cross-site requests (403,
 * logout CSRF) before anything is read, revoked or destroyed.
 */
import type { Request, Response } from 'express';

export type RequestVerdict = 'allow' | 'method-not-allowed' | 'cross-site';

export interface RequestGuard {
  check(req: Request): RequestVerdict;
  /** Answers a refused request; nothing else has been touched. */
  refuse(verdict: Exclude<RequestVerdict, 'allow'>, req: Request, res: Response): void;
}

export function createRequestGuard(methods: readonly string[], trustedOrigins: ReadonlySet<string>): RequestGuard {
  const allowed = new Set(methods);
  const allowHeader = methods.join(', ');

  /** Same origin as the request: its Host, over its own scheme or https (a TLS-terminating proxy
   * makes req.protocol "http" while the browser says "https"; an https origin on our own host is us). */
  function isOwnOrigin(origin: string, req: Request): boolean {
    const host = req.headers.host;
    if (!host) return false;
    return origin === `https://${host}` || origin === `${req.protocol}://${host}`;
  }

  function isCrossSite(req: Request): boolean {
    const origin = req.headers.origin;
    const fetchSite = req.headers['sec-fetch-site'];
    if (origin === 'null') {
      // Browsers send "null" for opaque origins (sandboxed frames, data: URLs, cross-site redirects) and also for
      // same-origin form posts under `Referrer-Policy: no-referrer` (helmet's default). Sec-Fetch-Site cannot be
      // set by page scripts, so "null" passes only when the browser itself says the request is same-origin.
      return fetchSite !== 'same-origin';
    }
    if (origin !== undefined) {
      if (trustedOrigins.has(origin)) return false;
      if (!isOwnOrigin(origin, req)) return true;
    }
    return fetchSite === 'cross-site';
  }

  return {
    check(req) {
      if (!allowed.has(req.method)) return 'method-not-allowed';
      return isCrossSite(req) ? 'cross-site' : 'allow';
    },
    refuse(verdict, req, res) {
      const [status, error, message] =
        verdict === 'method-not-allowed'
          ? [405, 'method_not_allowed', `Logout accepts ${allowHeader} only.`]
          : [403, 'cross_site_request', 'Cross-site logout requests are refused.'];
      if (verdict === 'method-not-allowed') res.setHeader('Allow', allowHeader);
      res.setHeader('Cache-Control', 'no-store');
      res.status(status);
      if (req.accepts(['text', 'json']) === 'json') res.json({ error, message });
      else res.type('text').send(message);
    },
  };
}
