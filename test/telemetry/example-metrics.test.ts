/**
 * The example app's /metrics: Prometheus' text format through the OpenTelemetry Prometheus exporter, scraped after
 * a real sign-in through the stand-in and a logout while Polar answers 503 (tokens handed to the outbox). The
 * queries in example-app/README.md use these exact series.
 */
import request from 'supertest';
import { loadExample, sessionIdOfCookie, type ExampleApp, type ExampleModules } from '../e2e/e2e-support';
import { findLeaks } from '../reliability/support/secrets';
import { sleep } from '../support/harness';

const HOST = 'localhost:3000';
const ORIGIN = 'http://localhost:3000';

let example: ExampleModules;
let app: ExampleApp;

beforeAll(async () => {
  example = loadExample();
  app = await example.createExampleApp(example.readConfig({}), {
    log: () => undefined,
    outboxBackoff: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
  });
});
afterAll(() => app.close());

async function signIn(agent: request.Agent): Promise<string> {
  const login = await agent.get('/login').set('Host', HOST).expect(302);
  const consent = await fetch(login.headers.location as string);
  const id = /name="request" value="([^"]+)"/.exec(await consent.text())![1]!;
  const decided = await fetch(`${app.standin!.url}/oauth2/authorize`, {
    method: 'POST',
    body: new URLSearchParams({ request: id, decision: 'allow' }),
    redirect: 'manual',
  });
  const back = new URL(decided.headers.get('location')!);
  const done = await agent
    .get(back.pathname + back.search)
    .set('Host', HOST)
    .expect(303);
  const cookie = (done.headers['set-cookie'] as unknown as string[]).find((c) => c.startsWith(`${app.cookieName}=`))!;
  return sessionIdOfCookie(cookie.split(';')[0]!.slice(app.cookieName.length + 1));
}

/** The value of `name`'s series with these labels (the exporter adds otel_scope_name and otel_scope_version). */
function valueOf(text: string, name: string, labels: Record<string, string>): number | undefined {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf('} ') + 2).split(' ')[0]);
}

test('/metrics shows the logout, the failed revocations and the queued tokens, and nothing secret', async () => {
  const agent = request.agent(app.app);
  const sessionId = await signIn(agent);
  const fake = app.standin!.fake;
  fake.fail({ type: 'status', status: 503 });
  fake.resetCalls();
  await agent.post('/logout').set('Host', HOST).set('Origin', ORIGIN).expect(303);
  // The logout's calls (one retry each) and the outbox's first calls, which fail too: both tokens now wait.
  const deadline = Date.now() + 10_000;
  while (fake.calls.length < 6 && Date.now() < deadline) await sleep(20);
  await sleep(50);

  const res = await request(app.app).get('/metrics').set('Host', HOST).expect(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain/);
  const text = res.text;
  try {
    const loggedOut = { polar_logout_outcome: 'logged_out', polar_logout_scope: 'session' };
    expect(valueOf(text, 'polar_logout_logouts_total', loggedOut)).toBe(1);
    expect(text).toMatch(/^# TYPE polar_logout_logout_duration histogram$/m);
    expect(text).toMatch(/^# UNIT polar_logout_logout_duration s$/m);
    expect(valueOf(text, 'polar_logout_logout_duration_count', loggedOut)).toBe(1);
    // The logout's two calls per token (one retry) and the outbox's first.
    const failed = { polar_logout_outcome: 'failed', error_type: 'SERVER_ERROR', http_response_status_code: '503' };
    for (const polar_logout_token_type of ['access_token', 'refresh_token']) {
      expect(valueOf(text, 'polar_logout_revocation_requests_total', { ...failed, polar_logout_token_type })).toBe(3);
    }
    const memory = { polar_logout_outbox_mode: 'memory' };
    expect(valueOf(text, 'polar_logout_outbox_jobs', { ...memory, polar_logout_outbox_state: 'delayed' })).toBe(2);
    expect(valueOf(text, 'polar_logout_outbox_jobs', { ...memory, polar_logout_outbox_state: 'waiting' })).toBe(0);
    expect(valueOf(text, 'polar_logout_outbox_jobs', { ...memory, polar_logout_outbox_state: 'active' })).toBe(0);
  } catch (err) {
    throw new Error(`${String(err)}\n--- /metrics ---\n${text}`, { cause: err });
  }
  expect(findLeaks(text, [sessionId, app.standin!.clientSecret, app.standin!.clientId])).toEqual([]);
  expect(text).not.toMatch(/polar_at_|polar_rt_/);
});
