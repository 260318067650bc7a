/**
 * What the diagnostics channels publish: part of the public interface (see the README, "Observability").
 * Nothing secret: no token, no client secret or client id, no session id (only its hash), no user data.
 */
import type { RevocationErrorCode, RevocationResult, TokenTypeHint } from '../types';
import type { OutboxErrorCode, OutboxSettledEvent } from '../outbox/types';

/** Which sessions a logout ends: `'session'` (the current one), `'others'` or `'everywhere'` (polarLogout's `scope`). */
export type LogoutScope = 'session' | 'others' | 'everywhere';

/** How a logout ended: `logged_out`, or the PolarLogoutError code (lower case) it passed to `next()`. */
export type LogoutOutcome =
  | 'logged_out'
  | 'revocation_failed'
  | 'session_destroy_failed'
  | 'get_tokens_failed'
  | 'session_unavailable'
  /** Something else was passed to next() or thrown (a bug, or an error from the app's own code). */
  | 'error';

/**
 * The context object of the `express-polar-logout:logout` TracingChannel. `scope` and `sessionIdHash` are set
 * at `start`; the other fields by `asyncStart`/`asyncEnd`. Treat it as read-only.
 */
export interface LogoutMessage {
  scope: LogoutScope;
  /** First 16 hex characters of SHA-256(session id), as in the audit event; undefined without a session. */
  sessionIdHash: string | undefined;
  outcome: LogoutOutcome;
  /** Per-token outcomes (status, attempts, durationMs, error code and HTTP status, queued); absent when the
   *  logout ended before reaching Polar (no session, getTokens() failed). */
  revocation?: RevocationResult;
  /** From the start of the logout to its end, in ms. */
  durationMs: number;
}

/**
 * The context object of the `express-polar-logout:revoke` TracingChannel: one HTTP call to Polar's revocation
 * endpoint (each attempt, retries included; the outbox's calls too). `tokenType`, `attempt` and `serverAddress`
 * are set at `start`, the rest by `asyncStart`/`asyncEnd`.
 */
export interface RevokeMessage {
  tokenType: TokenTypeHint;
  /** 1 for the first call for this token in this revocation, 2 for the first retry, ... */
  attempt: number;
  /** The host called (`api.polar.sh`, `sandbox-api.polar.sh`, or the configured baseUrl's). */
  serverAddress: string;
  outcome?: 'revoked' | 'failed';
  /** Why the call failed (absent when revoked). */
  code?: RevocationErrorCode;
  /** The HTTP status answered, when there was an answer. */
  httpStatus?: number;
  /** Whether another attempt may succeed. */
  retryable?: boolean;
  /** Duration of this call, in ms. */
  durationMs?: number;
}

/** A message on the `express-polar-logout:outbox` channel: a queued token settled (the onSettled event, plus its age). */
export interface OutboxMessage extends Omit<OutboxSettledEvent, 'error'> {
  error?: { code: OutboxErrorCode; httpStatus?: number };
  /** From queuing to settling, in ms. */
  durationMs: number;
}
