/**
 * The generic option checks shared by every factory (polarLogout, createPolarRevoker, createRevocationOutbox,
 * guardSessionStore, the tombstone stores). Options also come from JavaScript callers, so they are checked as
 * values rather than trusted as types. Each message names the option and says what is expected.
 */
import { invalidOption } from './errors';

/** Any object (arrays included). */
export function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

/** An object that is not an array: an options bag. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return isObject(value) && !Array.isArray(value);
}

/** Refuses anything but an options bag; `usage` shows a call, as in `polarLogout({ clientId, clientSecret })`. */
export function requireObject(options: unknown, usage: string): asserts options is Record<string, unknown> {
  if (!isPlainObject(options)) throw invalidOption('options', `must be an object, as in ${usage}.`);
}

/** Rejects options this library does not know: a misspelt option must not silently fall back to a default. */
export function rejectUnknownKeys(options: object, known: readonly string[], factory: string): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw invalidOption(key, `is not an option of ${factory}(). Known options: ${known.join(', ')}.`);
    }
  }
}

export function requireNonEmptyString(value: unknown, option: string, hint: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw invalidOption(option, `is required and must be a non-empty string (${hint}).`);
  }
  return value;
}

/** An integer from `min` to `max`; `unit`, when given, is named in the message (e.g. "ms"). */
export function integerInRange(value: unknown, option: string, min: number, max: number, unit?: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidOption(option, `must be an integer from ${min} to ${max}${unit === undefined ? '' : ` (${unit})`}.`);
  }
  return value;
}

/** `fallback` when absent, else an integer from `min` to `max`. */
export function optionalInteger(value: unknown, option: string, fallback: number, min: number, max: number): number {
  return value === undefined ? fallback : integerInRange(value, option, min, max);
}

/** `fallback` when absent, else one of `allowed`. */
export function oneOf<T extends string>(value: unknown, option: string, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidOption(option, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}.`);
  }
  return value as T;
}

export function optionalFunction<F extends (...args: never[]) => unknown>(
  value: F | undefined,
  option: string,
): F | undefined {
  if (value !== undefined && typeof value !== 'function') throw invalidOption(option, 'must be a function.');
  return value;
}
