/**
 * Every error this library creates is a PolarLogoutError with a stable `code`, so callers branch on codes,
 * never on messages. Messages say what went wrong and what to do; they never carry a token, the client
 * secret or a session id, and no error from a dependency (axios errors hold the request body) is attached.
 */

export type PolarLogoutErrorCode =
  /** An option passed to polarLogout(), createPolarRevoker() or createRevocationOutbox() is invalid. */
  | 'INVALID_OPTION'
  /** An argument of a call is invalid (a `hint` other than 'access_token' or 'refresh_token', a bad per-call option). */
  | 'INVALID_ARGUMENT'
  /** `req.session` is missing or has no destroy(): express-session is not mounted before the handler. */
  | 'SESSION_UNAVAILABLE'
  /** The app's getTokens() threw or rejected; the session was kept. */
  | 'GET_TOKENS_FAILED'
  /** A token could not be revoked at Polar and `onRevocationFailure` is `'fail'`; the session was kept. */
  | 'REVOCATION_FAILED'
  /** The session store failed to destroy the session; the user is not logged out. */
  | 'SESSION_DESTROY_FAILED'
  /** guardSessionStore deleted the session but could not record its tombstone (a store error, not a logout's). */
  | 'TOMBSTONE_WRITE_FAILED'
  /** The session registry's index (Redis) did not answer: list(), logoutUser() or logoutSession() could not run. */
  | 'SESSION_INDEX_FAILED';

const DEFAULT_STATUS: Record<PolarLogoutErrorCode, number> = {
  INVALID_OPTION: 500,
  INVALID_ARGUMENT: 500,
  SESSION_UNAVAILABLE: 500,
  GET_TOKENS_FAILED: 500,
  REVOCATION_FAILED: 502,
  SESSION_DESTROY_FAILED: 500,
  TOMBSTONE_WRITE_FAILED: 500,
  SESSION_INDEX_FAILED: 503,
};

export class PolarLogoutError extends Error {
  /** Stable machine-readable code. */
  readonly code: PolarLogoutErrorCode;
  /** HTTP status an error handler should answer with (Express's default handler reads `status`). */
  readonly status: number;
  /** Same as `status`, for error handlers that read `statusCode`. */
  readonly statusCode: number;
  /** Express's default handler hides the message of 5xx errors unless `expose` is true. */
  readonly expose = false;

  constructor(code: PolarLogoutErrorCode, message: string) {
    super(message);
    this.name = 'PolarLogoutError';
    this.code = code;
    this.status = DEFAULT_STATUS[code];
    this.statusCode = this.status;
  }
}

/** Thrown at construction for a bad option; the message names the option and never echoes a secret. */
export function invalidOption(option: string, problem: string): PolarLogoutError {
  return new PolarLogoutError('INVALID_OPTION', `express-polar-logout: option \`${option}\` ${problem}`);
}
