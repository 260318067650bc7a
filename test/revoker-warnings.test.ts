/**
 * Issue 13 §1: a wrong client secret or a baseUrl that is not Polar's API showed only in audit events. Each is
 * reported once per process as a `PolarLogoutWarning` naming what to fix, with no secret, token or credentials.
 * (One file on its own: "once per process" is module state, fresh for each test file.)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPolarRevoker, polarLogout } from '../lib';
import { startFakePolar, type FakePolar } from '../lib/testing';
import { createHarness } from './support/harness';
import { realProcess } from './reliability/support/process';

let warnings: Error[];
const onWarning = (warning: Error): void => void warnings.push(warning);
beforeEach(() => {
  warnings = [];
  realProcess.on('warning', onWarning);
});
afterEach(() => void realProcess.off('warning', onWarning));

/** process.emitWarning emits on the next tick. */
const nextTicks = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

const ours = (code: string): Error[] =>
  warnings.filter((w) => w.name === 'PolarLogoutWarning' && (w as { code?: string }).code === code);

let fake: FakePolar;
beforeEach(async () => {
  fake = await startFakePolar();
});
afterEach(() => fake.close());

// First: once a code has been emitted, warnOnce stays silent for it and this test would prove nothing.
it('failures that are not configuration (5xx, timeouts, refused tokens) warn nothing', async () => {
  const revoker = createPolarRevoker({
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    baseUrl: fake.url,
    timeoutMs: 300,
    retries: 0,
  });
  try {
    fake.fail({ type: 'status', status: 503 }, { times: 1 });
    fake.fail({ type: 'status', status: 400, body: '{"error":"invalid_request"}' }, { times: 1 });
    fake.fail({ type: 'hang' }, { times: 1 });
    for (let i = 0; i < 3; i += 1) expect((await revoker.revokeToken('t', 'access_token')).status).toBe('failed');
    await nextTicks();
  } finally {
    revoker.close();
  }
  expect(warnings.filter((w) => w.name === 'PolarLogoutWarning')).toEqual([]);
});

it('a wrong clientSecret is reported once (EPL_INVALID_CLIENT), whatever the number of failures', async () => {
  const secret = 'polar_cs_this_is_the_wrong_SECRET_value';
  const revoker = createPolarRevoker({ clientId: fake.clientId, clientSecret: secret, baseUrl: fake.url });
  const h = await createHarness({ logout: { clientSecret: secret } });
  const tokens = [];
  try {
    for (let i = 0; i < 10; i += 1) {
      const pair = fake.issueTokens();
      tokens.push(pair.accessToken, pair.refreshToken);
      const result = await revoker.revoke(pair);
      expect(result.accessToken.error).toEqual({ code: 'INVALID_CLIENT', httpStatus: 401 });
    }
    for (let i = 0; i < 5; i += 1) {
      const { cookie, tokens: pair } = await h.login();
      tokens.push(pair.accessToken, pair.refreshToken);
      await h.post(cookie).expect(303);
    }
    await nextTicks();
  } finally {
    revoker.close();
    await h.close();
  }
  expect(h.events.map((e) => e.revocation.refreshToken.error?.code)).toEqual(Array(5).fill('INVALID_CLIENT'));
  const found = ours('EPL_INVALID_CLIENT');
  expect(found).toHaveLength(1);
  const message = found[0]!.message;
  expect(message).toMatch(/Polar refused the client credentials \(HTTP 401, invalid_client\)/);
  expect(message).toMatch(/Check clientId and clientSecret/);
  for (const secretish of [secret, fake.clientSecret, ...tokens]) expect(message).not.toContain(secretish);
  expect(ours('EPL_NOT_POLAR')).toHaveLength(0);
});

it('a baseUrl that is not Polar (HTML page, 404, redirect) is reported once (EPL_NOT_POLAR)', async () => {
  const answers: ((res: http.ServerResponse) => void)[] = [
    (res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><title>Sign in</title>'),
    (res) => res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"detail":"Not Found"}'),
    (res) => res.writeHead(302, { Location: 'https://elsewhere.example/' }).end(),
  ];
  let next = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => answers[next++ % answers.length]!(res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const secret = 'polar_cs_right_SECRET_but_wrong_place';
  const revoker = createPolarRevoker({ clientId: 'polar_ci_x', clientSecret: secret, baseUrl: url });
  const handler = polarLogout({ clientId: 'polar_ci_x', clientSecret: secret, baseUrl: url });
  const codes = new Set<string | undefined>();
  try {
    for (let i = 0; i < 9; i += 1) {
      const outcome = await revoker.revokeToken(`polar_at_${i}`, 'access_token');
      codes.add(`${outcome.error?.code} ${outcome.error?.httpStatus}`);
    }
    expect(await handler.verify()).toMatchObject({ ok: false, error: { code: 'UNEXPECTED_RESPONSE' } });
    await nextTicks();
  } finally {
    revoker.close();
    handler.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  expect([...codes].sort()).toEqual(['UNEXPECTED_RESPONSE 200', 'UNEXPECTED_RESPONSE 302', 'UNEXPECTED_RESPONSE 404']);
  const found = ours('EPL_NOT_POLAR');
  expect(found).toHaveLength(1);
  expect(found[0]!.message).toContain(`${url}/v1/oauth2/revoke answered HTTP 200`);
  expect(found[0]!.message).toMatch(/Set baseUrl to the origin of Polar's API only \(https:\/\/api\.polar\.sh/);
  expect(found[0]!.message).not.toContain(secret);
  expect(found[0]!.message).not.toContain('polar_at_');
});
