/** Errors of a revocation outbox's enqueue(); messages carry no token, secret or Redis URL. */

export type RevocationOutboxErrorCode =
  /** Redis could not be reached in time (or bullmq/ioredis are not installed); the token was not queued. */
  | 'OUTBOX_UNAVAILABLE'
  /** close() was called. */
  | 'OUTBOX_CLOSED'
  /** The token is not a non-empty string of at most 8192 characters, or the hint is not a token type. */
  | 'INVALID_TOKEN';

export class RevocationOutboxError extends Error {
  /** Stable machine-readable code. */
  readonly code: RevocationOutboxErrorCode;

  constructor(code: RevocationOutboxErrorCode, message: string) {
    super(`express-polar-logout: ${message}`);
    this.name = 'RevocationOutboxError';
    this.code = code;
  }
}
