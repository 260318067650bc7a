/**
 * The `rateLimit` option, checked once at construction: `{ requests, perMs, reserve? }`, `false` to turn the
 * budget off, or absent for the default, which is 80 % of Polar's limit for the chosen `server`. With a `baseUrl`
 * (a stand-in, a proxy) there is no default: only the user knows what limit applies there.
 */
import { invalidOption } from '../errors';
import { bucketShape, POLAR_DEFAULT_RATE_LIMITS, type BucketShape } from './rate-budget';
import { integerInRange, isPlainObject } from '../validate';

/** `rateLimit: { requests, perMs }`: at most `requests` calls to Polar in any window of `perMs`. */
export interface RateLimitOptions {
  /** Calls allowed per window. */
  requests: number;
  /** The window, in ms (Polar's is 60000). */
  perMs: number;
  /**
   * Calls the outbox's drain leaves for live logouts (the drain stops when fewer remain in the bucket).
   * Default: half the burst, i.e. `ceil(requests / 20) / 2` rounded down.
   */
  reserve?: number;
}

const RATE_LIMIT_KEYS = ['requests', 'perMs', 'reserve'];

export function resolveRateLimit(value: unknown, server: unknown, baseUrl: unknown): BucketShape | undefined {
  if (value === false) return undefined;
  if (value === undefined) {
    if (baseUrl !== undefined) return undefined;
    const limits = POLAR_DEFAULT_RATE_LIMITS[server === 'sandbox' ? 'sandbox' : 'production'];
    return bucketShape(limits.requests, limits.perMs);
  }
  if (!isPlainObject(value)) {
    throw invalidOption('rateLimit', 'must be { requests, perMs } (e.g. { requests: 400, perMs: 60000 }) or false.');
  }
  for (const key of Object.keys(value)) {
    if (!RATE_LIMIT_KEYS.includes(key)) {
      throw invalidOption(`rateLimit.${key}`, `is not a rateLimit field. Known fields: ${RATE_LIMIT_KEYS.join(', ')}.`);
    }
  }
  const { requests, perMs, reserve } = value;
  const shape = bucketShape(
    integerInRange(requests, 'rateLimit.requests', 1, 1_000_000),
    integerInRange(perMs, 'rateLimit.perMs', 100, 86_400_000),
  );
  if (reserve === undefined) return shape;
  return { ...shape, reserve: integerInRange(reserve, 'rateLimit.reserve', 0, shape.capacity - 1) };
}
