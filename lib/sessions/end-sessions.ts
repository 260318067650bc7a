/**
 * Ending sessions of one user: each session is read from the store (for its tokens), tombstoned, removed from the
 * index and destroyed; its tokens are revoked at Polar in parallel within the logout's time and the shared rate
 * budget, and what cannot go now is handed to the outbox. Sessions whose data no longer names the user (the index
 * met a stale entry) are only removed from the index.
 *
 * `timeoutMs` is one budget for the whole fan-out, not one per session: a user with many sessions, or a slow store,
 * must not stretch a logout to several budgets. A session read once it has run out starts no call to Polar; its
 * tokens count as TIMEOUT and go to the outbox at once.
 */
import { performance } from 'node:perf_hooks';
import createDebug from 'debug';
import { createFailureHandoff, type FailureHandoff } from '../handoff';
import type { InnerStore } from '../session-guard';
import { normaliseTokens, type NormalisedTokens } from '../tokens';
import type { RevocationResult, TokenOutcome, TokenPair, TokenTypeHint } from '../types';
import type { EndSettings } from './internals';
import { sessionRef } from './keys';
import type { RegisteredStore } from './registered-store';
import type { IndexEntry, SessionIndex } from './session-index';
import type { SessionsLogoutSummary, StoredSession } from './types';

const debug = createDebug('express-polar-logout:sessions');

/** Sessions handled at once: a user with a thousand sessions must not open a thousand store calls together. */
export const CONCURRENCY = 64;
/** How long the outbox may take to accept a token when no timeoutMs was given (the revoker's default budget). */
const DEFAULT_HANDOFF_MS = 5000;

export interface EndContext {
  store: RegisteredStore;
  inner: InnerStore;
  index: SessionIndex;
  tokensOf: (data: StoredSession) => TokenPair;
  tombstoneTtlMs: number;
}

export type { EndSettings };

export function emptySummary(): SessionsLogoutSummary {
  return { sessions: 0, revoked: 0, queued: 0, failed: 0 };
}

/** Adds a token outcome to a summary. */
export function countOutcome(summary: SessionsLogoutSummary, outcome: TokenOutcome): void {
  if (outcome.status === 'revoked') summary.revoked += 1;
  else if (outcome.status === 'failed') summary[outcome.queued ? 'queued' : 'failed'] += 1;
}

export function getStored(inner: InnerStore, sid: string): Promise<StoredSession | null> {
  return new Promise((resolve, reject) => {
    inner.get(sid, (err, data) =>
      err
        ? reject(new Error('session store get failed'))
        : resolve((data as unknown as StoredSession | null | undefined) ?? null),
    );
  });
}

function destroyStored(inner: InnerStore, sid: string): Promise<void> {
  return new Promise((resolve, reject) => {
    inner.destroy(sid, (err?: unknown) => (err ? reject(new Error('session store destroy failed')) : resolve()));
  });
}

export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  run: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await run(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const NONE: TokenOutcome = { status: 'absent', attempts: 0, durationMs: 0 };

/** Both tokens failed with `code`, nothing sent. */
function notSent(tokens: NormalisedTokens, code: 'NETWORK_ERROR' | 'TIMEOUT'): RevocationResult {
  const failed = (): TokenOutcome => ({ status: 'failed', attempts: 0, durationMs: 0, error: { code } });
  return {
    accessToken: tokens.accessToken ? failed() : { ...NONE },
    refreshToken: tokens.refreshToken ? failed() : { ...NONE },
  };
}

/**
 * Revokes one session's tokens (or queues them, without a revoker) within what is left until `deadline`
 * (performance.now() time; undefined: the revoker's own budget per call); never rejects.
 */
async function revokeSession(
  tokens: NormalisedTokens,
  settings: EndSettings,
  handOff: FailureHandoff | undefined,
  deadline: number | undefined,
): Promise<RevocationResult> {
  const { revoker, outbox, signal } = settings;
  if (revoker) {
    const left = deadline === undefined ? undefined : Math.floor(deadline - performance.now());
    let result: RevocationResult;
    if (left !== undefined && left < 1) {
      result = notSent(tokens, 'TIMEOUT');
    } else {
      try {
        result = await revoker.revoke(tokens, {
          ...(signal && { signal }),
          ...(left !== undefined && { timeoutMs: left }),
        });
      } catch (err) {
        debug('the revoker rejected: %s', err instanceof Error ? err.name : typeof err);
        result = notSent(tokens, 'NETWORK_ERROR');
      }
    }
    if (handOff) await handOff(tokens, result);
    return result;
  }
  // No revoker: every token goes to the outbox (the worker revokes it); the options require one of the two.
  if (!outbox) throw new Error('unreachable: neither revoker nor outbox');
  const queue = async (token: string | undefined, hint: TokenTypeHint): Promise<TokenOutcome> => {
    if (token === undefined) return { ...NONE };
    try {
      await outbox.enqueue(token, hint, {});
      return { status: 'failed', attempts: 0, durationMs: 0, queued: true, error: { code: 'THROTTLED' } };
    } catch {
      debug('could not queue a %s', hint);
      return { status: 'failed', attempts: 0, durationMs: 0, queued: false, error: { code: 'NETWORK_ERROR' } };
    }
  };
  const [accessToken, refreshToken] = await Promise.all([
    queue(tokens.accessToken, 'access_token'),
    queue(tokens.refreshToken, 'refresh_token'),
  ]);
  return { accessToken, refreshToken };
}

export async function endSessions(
  ctx: EndContext,
  userId: string,
  entries: readonly IndexEntry[],
  settings: EndSettings,
): Promise<SessionsLogoutSummary> {
  const summary = emptySummary();
  const revocations: Promise<void>[] = [];
  const deadline = settings.timeoutMs === undefined ? undefined : performance.now() + settings.timeoutMs;
  // With a revoker, failures that may pass go to the outbox; one hand-over for every session of this call.
  const handOff =
    settings.revoker && settings.outbox
      ? createFailureHandoff(settings.outbox, settings.timeoutMs ?? DEFAULT_HANDOFF_MS)
      : undefined;
  await forEachLimited(entries, CONCURRENCY, async (entry) => {
    const ref = sessionRef(entry.sid, userId);
    let data: StoredSession | null;
    try {
      data = await getStored(ctx.inner, entry.sid);
    } catch {
      data = null; // unreadable: ended all the same (tombstoned), its tokens cannot be read
      debug('could not read a session to end; it is tombstoned and destroyed without revoking its tokens');
    }
    if (data && ctx.store.userOf(data) !== userId) {
      // The entry is stale: that session belongs to someone else now (or nobody). Only the entry goes.
      await Promise.resolve(ctx.index.drop(ref, Date.now())).catch(() => debug('could not drop a stale entry'));
      return;
    }
    // The tombstone goes first (with the entry), so that no write can land between the delete and the tombstone.
    // Whoever removes the entry ends the session: another logout everywhere running at the same time, or the
    // session's own logout, skips it instead of revoking its tokens and counting it a second time.
    let claimed = true;
    try {
      claimed = await ctx.index.drop(ref, Date.now(), ctx.tombstoneTtlMs);
    } catch {
      debug('could not record the tombstone of a session being ended; destroying it anyway');
    }
    if (!claimed) return;
    let tokens: NormalisedTokens = { accessToken: undefined, refreshToken: undefined };
    if (data) {
      try {
        tokens = normaliseTokens(ctx.tokensOf(data));
      } catch (err) {
        debug(
          'tokensOf threw (%s); the session is ended without revoking',
          err instanceof Error ? err.name : typeof err,
        );
      }
    }
    if (tokens.accessToken !== undefined || tokens.refreshToken !== undefined) {
      revocations.push(
        revokeSession(tokens, settings, handOff, deadline).then((result) => {
          countOutcome(summary, result.accessToken);
          countOutcome(summary, result.refreshToken);
        }),
      );
    }
    if (!data) return;
    try {
      await destroyStored(ctx.inner, entry.sid);
      summary.sessions += 1;
    } catch {
      debug('the session store failed to destroy a session being ended');
    }
  });
  await Promise.all(revocations);
  return summary;
}
