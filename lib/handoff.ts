/**
 * Handing failed revocations to a revocation outbox, so that tokens Polar could not revoke during the logout
 * are revoked after the response. Only failures that may pass are handed over; the outbox gets at most the
 * logout's own budget to take them, and its failure is reported in the outcome, never thrown.
 *
 * A logout whose only failures are THROTTLED sent nothing to Polar: queuing is what it does instead of the calls,
 * so the hand-over gets what is left of the logout's budget, not a budget of its own. A throttled logout is then
 * answered within timeoutMs even when Redis hangs (the shared budget's wait and the enqueue share that time).
 */
import { performance } from 'node:perf_hooks';
import createDebug from 'debug';
import { isRetryableFailure } from './revoker';
import type { NormalisedTokens } from './tokens';
import type { RevocationQueue, RevocationResult, TokenOutcome, TokenTypeHint } from './types';
import { settleWithin } from './util/settle';

const debug = createDebug('express-polar-logout');

export type FailureHandoff = (
  tokens: NormalisedTokens,
  result: RevocationResult,
  sessionIdHash?: string,
  /** performance.now() when the logout started, for the budget a throttled hand-over shares with it. */
  startedAt?: number,
) => Promise<void>;

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'outbox error';
}

export function createFailureHandoff(outbox: RevocationQueue, limitMs: number): FailureHandoff {
  async function handOver(
    token: string,
    hint: TokenTypeHint,
    outcome: TokenOutcome,
    sessionIdHash: string | undefined,
    withinMs: number,
  ): Promise<void> {
    const taken = await settleWithin(() => outbox.enqueue(token, hint, { sessionIdHash }), withinMs);
    outcome.queued = taken.kind === 'done';
    if (taken.kind === 'late') debug('the outbox did not take the %s within %d ms', hint, withinMs);
    if (taken.kind === 'failed') debug('could not queue the %s for later revocation: %s', hint, codeOf(taken.error));
  }

  const throttledOrFine = (outcome: TokenOutcome): boolean =>
    outcome.status !== 'failed' || outcome.error?.code === 'THROTTLED';

  return async (tokens, result, sessionIdHash, startedAt) => {
    const withinMs =
      startedAt !== undefined && throttledOrFine(result.accessToken) && throttledOrFine(result.refreshToken)
        ? Math.max(1, Math.round(limitMs - (performance.now() - startedAt)))
        : limitMs;
    const pending: Promise<void>[] = [];
    const consider = (token: string | undefined, hint: TokenTypeHint, outcome: TokenOutcome): void => {
      if (token !== undefined && outcome.status === 'failed' && isRetryableFailure(outcome.error)) {
        pending.push(handOver(token, hint, outcome, sessionIdHash, withinMs));
      }
    };
    consider(tokens.accessToken, 'access_token', result.accessToken);
    consider(tokens.refreshToken, 'refresh_token', result.refreshToken);
    await Promise.all(pending);
  };
}
