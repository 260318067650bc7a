/**
 * The registry without Redis (its index in this process's memory) on express-session's MemoryStore, one app
 * process: the same basics as across processes. 'everywhere' ends every session of the user and revokes every token,
 * 'others' keeps exactly the current one, a login racing the logout or a slow request resaving cannot bring a
 * session back, a login right after works, regenerate() moves the entry.
 */
import { createHash } from 'node:crypto';
import session from 'express-session';
import * as lib from '../../lib';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import {
  events,
  gatedLogin,
  list,
  login,
  logout,
  regenerate,
  revokedAtPolar,
  slowRequest,
  startInProcessApp,
  stored,
  whoami,
  type Browser,
  type InProcessApp,
} from './support/client';

let fake: FakePolar;
let inner: session.MemoryStore;
let registry: lib.SessionRegistry;
let app: InProcessApp;
let refused: Array<{ operation: string; sessionIdHash: string | undefined }>;
let userCounter = 0;

beforeAll(async () => {
  fake = await startFakePolar();
});
beforeEach(async () => {
  inner = new session.MemoryStore();
  refused = [];
  registry = lib.createSessionRegistry({
    store: inner,
    onRefused: (info) => void refused.push(info),
    userIdOf: (data) => (data.user as { id?: unknown } | undefined)?.id,
  });
  app = await startInProcessApp(lib, {
    store: registry.store,
    sessions: registry,
    polar: { clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url },
  });
});
afterEach(async () => {
  fake.heal();
  await app.close();
  await registry.close();
});
afterAll(() => fake.close());

const newUser = (): string => `mem-user-${++userCounter}`;
const signIn = (userId: string): Promise<Browser> => login(app, fake, userId);
const inStore = async (b: Browser): Promise<boolean> => (await stored(inner, b.sessionId)) !== null;
const tokensOf = (browsers: Browser[]): string[] =>
  browsers.flatMap((b) => [b.tokens.accessToken, b.tokens.refreshToken]);
const handles = async (userId: string): Promise<string[]> => (await list(app, userId)).map((s) => s.id).sort();

async function expectSignedOut(browsers: Browser[]): Promise<void> {
  for (const b of browsers) {
    expect((await whoami(app, b.cookie)).user).toBeNull();
    expect(await inStore(b)).toBe(false);
  }
}

it("'everywhere' ends all 5 sessions of the user and revokes their 10 tokens; another user is untouched", async () => {
  const user = newUser();
  const browsers = await Promise.all(Array.from({ length: 5 }, () => signIn(user)));
  const bystander = await signIn(newUser());
  expect(await handles(user)).toEqual(browsers.map((b) => b.handle).sort());

  const res = await logout(app, browsers[2]!.cookie, 'everywhere', true);
  expect(res.status).toBe(200);
  expect(res.headers.getSetCookie().join('\n')).toMatch(/connect\.sid=;/);
  expect(await res.json()).toMatchObject({
    loggedOut: true,
    sessions: { sessions: 5, revoked: 10, queued: 0, failed: 0 },
  });
  for (const token of tokensOf(browsers)) {
    expect(fake.isActive(token)).toBe(false);
    expect(fake.calls.filter((c) => c.token === token)).toHaveLength(1);
  }
  await expectSignedOut(browsers);
  expect(await list(app, user)).toEqual([]);
  expect((await whoami(app, bystander.cookie)).user).toBe(bystander.userId);
  expect(fake.isActive(bystander.tokens.refreshToken)).toBe(true);
  expect(events(app).at(-1)).toMatchObject({ scope: 'everywhere', sessions: { sessions: 5, revoked: 10 } });
});

it("'others' keeps exactly the current one (303, cookie kept, its tokens active)", async () => {
  const user = newUser();
  const browsers = await Promise.all(Array.from({ length: 3 }, () => signIn(user)));
  const [current, ...others] = browsers as [Browser, ...Browser[]];
  const res = await logout(app, current.cookie, 'others');
  expect(res.status).toBe(303);
  expect(res.headers.getSetCookie().join('\n')).not.toMatch(/connect\.sid=;/);
  expect((await whoami(app, current.cookie)).user).toBe(user);
  expect(fake.isActive(current.tokens.accessToken)).toBe(true);
  expect(fake.isActive(current.tokens.refreshToken)).toBe(true);
  await expectSignedOut(others);
  for (const token of tokensOf(others)) expect(revokedAtPolar(fake, token)).toBe(true);
  for (const token of tokensOf([current])) expect(fake.calls.some((c) => c.token === token)).toBe(false);
  expect(await handles(user)).toEqual([current.handle]);
  expect(events(app).at(-1)).toMatchObject({
    scope: 'others',
    sessions: { sessions: 2, revoked: 4, queued: 0, failed: 0 },
  });
});

it('a login that began before a logout everywhere and saves after it does not survive', async () => {
  const user = newUser();
  const first = await signIn(user);
  const gated = [gatedLogin(app, fake, user), gatedLogin(app, fake, user)];
  await Promise.all(gated.map((g) => g.reached));
  await logout(app, first.cookie, 'everywhere').then((r) => expect(r.status).toBe(303));
  await Promise.all(gated.map((g) => g.release()));
  for (const g of gated) {
    const b = await g.done.then(
      (x) => x,
      () => undefined,
    );
    if (!b) continue; // its save was refused
    expect((await whoami(app, b.cookie)).user).toBeNull();
    expect(await inStore(b)).toBe(false);
  }
  expect(await list(app, user)).toEqual([]);
});

it('a slow request that saves after the logout does not bring the session back', async () => {
  const user = newUser();
  const victim = await signIn(user);
  const actor = await signIn(user);
  const slow = slowRequest(app, victim.cookie);
  await slow.loaded;
  await logout(app, actor.cookie, 'everywhere').then((r) => expect(r.status).toBe(303));
  await slow.release();
  await slow.response;
  await expectSignedOut([victim, actor]);
  // The refused write was reported, under the audit event's hash of the session id, never the id.
  expect(refused.map((r) => r.operation)).toContain('set');
  const hashes = refused.map((r) => r.sessionIdHash);
  expect(hashes).toContain(createHash('sha256').update(victim.sessionId).digest('hex').slice(0, 16));
  expect(JSON.stringify(refused)).not.toContain(victim.sessionId);
  expect(await list(app, user)).toEqual([]);
});

it('a login right after works and is indexed; regenerate() moves its entry', async () => {
  const user = newUser();
  const before = await signIn(user);
  await logout(app, before.cookie, 'everywhere').then((r) => expect(r.status).toBe(303));
  const after = await signIn(user);
  expect((await whoami(app, after.cookie)).user).toBe(user);
  expect(await handles(user)).toEqual([after.handle]);

  const moved = await regenerate(after);
  expect(moved.handle).not.toBe(after.handle);
  expect(await handles(user)).toEqual([moved.handle]);
  expect((await whoami(app, after.cookie)).user).toBeNull();
  expect((await whoami(app, moved.cookie)).user).toBe(user);
});

// 'everywhere' counts the current session as ended only when it was stored and destroyed (it counted it whenever the
// logout succeeded, also without a stored session: no cookie, an expired one, or one another logout is ending).
it("'everywhere' from a request with no session ends nothing and says so", async () => {
  const res = await fetch(`${app.url}/logout/everywhere`, {
    method: 'POST',
    headers: { accept: 'application/json' },
  });
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ sessions: { sessions: 0, revoked: 0, queued: 0, failed: 0 } });
});
