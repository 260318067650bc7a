// The parallel clients users would pick instead of this library, for figure 3b: each revokes both tokens
// under Promise.all inside the same minimal route as the reference (reference-route.mjs), so that the
// figure compares clients, with everything else equal.
import { Polar } from '@polar-sh/sdk';
import * as oidc from 'openid-client';

/** Polar's own SDK (0.x): `oauth2.revoke()`, which sends the client credentials in the body. */
export function polarSdkRevoke({ baseUrl, clientId, clientSecret }) {
  const polar = new Polar({ serverURL: baseUrl });
  return {
    revoke: (token, tokenTypeHint) => polar.oauth2.revoke({ token, tokenTypeHint, clientId, clientSecret }),
    close() {},
  };
}

/** openid-client 6: `tokenRevocation()`, configured from metadata (no discovery request), client_secret_post. */
export function openidClientRevoke({ baseUrl, clientId, clientSecret }) {
  const config = new oidc.Configuration(
    { issuer: baseUrl, revocation_endpoint: `${baseUrl}/v1/oauth2/revoke` },
    clientId,
    clientSecret,
  );
  // The stand-in is plain http on loopback; Polar itself is https.
  oidc.allowInsecureRequests(config);
  return {
    revoke: (token, hint) => oidc.tokenRevocation(config, token, { token_type_hint: hint }),
    close() {},
  };
}
