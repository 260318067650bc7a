/**
 * The tokens of a session the "not before" mark refused when it was read or written: no logout has them (the index
 * never listed that session), so they go to the registry's outbox, or are reported once as left valid at Polar.
 */
import createDebug from 'debug';
import { normaliseTokens } from '../tokens';
import type { RevocationQueue, TokenPair } from '../types';
import { settleWithin } from '../util/settle';
import { warnOnce } from '../warnings';
import type { StoredSession } from './types';

const debug = createDebug('express-polar-logout:sessions');
/** Longest wait for the outbox to take the tokens; the request does not wait for it. */
const ENQUEUE_LIMIT_MS = 5000;

export function createEndedHandoff(
  outbox: RevocationQueue | undefined,
  tokensOf: (data: StoredSession) => TokenPair,
): (data: unknown) => void {
  return (data) => {
    let tokens;
    try {
      tokens = normaliseTokens(tokensOf(data as StoredSession));
    } catch {
      return debug('tokensOf threw on a session the mark refused; its tokens are not queued');
    }
    const pending = [
      ['access_token', tokens.accessToken],
      ['refresh_token', tokens.refreshToken],
    ] as const;
    for (const [hint, token] of pending) {
      if (token === undefined) continue;
      if (!outbox) {
        warnOnce(
          'EPL_SESSIONS_TOKENS_LEFT',
          'express-polar-logout: a session begun before a logout everywhere was refused, and its Polar tokens are ' +
            "left valid: pass `outbox` to createSessionRegistry() so that they are revoked (Polar's refresh tokens " +
            'never expire).',
        );
        return;
      }
      // Not awaited: the request goes on; a failure is reported, never thrown.
      void settleWithin(() => outbox.enqueue(token, hint, {}), ENQUEUE_LIMIT_MS).then((outcome) => {
        if (outcome.kind !== 'done') debug("could not queue a refused session's %s (%s)", hint, outcome.kind);
      });
    }
  };
}
