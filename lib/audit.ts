/**
 * The audit trail: one event per logout attempt, built from what happened and nothing secret (the
 * session id is hashed, tokens never enter the event), handed to the app's onLogout hook. A failing or
 * slow hook never changes the logout: it is bounded in time and its errors go to `debug` only.
 *
 * Who logged out is the app's to say: the event carries no session data (audit logs go to disk, and the
 * session may hold anything), and the hook reads `req.session`, a frozen copy of the data without the cookie
 * and the tokens, in place only while the hook runs, so express-session never sees it to save it.
 */
import { performance } from 'node:perf_hooks';
import type { Request } from 'express';
import createDebug from 'debug';
import type { LogoutEvent, RevocationResult } from './types';
import { describeAppError, settleWithin } from './util/settle';
import { sha256 } from './util/sha256';

const debug = createDebug('express-polar-logout:audit');

/** First 16 hex characters of SHA-256(session id): enough to correlate events, useless to hijack a session. */
export function hashSessionId(sessionId: unknown): string | undefined {
  if (typeof sessionId !== 'string' || sessionId === '') return undefined;
  return sha256(sessionId, 'hex').slice(0, 16);
}

export interface EventFacts {
  startedAt: number;
  startedAtMs: number;
  revocation: RevocationResult;
  redirectTo: string;
  sessionDestroyed: boolean;
  sessionIdHash: string | undefined;
  error?: LogoutEvent['error'];
  scope: LogoutEvent['scope'];
  sessions?: LogoutEvent['sessions'];
}

export function buildLogoutEvent(req: Request, facts: EventFacts): LogoutEvent {
  const event: LogoutEvent = {
    at: new Date(facts.startedAtMs).toISOString(),
    // A missing tombstone is reported, but the session is gone and the answer is a success: logged out.
    loggedOut:
      facts.sessionDestroyed &&
      (facts.error === undefined ||
        facts.error.code === 'TOMBSTONE_FAILED' ||
        facts.error.code === 'SESSION_INDEX_FAILED'),
    sessionDestroyed: facts.sessionDestroyed,
    revocation: facts.revocation,
    redirectTo: facts.redirectTo,
    durationMs: Math.round(performance.now() - facts.startedAt),
    ip: req.ip,
    userAgent: req.get('user-agent'),
    sessionIdHash: facts.sessionIdHash,
    scope: facts.scope,
  };
  if (facts.sessions) event.sessions = facts.sessions;
  if (facts.error) event.error = facts.error;
  return event;
}

export type AuditHook<Req extends Request> = (event: LogoutEvent, req: Req) => void | Promise<void>;

/** Session fields that never reach the hook: express-session's cookie, and the default getTokens' fields. */
const HIDDEN_FIELDS = new Set(['cookie', 'accessToken', 'refreshToken']);

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * What the hook sees as `req.session`: the session data as a store keeps it (a JSON copy), without the
 * hidden fields and without any value equal to a token getTokens returned, wherever the app stored it.
 */
export function sessionSnapshot(session: object, tokens: readonly (string | undefined)[]): Readonly<object> {
  const secrets = new Set(tokens.filter((t): t is string => t !== undefined));
  const data: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(session)) if (!HIDDEN_FIELDS.has(key)) data[key] = value;
  try {
    const json = JSON.stringify(data, (_key, value: unknown) =>
      typeof value === 'string' && secrets.has(value) ? undefined : value,
    );
    return deepFreeze(JSON.parse(json) as object);
  } catch {
    // Data a store could not hold either (a cycle, a BigInt): the hook gets nothing rather than a partial view.
    debug('the session data could not be copied for onLogout; the hook sees an empty session');
    return Object.freeze({});
  }
}

/**
 * Runs the hook, waiting at most `limitMs`; never throws. `session` is in place as `req.session` until the hook
 * settles or the limit passes; then req.session is put back as it was (gone after a destroy).
 */
export async function runAuditHook<Req extends Request>(
  hook: AuditHook<Req>,
  event: LogoutEvent,
  req: Req,
  limitMs: number,
  session: Readonly<object>,
): Promise<void> {
  const holder = req as { session?: unknown };
  const hadSession = Object.prototype.hasOwnProperty.call(holder, 'session');
  const original = holder.session;
  holder.session = session;
  try {
    const outcome = await settleWithin(() => hook(event, req), limitMs);
    if (outcome.kind === 'late')
      debug('onLogout did not settle within %d ms; answering without waiting for it', limitMs);
    // The app's own error: report its name and message, which are the app's to keep clean.
    if (outcome.kind === 'failed') debug('onLogout failed: %s', describeAppError(outcome.error));
  } finally {
    if (hadSession) holder.session = original;
    else delete holder.session;
  }
}
