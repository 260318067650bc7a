/**
 * The audit trail: one event per logout attempt, built from what happened and nothing secret (the
 * session id is hashed, tokens never enter the event), handed to the app's onLogout hook. A failing or
 * slow hook never changes the logout: it is bounded in time and its errors go to `debug` only.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Request } from 'express';
import createDebug from 'debug';
import type { LogoutEvent, RevocationResult } from './types';

const debug = createDebug('express-polar-logout:audit');

/** First 16 hex characters of SHA-256(session id): enough to correlate events, useless to hijack a session. */
export function hashSessionId(sessionId: unknown): string | undefined {
  if (typeof sessionId !== 'string' || sessionId === '') return undefined;
  return createHash('sha256').update(sessionId).digest('hex').slice(0, 16);
}

export interface EventFacts {
  startedAt: number;
  startedAtMs: number;
  revocation: RevocationResult;
  redirectTo: string;
  sessionDestroyed: boolean;
  sessionIdHash: string | undefined;
  error?: LogoutEvent['error'];
}

export function buildLogoutEvent(req: Request, facts: EventFacts): LogoutEvent {
  const event: LogoutEvent = {
    at: new Date(facts.startedAtMs).toISOString(),
    // A missing tombstone is reported, but the session is gone and the answer is a success: logged out.
    loggedOut: facts.sessionDestroyed && (facts.error === undefined || facts.error.code === 'TOMBSTONE_FAILED'),
    sessionDestroyed: facts.sessionDestroyed,
    revocation: facts.revocation,
    redirectTo: facts.redirectTo,
    durationMs: Math.round(performance.now() - facts.startedAt),
    ip: req.ip,
    userAgent: req.get('user-agent'),
    sessionIdHash: facts.sessionIdHash,
  };
  if (facts.error) event.error = facts.error;
  return event;
}

export type AuditHook<Req extends Request> = (event: LogoutEvent, req: Req) => void | Promise<void>;

/** Runs the hook, waiting at most `limitMs`; never throws. */
export async function runAuditHook<Req extends Request>(
  hook: AuditHook<Req>,
  event: LogoutEvent,
  req: Req,
  limitMs: number,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const outcome = await Promise.race([
      Promise.resolve()
        .then(() => hook(event, req))
        .then(() => 'done' as const),
      new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), limitMs);
      }),
    ]);
    if (outcome === 'late') debug('onLogout did not settle within %d ms; answering without waiting for it', limitMs);
  } catch (err) {
    // The app's own error: report its name and message, which are the app's to keep clean.
    debug('onLogout failed: %s', err instanceof Error ? `${err.name}: ${err.message}` : typeof err);
  } finally {
    clearTimeout(timer);
  }
}
