import { format } from 'node:util';
import session from 'express-session';
import { createPolarRevoker, PolarLogoutError, polarLogout } from '../lib';
import { capture, createHarness, debugOutput, everythingCaptured, type Harness } from './support/harness';

/** Every secret a scenario handled: tokens, the client secret, session ids (raw and as sent in the cookie). */
function findLeaks(haystack: string, secrets: string[]): string[] {
  return secrets.filter((s) => s.length > 0 && haystack.includes(s));
}

describe('secrets never leak', () => {
  let h: Harness;
  const secrets: string[] = [];

  beforeAll(async () => {
    debugOutput.length = 0;
    class FlakyStore extends session.MemoryStore {
      failNext = false;
      override destroy(sid: string, cb?: (err?: unknown) => void): void {
        if (this.failNext) {
          this.failNext = false;
          return cb?.(new Error(`cannot destroy ${sid}`)); // a careless store that puts the id in its error
        }
        super.destroy(sid, cb);
      }
    }
    const store = new FlakyStore();
    h = await createHarness({ store, logout: { retries: 1, timeoutMs: 400 } });
    secrets.push(h.fake.clientSecret);

    const scenario = async (setup: () => void, expectStatus: number, accept?: string): Promise<void> => {
      h.fake.heal();
      setup();
      const { tokens, sessionId, cookie } = await h.login();
      secrets.push(tokens.accessToken, tokens.refreshToken, sessionId, decodeURIComponent(cookie.split('=')[1]!));
      const test = h.post(cookie);
      if (accept) test.set('Accept', accept);
      capture(h, await test.expect(expectStatus));
    };

    await scenario(() => undefined, 303);
    await scenario(() => undefined, 200, 'application/json');
    await scenario(
      () => h.fake.fail({ type: 'status', status: 503, body: '{"error":"temporarily_unavailable"}' }),
      303,
    );
    await scenario(() => h.fake.fail({ type: 'status', status: 400, body: '{"error":"invalid_request"}' }), 303);
    await scenario(() => h.fake.fail({ type: 'hang' }), 200, 'application/json');
    await scenario(() => h.fake.fail({ type: 'reset' }), 303);
    await scenario(() => h.fake.fail({ type: 'status', status: 200, contentType: 'text/html', body: '<html>' }), 303);
    await scenario(() => {
      store.failNext = true;
    }, 500);
  });

  afterAll(() => h.close());

  it('captured something from every channel (the scan below is not vacuous)', () => {
    expect(h.responses.length).toBe(8);
    expect(h.events.length).toBe(8);
    expect(h.errors.length).toBe(1);
    expect(debugOutput.join('\n')).toMatch(/access_token revocation attempt 1 failed: SERVER_ERROR \(503\)/);
    expect(findLeaks(`x${secrets[1]}x`, secrets)).toEqual([secrets[1]]);
  });

  it('finds no token, client secret or session id in responses, audit events, errors or debug output', () => {
    expect(findLeaks(everythingCaptured(h), secrets)).toEqual([]);
  });

  it('keeps the client secret out of errors and inspection of the public objects', () => {
    const secret = 'cs_super_secret_value';
    const found: string[] = [];
    const attempts: Array<() => unknown> = [
      () => polarLogout({ clientId: 'id', clientSecret: secret, baseUrl: 'http://example.com' }),
      () => polarLogout({ clientId: 'id', clientSecret: secret, baseUrl: `https://user:${secret}@example.com` }),
      () => polarLogout({ clientId: '', clientSecret: secret }),
      () => polarLogout({ clientId: 'id', clientSecret: secret, timeoutMs: -1 }),
      () => createPolarRevoker({ clientId: 'id', clientSecret: secret, clientAuth: 'x' as never }),
    ];
    for (const attempt of attempts) {
      try {
        attempt();
        found.push('did not throw');
      } catch (err) {
        expect(err).toBeInstanceOf(PolarLogoutError);
        found.push(format(err), JSON.stringify(err), (err as Error).stack ?? '');
      }
    }
    const revoker = createPolarRevoker({ clientId: 'id', clientSecret: secret, clientAuth: 'client_secret_basic' });
    const handler = polarLogout({ clientId: 'id', clientSecret: secret });
    found.push(format(revoker), format(handler), JSON.stringify(revoker), Object.keys(handler).join());
    const base64 = Buffer.from(`id:${secret}`).toString('base64');
    expect(found.filter((s) => s.includes(secret) || s.includes(base64))).toEqual([]);
    expect(found).not.toContain('did not throw');
    revoker.close();
    handler.close();
  });
});
