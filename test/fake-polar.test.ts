import http from 'node:http';
import { createPolarRevoker } from '../lib';
import { startFakePolar, type FakePolar } from '../lib/testing';

let fake: FakePolar;
beforeEach(async () => {
  fake = await startFakePolar({ clientId: 'cid', clientSecret: 'c s&=' });
});
afterEach(() => fake.close());

async function revoke(body: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${fake.url}/v1/oauth2/revoke`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body).toString(),
  });
}

describe('the Polar stand-in', () => {
  it('listens on loopback only', () => {
    expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  const creds = { client_id: 'cid', client_secret: 'c s&=' };

  it('revoking the access token also ends its refresh token (one row per issuance, as Polar)', async () => {
    const a = fake.issueTokens();
    const res = await revoke({ token: a.accessToken, token_type_hint: 'access_token', ...creds });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
    expect(fake.isActive(a.accessToken)).toBe(false);
    expect(fake.isActive(a.refreshToken)).toBe(false); // Polar: the row is revoked, its refresh is refused
    expect(fake.refresh(a.refreshToken)).toBeUndefined();
  });

  it.each([
    ['refresh_token', 'refresh token', 'refreshToken'],
    [undefined, 'refresh token', 'refreshToken'],
    [undefined, 'access token', 'accessToken'],
  ] as const)('with hint %s, revoking the %s ends both tokens', async (hint, _label, which) => {
    const pair = fake.issueTokens();
    const other = fake.issueTokens();
    const body = { token: pair[which], ...creds, ...(hint ? { token_type_hint: hint } : {}) };
    expect((await revoke(body)).status).toBe(200);
    expect([fake.isActive(pair.accessToken), fake.isActive(pair.refreshToken)]).toEqual([false, false]);
    expect([fake.isActive(other.accessToken), fake.isActive(other.refreshToken)]).toEqual([true, true]);
  });

  it('looks a token up in the column its hint names, as Polar does', async () => {
    const pair = fake.issueTokens();
    // A refresh token sent as an access token is not found: 200 {}, nothing revoked.
    expect((await revoke({ token: pair.refreshToken, token_type_hint: 'access_token', ...creds })).status).toBe(200);
    expect(fake.isActive(pair.refreshToken)).toBe(true);
  });

  it('refresh rotates: the old pair dies, the new one lives', () => {
    const old = fake.issueTokens();
    const next = fake.refresh(old.refreshToken)!;
    expect(next.refreshToken).not.toBe(old.refreshToken);
    expect([fake.isActive(old.accessToken), fake.isActive(old.refreshToken)]).toEqual([false, false]);
    expect([fake.isActive(next.accessToken), fake.isActive(next.refreshToken)]).toEqual([true, true]);
    expect(fake.refresh(old.refreshToken)).toBeUndefined();
    expect(fake.refresh(next.accessToken)).toBeUndefined();
  });

  it('answers 400 invalid_grant for a token issued to another client, and leaves it active', async () => {
    const theirs = fake.issueTokens({ clientId: 'another-client' });
    for (const [token, hint] of [
      [theirs.accessToken, 'access_token'],
      [theirs.refreshToken, 'refresh_token'],
      [theirs.refreshToken, undefined],
    ] as const) {
      const res = await revoke({ token, ...creds, ...(hint ? { token_type_hint: hint } : {}) });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: 'invalid_grant' });
    }
    expect(fake.isActive(theirs.accessToken)).toBe(true);
    expect(fake.isActive(theirs.refreshToken)).toBe(true);
    expect(fake.calls.map((c) => c.result)).toEqual([400, 400, 400]);
  });

  it('answers 200 {} for unknown tokens', async () => {
    const res = await revoke({ token: 'unknown', ...creds });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
  });

  it('answers 400 unsupported_token_type for a hint other than access_token or refresh_token', async () => {
    const pair = fake.issueTokens();
    for (const hint of ['id_token', 'ACCESS_TOKEN', 'access_token&x']) {
      const res = await revoke({ token: pair.accessToken, token_type_hint: hint, ...creds });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: 'unsupported_token_type' });
    }
    expect(fake.isActive(pair.accessToken)).toBe(true);
  });

  it('answers 401 invalid_client for wrong or missing credentials', async () => {
    const bodies: Array<Record<string, string>> = [
      { token: 't', client_id: 'cid', client_secret: 'wrong' },
      { token: 't' },
    ];
    for (const body of bodies) {
      const res = await revoke(body);
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: 'invalid_client' });
    }
  });

  it('percent-decodes HTTP Basic credentials as Polar does: %20 is a space, + stays +', async () => {
    const basic = (secret: string): Record<string, string> => ({
      Authorization: `Basic ${Buffer.from(`cid:${secret}`).toString('base64')}`,
    });
    const pair = fake.issueTokens();
    const formStyle = await revoke({ token: pair.accessToken }, basic('c+s%26%3D'));
    expect(formStyle.status).toBe(401); // `+` is not a space to Python's unquote
    const percent = await revoke({ token: pair.accessToken }, basic(encodeURIComponent('c s&=')));
    expect(percent.status).toBe(200);
    expect(fake.calls.map((c) => [c.clientAuth, c.authenticated])).toEqual([
      ['client_secret_basic', false],
      ['client_secret_basic', true],
    ]);
    expect(fake.isActive(pair.accessToken)).toBe(false);
  });

  it('keeps a literal + and a malformed % in Basic credentials, as unquote does', async () => {
    const odd = await startFakePolar({ clientId: 'a+b', clientSecret: '100%zz' });
    try {
      const res = await fetch(`${odd.url}/v1/oauth2/revoke`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          Authorization: `Basic ${Buffer.from('a+b:100%zz').toString('base64')}`,
        },
        body: 'token=t',
      });
      expect(res.status).toBe(200);
      expect(odd.calls[0]).toMatchObject({ clientAuth: 'client_secret_basic', authenticated: true });
    } finally {
      await odd.close();
    }
  });

  it('is what createPolarRevoker talks to: Basic credentials with a space and a + are accepted', async () => {
    const odd = await startFakePolar({ clientId: 'id with space', clientSecret: 'se+cret with space:&=' });
    const revoker = createPolarRevoker({
      clientId: odd.clientId,
      clientSecret: odd.clientSecret,
      baseUrl: odd.url,
      clientAuth: 'client_secret_basic',
      retries: 0,
    });
    try {
      const pair = odd.issueTokens();
      const result = await revoker.revoke(pair);
      expect(result.accessToken.status).toBe('revoked');
      expect(result.refreshToken.status).toBe('revoked');
      expect(odd.calls.map((c) => [c.clientAuth, c.authenticated])).toEqual([
        ['client_secret_basic', true],
        ['client_secret_basic', true],
      ]);
      expect([odd.isActive(pair.accessToken), odd.isActive(pair.refreshToken)]).toEqual([false, false]);
    } finally {
      revoker.close();
      await odd.close();
    }
  });

  it('answers 400 to a JSON body and to a missing token', async () => {
    const json = await fetch(`${fake.url}/v1/oauth2/revoke`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: 't', client_id: 'cid', client_secret: 'c s&=' }),
    });
    expect(json.status).toBe(400);
    expect((await revoke({ client_id: 'cid', client_secret: 'c s&=' })).status).toBe(400);
  });

  it('misbehaves on demand, for a number of calls and a hint', async () => {
    fake.fail({ type: 'status', status: 503, retryAfter: '2' }, { times: 1, hint: 'refresh_token' });
    expect((await revoke({ token: 't', token_type_hint: 'access_token', ...creds })).status).toBe(200);
    const failed = await revoke({ token: 't', token_type_hint: 'refresh_token', ...creds });
    expect(failed.status).toBe(503);
    expect(failed.headers.get('retry-after')).toBe('2');
    expect((await revoke({ token: 't', token_type_hint: 'refresh_token', ...creds })).status).toBe(200);
    expect(fake.calls.map((c) => c.result)).toEqual([200, 503, 200]);
  });

  it('adds latency and records timing', async () => {
    fake.setLatency(100);
    const started = Date.now();
    await revoke({ token: 't', client_id: 'cid', client_secret: 'c s&=' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(95);
    const call = fake.calls[0]!;
    expect(call.answeredAt! - call.receivedAt).toBeGreaterThanOrEqual(95);
  });

  it('closes even with hung requests open', async () => {
    fake.fail({ type: 'hang' });
    const pending = revoke({ token: 't', client_id: 'cid', client_secret: 'c s&=' }).catch(() => 'closed');
    await new Promise((r) => setTimeout(r, 50));
    await fake.close();
    expect(await pending).toBe('closed');
  });
});

describe('rateLimit: Polar’s per-IP limit', () => {
  it('answers 429 beyond requests per window, with Retry-After, counts refusals, and lets the next window through', async () => {
    const fake = await startFakePolar({ rateLimit: { requests: 3, perMs: 400 } });
    try {
      const post = (): Promise<Response> =>
        fetch(`${fake.url}/v1/oauth2/revoke`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: `token=x&client_id=${fake.clientId}&client_secret=${fake.clientSecret}`,
        });
      const first = await Promise.all([post(), post(), post(), post(), post()]);
      expect(first.map((r) => r.status).sort()).toEqual([200, 200, 200, 429, 429]);
      const refused = first.find((r) => r.status === 429)!;
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(fake.rejected429).toBe(2);
      expect(fake.calls.map((c) => c.result).filter((r) => r === 429)).toHaveLength(2);
      await new Promise((r) => setTimeout(r, 450));
      expect((await post()).status).toBe(200);
    } finally {
      await fake.close();
    }
  });

  it('retryAfter: false sends 429 without Retry-After, as Polar may', async () => {
    const fake = await startFakePolar({ rateLimit: { requests: 1, perMs: 60_000, retryAfter: false } });
    try {
      const post = (): Promise<Response> =>
        fetch(`${fake.url}/v1/oauth2/revoke`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: `token=x&client_id=${fake.clientId}&client_secret=${fake.clientSecret}`,
        });
      expect((await post()).status).toBe(200);
      const refused = await post();
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toBeNull();
    } finally {
      await fake.close();
    }
  });

  it('counts each client IP on its own, as Polar does: another address has its own window', async () => {
    const fake = await startFakePolar({ rateLimit: { requests: 2, perMs: 60_000 } });
    /** A revocation over a fresh connection from `from` (Linux routes all of 127.0.0.0/8 to loopback). */
    const postFrom = (from: string, token: string): Promise<{ status: number; retryAfter: string | undefined }> =>
      new Promise((resolve, reject) => {
        const body = `token=${token}&token_type_hint=refresh_token&client_id=${fake.clientId}&client_secret=${fake.clientSecret}`;
        const req = http.request(
          `${fake.url}/v1/oauth2/revoke`,
          {
            method: 'POST',
            localAddress: from,
            agent: false,
            headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(body) },
          },
          (res) => {
            res.resume();
            res.on('end', () => {
              const retryAfter = res.headers['retry-after'];
              resolve({ status: res.statusCode ?? 0, retryAfter });
            });
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    try {
      const pairs = Array.from({ length: 5 }, () => fake.issueTokens());
      const fromFirst: number[] = [];
      for (const pair of pairs.slice(0, 3)) fromFirst.push((await postFrom('127.0.0.1', pair.refreshToken)).status);
      expect(fromFirst).toEqual([200, 200, 429]);
      expect(fake.rejected429).toBe(1);
      expect(fake.isActive(pairs[2]!.refreshToken)).toBe(true); // refused, so not revoked

      // Another address, in the same second: its own window, so Polar lets it through and revokes.
      expect(await postFrom('127.0.0.2', pairs[3]!.refreshToken)).toEqual({ status: 200, retryAfter: undefined });
      expect(fake.isActive(pairs[3]!.refreshToken)).toBe(false);
      expect(fake.rejected429).toBe(1);
      // And the first address is still refused: the second one's call did not reset or use its window.
      expect(await postFrom('127.0.0.1', pairs[4]!.refreshToken)).toMatchObject({ status: 429 });
      expect(fake.rejected429).toBe(2);
      expect(fake.calls.map((c) => c.result)).toEqual([200, 200, 429, 200, 429]);
    } finally {
      await fake.close();
    }
  });
});
