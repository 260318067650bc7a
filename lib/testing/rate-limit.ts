/**
 * The stand-in's model of Polar's rate limit. Polar (asgi-ratelimit's Redis backend, `server/polar/rate_limit.py`)
 * counts an unauthenticated caller by IP address in fixed windows that start at the caller's first request: a
 * window allows `requests` calls, refused calls do not count, and a refusal is a 429 that may or may not carry
 * `Retry-After` (Polar's does not promise one).
 */

/** `startFakePolar({ rateLimit })`: answer 429 beyond `requests` per `perMs` per client IP, as Polar does. */
export interface FakeRateLimitOptions {
  requests: number;
  perMs: number;
  /** Send `Retry-After` (whole seconds until the window ends) with each 429. Default `true`. */
  retryAfter?: boolean;
}

export interface FakeRateLimiter {
  /** Counts a call from `ip`: `null` when allowed, else the seconds until its window ends. */
  admit(ip: string, now?: number): number | null;
  /** Calls refused with 429 so far. */
  readonly rejected: number;
  readonly retryAfter: boolean;
  /** Zeroes `rejected`; the windows go on. */
  resetCount(): void;
}

export function validateFakeRateLimit(options: FakeRateLimitOptions): void {
  const { requests, perMs, retryAfter } = options;
  if (!Number.isInteger(requests) || requests < 1) throw new TypeError('rateLimit.requests must be an integer ≥ 1');
  if (!Number.isInteger(perMs) || perMs < 1) throw new TypeError('rateLimit.perMs must be an integer ≥ 1');
  if (retryAfter !== undefined && typeof retryAfter !== 'boolean') {
    throw new TypeError('rateLimit.retryAfter must be a boolean');
  }
}

export function createFakeRateLimiter(options: FakeRateLimitOptions): FakeRateLimiter {
  validateFakeRateLimit(options);
  const windows = new Map<string, { endsAt: number; left: number }>();
  let rejected = 0;
  return {
    admit(ip, now = Date.now()) {
      let window = windows.get(ip);
      if (!window || now >= window.endsAt) {
        window = { endsAt: now + options.perMs, left: options.requests };
        windows.set(ip, window);
      }
      if (window.left < 1) {
        rejected += 1;
        return Math.max(1, Math.ceil((window.endsAt - now) / 1000));
      }
      window.left -= 1;
      return null;
    },
    get rejected() {
      return rejected;
    },
    retryAfter: options.retryAfter ?? true,
    resetCount() {
      rejected = 0;
    },
  };
}
