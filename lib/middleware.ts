/**
 * polarLogout(): guard, read tokens, revoke both in parallel, tear the session down, audit, answer.
 * Everything that can be decided from the options is decided here, once; the handler only runs the line.
 */
import { performance } from 'node:perf_hooks';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import createDebug from 'debug';
import { buildLogoutEvent, hashSessionId, runAuditHook } from './audit';
import { PolarLogoutError } from './errors';
import { createGuard } from './guard';
import { createFailureHandoff } from './handoff';
import { resolveLogoutConfig } from './options';
import { createRedirectResolver } from './redirect';
import { buildRevoker } from './revoker';
import { isTombstoneWriteError } from './session-guard';
import { cookieAttributesOf, clearSessionCookie, destroySession, sessionOf } from './teardown';
import { normaliseTokens, readSessionTokens, type NormalisedTokens } from './tokens';
import type { LogoutEvent, PolarLogoutOptions, RevocationResult } from './types';

const debug = createDebug('express-polar-logout');

type LogoutFailure = Exclude<NonNullable<LogoutEvent['error']>['code'], 'TOMBSTONE_FAILED'>;

const FAILURE_MESSAGES: Record<LogoutFailure, string> = {
  REVOCATION_FAILED: 'Polar did not confirm the token revocation; the session was kept so the user can try again.',
  SESSION_DESTROY_FAILED:
    'The session store failed to destroy the session; the user is not logged out. Check the store.',
};

export interface PolarLogoutHandler extends RequestHandler {
  /** Closes the keep-alive connections to Polar (for graceful shutdown and tests). */
  close(): void;
}

export function polarLogout<Req extends Request = Request>(options: PolarLogoutOptions<Req>): PolarLogoutHandler {
  const config = resolveLogoutConfig(options);
  const revoker = buildRevoker(config);
  const guard = createGuard(config.methods, config.allowedRedirectOrigins);
  const resolveRedirect = createRedirectResolver(
    config.redirectTo,
    config.returnToParam,
    config.allowedRedirectOrigins,
  );
  const getTokens = config.getTokens ?? (readSessionTokens as (req: Req) => ReturnType<typeof readSessionTokens>);
  const { outbox, onLogout, onRevocationFailure, cookieName, timeoutMs } = config;

  const handOffFailures = outbox ? createFailureHandoff(outbox, timeoutMs) : undefined;
  const needsSessionIdHash = onLogout !== undefined || outbox !== undefined;

  async function logout(req: Req, res: Response, next: NextFunction): Promise<void> {
    const session = sessionOf(req);
    if (!session) {
      next(
        new PolarLogoutError(
          'SESSION_UNAVAILABLE',
          'req.session is missing or has no destroy(): mount express-session before polarLogout().',
        ),
      );
      return;
    }
    const startedAt = performance.now();
    const startedAtMs = Date.now();
    // Only the audit event and the outbox use the hash: without either, a logout does not compute it.
    const sessionIdHash = needsSessionIdHash ? hashSessionId((req as { sessionID?: unknown }).sessionID) : undefined;

    let tokens: NormalisedTokens;
    try {
      tokens = normaliseTokens(await getTokens(req));
    } catch (err) {
      debug('getTokens failed: %s', err instanceof Error ? err.name : typeof err);
      next(
        new PolarLogoutError(
          'GET_TOKENS_FAILED',
          'getTokens() threw or rejected; the session was kept. Run with DEBUG=express-polar-logout for details.',
        ),
      );
      return;
    }
    const redirectTo = resolveRedirect(req);
    const revocation = await revoker.revoke(tokens);
    const failed = revocation.accessToken.status === 'failed' || revocation.refreshToken.status === 'failed';

    /**
     * Audits the attempt, then answers: success, or the failure to next() with the session kept as it is.
     * `tombstoneFailed`: logged out, but the guard could not record the tombstone: success, and said in the event.
     */
    const finish = async (failure?: LogoutFailure, tombstoneFailed = false): Promise<void> => {
      // Without a hook nobody reads the event: a plain logout does not build it.
      if (onLogout) {
        const event = buildLogoutEvent(req, {
          startedAt,
          startedAtMs,
          revocation,
          redirectTo,
          sessionDestroyed: failure === undefined,
          sessionIdHash,
          ...(failure && { error: { code: failure } }),
          ...(tombstoneFailed && { error: { code: 'TOMBSTONE_FAILED' as const } }),
        });
        await runAuditHook(onLogout, event, req, timeoutMs);
      }
      if (!failure) return answer(req, res, redirectTo, revocation);
      res.setHeader('Cache-Control', 'no-store');
      next(new PolarLogoutError(failure, FAILURE_MESSAGES[failure]));
    };

    if (failed && onRevocationFailure === 'fail') return finish('REVOCATION_FAILED');
    if (failed && handOffFailures) await handOffFailures(tokens, revocation, sessionIdHash);

    const cookie = cookieAttributesOf(session);
    let tombstoneFailed = false;
    try {
      await destroySession(session);
    } catch (err) {
      // guardSessionStore deleted the session but has no tombstone for it: logged out all the same.
      tombstoneFailed = isTombstoneWriteError(err);
      if (!tombstoneFailed) {
        debug('the session store failed to destroy the session: %s', err instanceof Error ? err.name : typeof err);
        return finish('SESSION_DESTROY_FAILED');
      }
    }
    clearSessionCookie(res, cookieName, cookie);
    return finish(undefined, tombstoneFailed);
  }

  const handler = ((req: Request, res: Response, next: NextFunction): void => {
    const verdict = guard.check(req);
    if (verdict !== 'allow') return guard.refuse(verdict, req, res);
    logout(req as Req, res, next).catch(next);
  }) as PolarLogoutHandler;
  handler.close = () => revoker.close();
  return handler;
}

/** 303 to the target for browsers; JSON for clients that prefer it (fetch with Accept: application/json). */
function answer(req: Request, res: Response, redirectTo: string, revocation: RevocationResult): void {
  if (req.accepts(['html', 'json']) === 'json') {
    res.status(200).json({
      loggedOut: true,
      redirectTo,
      revocation: { accessToken: revocation.accessToken.status, refreshToken: revocation.refreshToken.status },
    });
    return;
  }
  res.redirect(303, redirectTo);
}
