/**
 * Type tests: compiled by `tsc --noEmit` (npm run typecheck), never run. Each `@ts-expect-error` must stay an
 * error: if a type loosens, tsc reports the directive as unused and the check fails.
 */
import type { Request } from 'express';
import {
  createPolarRevoker,
  polarLogout,
  PolarLogoutError,
  type LogoutEvent,
  type PolarLogoutErrorCode,
  type PolarSessionData,
  type RevocationErrorCode,
  type TokenOutcome,
} from '../../lib';
import { startFakePolar, type FakePolar } from '../../lib/testing';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(_proof?: T): void {}

const credentials = { clientId: 'id', clientSecret: 'secret' };

// A one-line mount type-checks with the two required options.
const handler = polarLogout(credentials);
handler.close();

// @ts-expect-error clientSecret is required
polarLogout({ clientId: 'id' });

// @ts-expect-error a misspelt option is a compile error
polarLogout({ ...credentials, redirecTo: '/' });

// @ts-expect-error server is 'production' | 'sandbox'
polarLogout({ ...credentials, server: 'staging' });

// @ts-expect-error onRevocationFailure is 'continue' | 'fail'
polarLogout({ ...credentials, onRevocationFailure: 'ignore' });

// @ts-expect-error clientAuth has two values
polarLogout({ ...credentials, clientAuth: 'private_key_jwt' });

// @ts-expect-error timeoutMs is a number
polarLogout({ ...credentials, timeoutMs: '5000' });

// Who may ask for a logout, and what the browser is told to forget.
polarLogout({ ...credentials, trustedOrigins: ['https://www.example.com'], clearSiteData: true });
polarLogout({ ...credentials, clearSiteData: ['cookies', 'storage'] });
// @ts-expect-error not a Clear-Site-Data directive
polarLogout({ ...credentials, clearSiteData: ['everything'] });
// @ts-expect-error trustedOrigins is an array
polarLogout({ ...credentials, trustedOrigins: 'https://www.example.com' });

// The opt-in session fields: what the default getTokens reads, typed as strings.
assertType<Equal<PolarSessionData, { accessToken?: string; refreshToken?: string }>>();

// getTokens and onLogout get the request type, including an app's own request type.
interface AppRequest extends Request {
  user?: { polarAccessToken: string; polarRefreshToken: string };
}
polarLogout<AppRequest>({
  ...credentials,
  getTokens: (req) => ({ accessToken: req.user?.polarAccessToken, refreshToken: req.user?.polarRefreshToken }),
  onLogout: async (event, req) => {
    assertType<Equal<typeof req, AppRequest>>();
    assertType<Equal<typeof event, LogoutEvent>>();
    await Promise.resolve(event.revocation.accessToken.status);
  },
});

// The audit event is precise.
declare const event: LogoutEvent;
assertType<Equal<TokenOutcome['status'], 'revoked' | 'absent' | 'failed'>>();
assertType<Equal<typeof event.sessionIdHash, string | undefined>>();
assertType<
  Equal<
    NonNullable<typeof event.error>['code'],
    'REVOCATION_FAILED' | 'SESSION_DESTROY_FAILED' | 'TOMBSTONE_FAILED' | 'SESSION_INDEX_FAILED'
  >
>();
assertType<Equal<typeof event.scope, 'session' | 'others' | 'everywhere'>>();
assertType<Equal<NonNullable<TokenOutcome['error']>['code'], RevocationErrorCode>>();

// Errors carry a code union.
declare const err: unknown;
if (err instanceof PolarLogoutError) {
  assertType<Equal<typeof err.code, PolarLogoutErrorCode>>();
  // @ts-expect-error not a code of this library
  if (err.code === 'ERR_SOMETHING_ELSE') throw err;
}

// The standalone client.
async function standalone(fake: FakePolar): Promise<void> {
  const revoker = createPolarRevoker({ clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url });
  const result = await revoker.revoke(fake.issueTokens(), { signal: AbortSignal.timeout(1000) });
  assertType<Equal<typeof result.accessToken.status, TokenOutcome['status']>>();
  // @ts-expect-error the revoker takes no middleware options
  createPolarRevoker({ ...credentials, redirectTo: '/' });
  revoker.close();
}
void startFakePolar().then(standalone);
