/**
 * Key names. Every key this package writes starts with one prefix that holds a Redis Cluster hash tag
 * (`{polar-logout}` by default): all of them hash to one slot, so multi-key scripts (BullMQ's, the rate
 * budget's) never cross slots. The price, one slot for this package's keys, is small: they are few and short-lived.
 */
import { invalidOption } from '../errors';

export const DEFAULT_PREFIX = '{polar-logout}';

/** The hash tag of a key as Redis Cluster computes it: the first `{…}` with something inside, or undefined. */
export function hashTagOf(key: string): string | undefined {
  const open = key.indexOf('{');
  if (open === -1) return undefined;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return undefined;
  return key.slice(open + 1, close);
}

/** Checks a configurable prefix: a string without spaces, with a hash tag when the client is a cluster. */
export function resolvePrefix(value: unknown, option: string, cluster: boolean): string {
  if (value === undefined) return DEFAULT_PREFIX;
  if (typeof value !== 'string' || value === '' || /\s/.test(value)) {
    throw invalidOption(option, `must be a non-empty string without spaces, such as '${DEFAULT_PREFIX}'.`);
  }
  if (cluster && hashTagOf(value) === undefined) {
    throw invalidOption(
      option,
      `must contain a hash tag such as '{${value.replace(/[{}:]/g, '') || 'polar-logout'}}' on a Redis Cluster, ` +
        'so that keys used together live in one slot (otherwise Redis answers CROSSSLOT).',
    );
  }
  return value;
}
