import { PolarLogoutError } from '../../lib/errors';
import { resolveRateLimit } from '../../lib/polar/rate-limit-options';

describe('rateLimit option', () => {
  it('defaults to 80 % of Polar’s limit for the server, and to none with a baseUrl', () => {
    expect(resolveRateLimit(undefined, undefined, undefined)).toMatchObject({ requests: 400, perMs: 60_000 });
    expect(resolveRateLimit(undefined, 'production', undefined)).toMatchObject({ requests: 400, perMs: 60_000 });
    expect(resolveRateLimit(undefined, 'sandbox', undefined)).toMatchObject({ requests: 80, perMs: 60_000 });
    expect(resolveRateLimit(undefined, undefined, 'http://127.0.0.1:1234')).toBeUndefined();
    expect(resolveRateLimit(false, 'production', undefined)).toBeUndefined();
  });

  it('takes requests, perMs and a reserve below the burst', () => {
    expect(resolveRateLimit({ requests: 3000, perMs: 60_000, reserve: 40 }, undefined, 'http://x')).toMatchObject({
      requests: 3000,
      perMs: 60_000,
      capacity: 150,
      reserve: 40,
    });
  });

  it.each([
    [true, /`rateLimit` must be \{ requests, perMs \}/],
    [{ requests: 0, perMs: 1000 }, /`rateLimit.requests` must be an integer from 1/],
    [{ requests: 10, perMs: 1.5 }, /`rateLimit.perMs` must be an integer/],
    [{ requests: 10 }, /`rateLimit.perMs` must be an integer/],
    [{ requests: 400, perMs: 60_000, reserve: 20 }, /`rateLimit.reserve` must be an integer from 0 to 19/],
    [{ requests: 400, perMs: 60_000, burst: 2 }, /`rateLimit.burst` is not a rateLimit field/],
  ])('refuses %j at construction, naming the field', (value, message) => {
    expect(() => resolveRateLimit(value, undefined, undefined)).toThrow(PolarLogoutError);
    expect(() => resolveRateLimit(value, undefined, undefined)).toThrow(message);
  });
});
