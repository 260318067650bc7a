import type { Request } from 'express';
import type { TokenPair } from './types';

/** Longer values are not OAuth tokens (Polar's are well under 100 characters); refusing them bounds what we send. */
export const MAX_TOKEN_LENGTH = 8192;

/** ES2024's String.prototype.isWellFormed (Node 20+), not in the ES2022 lib this package compiles against. */
type WellFormedCheck = { isWellFormed(): boolean };

/**
 * A usable token, or undefined: missing, empty, non-string or absurdly long values mean "no such token", and so do
 * strings holding a lone UTF-16 surrogate: no token is one, and encodeURIComponent would throw on them.
 */
export function normaliseToken(value: unknown): string | undefined {
  return typeof value === 'string' &&
    value.length > 0 &&
    value.length <= MAX_TOKEN_LENGTH &&
    (value as unknown as WellFormedCheck).isWellFormed()
    ? value
    : undefined;
}

export interface NormalisedTokens {
  accessToken: string | undefined;
  refreshToken: string | undefined;
}

export function normaliseTokens(pair: TokenPair | null | undefined): NormalisedTokens {
  if (typeof pair !== 'object' || pair === null) return { accessToken: undefined, refreshToken: undefined };
  return { accessToken: normaliseToken(pair.accessToken), refreshToken: normaliseToken(pair.refreshToken) };
}

/** The default getTokens: `req.session.accessToken` and `req.session.refreshToken`. */
export function readSessionTokens(req: Request): TokenPair {
  const session = (req as unknown as { session?: Record<string, unknown> }).session;
  return session ? { accessToken: session.accessToken, refreshToken: session.refreshToken } : {};
}
