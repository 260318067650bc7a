/**
 * Handing failed revocations to a revocation outbox, so that tokens Polar could not revoke during the logout
 * are revoked after the response. Only failures that may pass are handed over; the outbox gets at most the
 * logout's own budget to take them, and its failure is reported in the outcome, never thrown.
 */
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
    sessionIdHash?: string,
  ): Promise<void> {
    const taken = await settleWithin(() => outbox.enqueue(token, hint, { sessionIdHash }), limitMs);
    outcome.queued = taken.kind === 'done';
    if (taken.kind === 'late') debug('the outbox did not take the %s within %d ms', hint, limitMs);
    if (taken.kind === 'failed') debug('could not queue the %s for later revocation: %s', hint, codeOf(taken.error));
  }

  return async (tokens, result, sessionIdHash) => {
    const pending: Promise<void>[] = [];
    const consider = (token: string | undefined, hint: TokenTypeHint, outcome: TokenOutcome): void => {
      if (token !== undefined && outcome.status === 'failed' && isRetryableFailure(outcome.error)) {
        pending.push(handOver(token, hint, outcome, sessionIdHash));
      }
    };
    consider(tokens.accessToken, 'access_token', result.accessToken);
    consider(tokens.refreshToken, 'refresh_token', result.refreshToken);
    await Promise.all(pending);
  };
}
