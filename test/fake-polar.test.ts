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

  it('revokes an access token alone, and a whole grant through its refresh token', async () => {
    const a = fake.issueTokens();
    expect((await revoke({ token: a.accessToken, client_id: 'cid', client_secret: 'c s&=' })).status).toBe(200);
    expect(fake.isActive(a.accessToken)).toBe(false);
    expect(fake.isActive(a.refreshToken)).toBe(true);
    const b = fake.issueTokens();
    await revoke({ token: b.refreshToken, client_id: 'cid', client_secret: 'c s&=' });
    expect(fake.isActive(b.accessToken)).toBe(false);
    expect(fake.isActive(b.refreshToken)).toBe(false);
  });

  it('answers 200 {} for unknown tokens', async () => {
    const res = await revoke({ token: 'unknown', client_id: 'cid', client_secret: 'c s&=' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
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

  it('accepts HTTP Basic with form-encoded credentials', async () => {
    const basic = Buffer.from(`cid:${encodeURIComponent('c s&=').replace(/%20/g, '+')}`).toString('base64');
    const pair = fake.issueTokens();
    const res = await revoke({ token: pair.accessToken }, { Authorization: `Basic ${basic}` });
    expect(res.status).toBe(200);
    expect(fake.calls[0]).toMatchObject({ clientAuth: 'client_secret_basic', authenticated: true });
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
    const creds = { client_id: 'cid', client_secret: 'c s&=' };
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
