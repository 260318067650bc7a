/** The shared option checks: each message names the option and says what is expected. */
import {
  integerInRange,
  oneOf,
  optionalFunction,
  optionalInteger,
  rejectUnknownKeys,
  requireNonEmptyString,
  requireObject,
} from '../lib/validate';

describe('option validators', () => {
  it('refuses a non-object, an array and null, showing the call', () => {
    for (const value of [undefined, null, [], 'x']) {
      expect(() => requireObject(value, 'f({ a })')).toThrow('`options` must be an object, as in f({ a }).');
    }
    expect(() => requireObject({}, 'f({ a })')).not.toThrow();
  });

  it('names an unknown key and lists the known ones', () => {
    expect(() => rejectUnknownKeys({ a: 1, typo: 2 }, ['a', 'b'], 'f')).toThrow(
      '`typo` is not an option of f(). Known options: a, b.',
    );
  });

  it('checks integers in range, with the unit when given, and falls back only when absent', () => {
    expect(integerInRange(5, 'n', 1, 10)).toBe(5);
    expect(() => integerInRange(1.5, 'n', 1, 10)).toThrow('`n` must be an integer from 1 to 10.');
    expect(() => integerInRange('5', 'n', 1, 10, 'ms')).toThrow('`n` must be an integer from 1 to 10 (ms).');
    expect(optionalInteger(undefined, 'n', 3, 1, 10)).toBe(3);
    expect(() => optionalInteger(null, 'n', 3, 1, 10)).toThrow('`n` must be an integer from 1 to 10.');
    expect(() => optionalInteger(11, 'n', 3, 1, 10)).toThrow('`n` must be an integer from 1 to 10.');
  });

  it('checks strings, choices and functions', () => {
    expect(() => requireNonEmptyString('  ', 's', 'a hint')).toThrow(
      '`s` is required and must be a non-empty string (a hint).',
    );
    expect(oneOf(undefined, 'o', ['a', 'b'] as const, 'a')).toBe('a');
    expect(() => oneOf('c', 'o', ['a', 'b'] as const, 'a')).toThrow("`o` must be one of 'a', 'b'.");
    expect(() => optionalFunction('x' as unknown as () => void, 'fn')).toThrow('`fn` must be a function.');
    expect(optionalFunction(undefined, 'fn')).toBeUndefined();
  });
});
