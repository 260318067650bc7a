/**
 * polarLogout(): guard, read tokens, revoke both in parallel, tear the session down, audit, answer.
 * Everything that can be decided from the options is decided here, once; the handler only runs the line.
 */
import { performance } from 'node:perf_hooks';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import createDebug from 'debug';
import { buildLogoutEvent, hashSessionId, runAuditHook, sessionSnapshot } from './audit';
import { PolarLogoutError, type PolarLogoutErrorCode } from './errors';
import { createRequestGuard } from './request-guard';
import { createFailureHandoff } from './handoff';
import { resolveLogoutConfig } from './options';
import { createRedirectResolver } from './redirect';
import { createLogoutTelemetry, type LogoutMessage } from './telemetry';
import { buildRevoker, isRetryableFailure } from './revoker';
import { isTombstoneWriteError } from './session-guard';
import {
  cookieAttributesOf,
  createCookieClearer,
  destroySession,
  detachSession,
  holdsData,
  sessionCookieOf,
  sessionIdOf,
  sessionOf,
  type DestroyableSession,
} from './teardown';
import { normaliseTokens, readSessionTokens, type NormalisedTokens } from './tokens';
import type { LogoutEvent, PolarLogoutOptions, RevocationResult, VerifyOptions, VerifyResult } from './types';
import { warnOnce } from './warnings';
import { countOutcome, emptySummary } from './sessions/end-sessions';
import { handleOf } from './sessions/keys';
import type { SessionsLogoutSummary } from './sessions/types';

const debug = createDebug('express-polar-logout');

type LogoutFailure = Exclude<NonNullable<LogoutEvent['error']>['code'], 'TOMBSTONE_FAILED'>;

const FAILURE_MESSAGES: Record<LogoutFailure, string> = {
  REVOCATION_FAILED: 'Polar did not confirm the token revocation; the session was kept so the user can try again.',
  SESSION_DESTROY_FAILED:
    'The session store failed to destroy the session; the user is not logged out. Check the store.',
  SESSION_INDEX_FAILED:
    "The session registry's index (Redis) did not answer, so the user's other sessions could not be found; " +
    'nothing was ended. Check its Redis.',
};

export interface PolarLogoutHandler extends RequestHandler {
  /** Closes the keep-alive connections to Polar (for graceful shutdown and tests). */
  close(): void;
  /** Checks clientId, clientSecret and the URL against Polar (see PolarRevoker.verify); never rejects. */
  verify(options?: VerifyOptions): Promise<VerifyResult>;
}

export function polarLogout<Req extends Request = Request>(options: PolarLogoutOptions<Req>): PolarLogoutHandler {
  const config = resolveLogoutConfig(options);
  const revoker = buildRevoker(config);
  const guard = createRequestGuard(config.methods, config.trustedOrigins);
  const resolveRedirect = createRedirectResolver(
    config.redirectTo,
    config.returnToParam,
    config.allowedRedirectOrigins,
  );
  const getTokens = config.getTokens ?? (readSessionTokens as (req: Req) => ReturnType<typeof readSessionTokens>);
  const { outbox, onLogout, onRevocationFailure, cookieName, timeoutMs, clearSiteData, sessions, scope } = config;
  const clearSessionCookie = createCookieClearer(cookieName);
  const sessionsStoreWarning =
    'polarLogout was given `sessions`, but express-session does not use sessions.store: the per-user index sees ' +
    "no session, and a logout cannot end the others. Pass sessions.store as express-session's store.";

  /**
   * Ends the user's other sessions (all but this one: this one follows the usual line, or stays for 'others');
   * undefined when the index could not answer. An anonymous session has no others.
   */
  async function endOthers(req: Request, session: DestroyableSession): Promise<SessionsLogoutSummary | undefined> {
    if (!sessions) return emptySummary();
    if ((req as { sessionStore?: unknown }).sessionStore !== config.sessionsStore) {
      warnOnce('EPL_SESSIONS_STORE', sessionsStoreWarning);
    }
    const userId = sessions.userOf(session);
    if (userId === undefined) return emptySummary();
    const sid = sessionIdOf(req);
    const except = typeof sid === 'string' && sid !== '' ? handleOf(sid) : undefined;
    try {
      return await sessions.end(userId, except, { revoker, outbox, timeoutMs, signal: undefined });
    } catch (err) {
      debug('could not end the other sessions: %s', err instanceof Error ? err.name : typeof err);
      return undefined;
    }
  }
  const cookieNameWarning =
    `A logout request carried no cookie named "${cookieName}" although its session holds data: express-session ` +
    `names its cookie differently, so the logout clears the wrong cookie. Set polarLogout's cookieName to the ` +
    `name given to express-session.`;

  /**
   * Nothing to destroy means nothing stored: a session no cookie of the request names was generated for this
   * request (no cookie, a forged or an expired one), and destroying it would only cost a store call and, with
   * guardSessionStore, a tombstone each time. One holding data is destroyed all the same (the app may have saved
   * it); without any cookie of that name it was loaded through another cookie: cookieName is wrong.
   */
  function isStored(req: Request, session: DestroyableSession): boolean {
    const cookie = sessionCookieOf(req.headers.cookie, cookieName, sessionIdOf(req));
    if (cookie === 'this') return true;
    if (!holdsData(session)) return false;
    if (cookie === 'absent') warnOnce('EPL_COOKIE_NAME', cookieNameWarning);
    return true;
  }

  const handOffFailures = outbox ? createFailureHandoff(outbox, timeoutMs) : undefined;
  const traceLogout = createLogoutTelemetry(scope);

  async function logout(req: Req, res: Response, next: NextFunction, trace?: LogoutMessage): Promise<void> {
    const session = sessionOf(req);
    if (!session) {
      return fail(
        res,
        next,
        'SESSION_UNAVAILABLE',
        'req.session is missing or has no destroy(): mount express-session before polarLogout().',
      );
    }
    const startedAt = performance.now();
    const startedAtMs = Date.now();
    // Only the audit event and the outbox's jobs carry the hash: a logout without a hook computes it only when it
    // hands tokens to the outbox, never on the healthy path.
    const sessionIdHash = onLogout ? hashSessionId(sessionIdOf(req)) : undefined;

    let tokens: NormalisedTokens;
    try {
      tokens = normaliseTokens(await getTokens(req));
    } catch (err) {
      debug('getTokens failed: %s', err instanceof Error ? err.name : typeof err);
      return fail(
        res,
        next,
        'GET_TOKENS_FAILED',
        'getTokens() threw or rejected; the session was kept. Run with DEBUG=express-polar-logout for details.',
      );
    }
    const redirectTo = resolveRedirect(req);
    if (scope === 'others')
      return logoutOthers(req, res, next, session, { startedAt, startedAtMs, sessionIdHash, redirectTo });
    // 'everywhere': the others are ended while this session's tokens are revoked.
    const others = scope === 'everywhere' ? endOthers(req, session) : undefined;
    const revocation = await revoker.revoke(tokens);
    if (trace) trace.revocation = revocation;
    const failed = revocation.accessToken.status === 'failed' || revocation.refreshToken.status === 'failed';
    // 'fail' keeps the session only for failures that may pass: a refusal that will not (INVALID_CLIENT,
    // REJECTED, UNEXPECTED_RESPONSE) would keep the user signed in forever. It logs out and is in the event.
    const mayPass =
      isRetryableFailure(revocation.accessToken.error) || isRetryableFailure(revocation.refreshToken.error);
    // Copied before destroy() removes the session; only the hook reads it.
    const sessionView = onLogout ? sessionSnapshot(session, [tokens.accessToken, tokens.refreshToken]) : undefined;

    /**
     * Audits the attempt, then answers: success, or the failure to next() with the session kept as it is.
     * `tombstoneFailed`: logged out, but the guard could not record the tombstone: success, and said in the event.
     */
    /** Whether this session was in the store and is destroyed now (counted among the sessions ended). */
    let destroyedHere = false;
    const finish = async (failure?: LogoutFailure, tombstoneFailed = false): Promise<void> => {
      let summary: SessionsLogoutSummary | undefined;
      let indexFailed = false;
      if (others) {
        const ended = await others;
        indexFailed = ended === undefined;
        summary = ended ?? emptySummary();
        if (destroyedHere) summary.sessions += 1;
        countOutcome(summary, revocation.accessToken);
        countOutcome(summary, revocation.refreshToken);
      }
      // Without a hook nobody reads the event: a plain logout does not build it.
      if (onLogout) {
        const event = buildLogoutEvent(req, {
          startedAt,
          startedAtMs,
          revocation,
          redirectTo,
          sessionDestroyed: failure === undefined,
          sessionIdHash,
          scope,
          ...(summary && { sessions: summary }),
          ...(failure && { error: { code: failure } }),
          // One error code: other sessions left signed in outweigh this session's missing tombstone.
          ...(tombstoneFailed && { error: { code: 'TOMBSTONE_FAILED' as const } }),
          ...(!failure && indexFailed && { error: { code: 'SESSION_INDEX_FAILED' as const } }),
        });
        await runAuditHook(onLogout, event, req, timeoutMs, sessionView ?? {});
      }
      if (!failure) return answer(req, res, loggedOut(redirectTo, revocation, summary));
      fail(res, next, failure, FAILURE_MESSAGES[failure]);
    };

    if (mayPass && onRevocationFailure === 'fail') return finish('REVOCATION_FAILED');
    if (failed && handOffFailures) {
      await handOffFailures(tokens, revocation, sessionIdHash ?? hashSessionId(sessionIdOf(req)), startedAt);
    }

    const cookie = cookieAttributesOf(session);
    const stored = isStored(req, session);
    let tombstoneFailed = false;
    try {
      if (stored) await destroySession(session);
      else detachSession(req);
      destroyedHere = stored;
    } catch (err) {
      // guardSessionStore deleted the session but has no tombstone for it: logged out all the same.
      tombstoneFailed = isTombstoneWriteError(err);
      destroyedHere = tombstoneFailed;
      if (!tombstoneFailed) {
        debug('the session store failed to destroy the session: %s', err instanceof Error ? err.name : typeof err);
        return finish('SESSION_DESTROY_FAILED');
      }
    }
    clearSessionCookie(res, cookie);
    if (clearSiteData) res.setHeader('Clear-Site-Data', clearSiteData);
    return finish(undefined, tombstoneFailed);
  }

  /** 'others': every session of the user but this one is ended; this one stays signed in, its tokens untouched. */
  async function logoutOthers(
    req: Req,
    res: Response,
    next: NextFunction,
    session: DestroyableSession,
    facts: { startedAt: number; startedAtMs: number; sessionIdHash: string | undefined; redirectTo: string },
  ): Promise<void> {
    const ended = await endOthers(req, session);
    const summary = ended ?? emptySummary();
    const untouched = (): RevocationResult['accessToken'] => ({ status: 'absent', attempts: 0, durationMs: 0 });
    const revocation: RevocationResult = { accessToken: untouched(), refreshToken: untouched() };
    if (onLogout) {
      const event = buildLogoutEvent(req, {
        ...facts,
        revocation,
        sessionDestroyed: false,
        scope,
        sessions: summary,
        ...(ended === undefined && { error: { code: 'SESSION_INDEX_FAILED' as const } }),
      });
      await runAuditHook(onLogout, event, req, timeoutMs, sessionSnapshot(session, []));
    }
    if (ended === undefined) return fail(res, next, 'SESSION_INDEX_FAILED', FAILURE_MESSAGES.SESSION_INDEX_FAILED);
    res.setHeader('Cache-Control', 'no-store');
    answer(req, res, { loggedOut: false, redirectTo: facts.redirectTo, sessions: summary });
  }

  const handler = ((req: Request, res: Response, next: NextFunction): void => {
    const verdict = guard.check(req);
    if (verdict !== 'allow') return guard.refuse(verdict, req, res);
    traceLogout(req, next, (next, trace) => logout(req as Req, res, next, trace)).catch(next);
  }) as PolarLogoutHandler;
  handler.close = () => revoker.close();
  handler.verify = (verifyOptions) => revoker.verify(verifyOptions);
  return handler;
}

/** Errors handed to next() keep the session as it was; like every logout answer, they are never cached. */
function fail(res: Response, next: NextFunction, code: PolarLogoutErrorCode, message: string): void {
  res.setHeader('Cache-Control', 'no-store');
  next(new PolarLogoutError(code, message));
}

/** What a logout answers: the JSON body, and the target of the 303 for browsers. */
interface LogoutAnswer {
  loggedOut: boolean;
  redirectTo: string;
  revocation?: {
    accessToken: RevocationResult['accessToken']['status'];
    refreshToken: RevocationResult['refreshToken']['status'];
  };
  sessions?: SessionsLogoutSummary;
}

/**
 * 303 to the target for browsers; JSON for clients that prefer it (fetch with Accept: application/json). The 303
 * is res.redirect()'s without its body: that would negotiate the Accept header a second time to write a page no
 * browser shows.
 */
function answer(req: Request, res: Response, body: LogoutAnswer): void {
  res.vary('Accept');
  if (req.accepts(['html', 'json']) === 'json') {
    res.status(200).json(body);
    return;
  }
  res.location(body.redirectTo);
  res.statusCode = 303;
  res.setHeader('Content-Length', '0');
  res.end();
}

/** The answer of a logout of this session: revoked (or queued) and destroyed. */
function loggedOut(
  redirectTo: string,
  revocation: RevocationResult,
  sessions: SessionsLogoutSummary | undefined,
): LogoutAnswer {
  return {
    loggedOut: true,
    redirectTo,
    revocation: { accessToken: revocation.accessToken.status, refreshToken: revocation.refreshToken.status },
    ...(sessions && { sessions }),
  };
}
