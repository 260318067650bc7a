/**
 * Log out everywhere across two app processes sharing one redis-server (connect-redis on node-redis, as the example
 * app; the registry on the same client; a BullMQ outbox), browsers as cookie jars, the Polar stand-in over real HTTP
 * in this process. Then the failure modes other libraries shipped: logins racing the logout, a slow request resaving
 * on the other process, a login right after, expiry, regenerate(), Polar down during the fan-out.
 */
import path from 'node:path';
import type * as lib from '../../lib';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import { bundleLibrary, startChild, type Bundle, type Child } from '../outbox/support/children';
import {
  connectNodeRedis,
  describeWithRedis,
  startRedisServer,
  type NodeRedisClient,
  type RedisServer,
} from '../support/redis-server';
import {
  events,
  gatedLogin,
  list,
  login,
  logout,
  regenerate,
  revokedAtPolar,
  slowRequest,
  waitUntil,
  whoami,
  type AppHandle,
  type Browser,
} from './support/client';
import {
  indexKeyHolding,
  keysWithoutExpiry,
  ownerKeyOf,
  registryKeys,
  registryValues,
  tombstoneKeyOf,
} from './support/redis-keys';

const CHILD = path.join(__dirname, 'fixtures', 'child.cjs');

describeWithRedis('log out everywhere across two app processes', () => {
  let redis: RedisServer;
  let bundle: Bundle;
  let fake: FakePolar;
  let inspect: NodeRedisClient;
  const children: Child[] = [];
  let A: AppHandle;
  let B: AppHandle;
  /** Everything that must never be printed or put in the registry's keys. */
  const secrets = new Set<string>();
  const userIds = new Set<string>();
  let userCounter = 0;

  async function startApp(name: string): Promise<AppHandle> {
    const child = startChild(CHILD, {
      EPL_DIST: bundle.cjs,
      POLAR_CLIENT_ID: fake.clientId,
      POLAR_CLIENT_SECRET: fake.clientSecret,
      POLAR_BASE_URL: fake.url,
      REDIS_URL: redis.url,
      OUTBOX: 'redis',
      LOGOUT_TIMEOUT_MS: '5000', // generous: the machine may be loaded
    });
    children.push(child);
    const { port } = await child.waitFor((r) => r.type === 'listening', 20_000, `${name} to listen`);
    return { name, url: `http://127.0.0.1:${String(port)}`, records: child.records, waitFor: child.waitFor };
  }

  beforeAll(async () => {
    [redis, bundle, fake] = await Promise.all([startRedisServer(), bundleLibrary(), startFakePolar()]);
    secrets.add(fake.clientSecret);
    inspect = await connectNodeRedis(redis.url);
    [A, B] = await Promise.all([startApp('A'), startApp('B')]);
  }, 60_000);

  afterEach(() => {
    fake.heal();
  });

  afterAll(async () => {
    // Nothing secret in anything the apps printed (audit events, debug output of every namespace).
    const printed = children.map((c) => c.output()).join('\n');
    for (const secret of secrets) expect(printed).not.toContain(secret);
    // The registry's keys name no user and no session; its values hold no token and no user id.
    // (Its entries hold session ids, by design: ending a session means finding it in the store.)
    const keys = (await registryKeys(inspect)).join('\n');
    const values = await registryValues(inspect);
    for (const id of userIds) {
      expect(keys).not.toContain(id);
      expect(values).not.toContain(id);
    }
    for (const secret of secrets) {
      expect(keys).not.toContain(secret);
      if (/^polar_(at|rt)_/.test(secret)) expect(values).not.toContain(secret);
    }
    inspect.destroy();
    await Promise.all(children.map((c) => c.kill('SIGTERM')));
    await fake.close();
    bundle.remove();
    await redis.stop();
  }, 30_000);

  /** A fresh user id, shaped like the e-mail addresses apps often use (it must never reach Redis). */
  function newUser(): string {
    const id = `user-${++userCounter}-${process.pid}@example.com`;
    userIds.add(id);
    return id;
  }

  async function signIn(app: AppHandle, userId: string, options: Parameters<typeof login>[3] = {}): Promise<Browser> {
    const browser = await login(app, fake, userId, options);
    secrets.add(browser.sessionId).add(browser.tokens.accessToken).add(browser.tokens.refreshToken);
    expect(browser.handle).toEqual(expect.any(String));
    return browser;
  }

  const inStore = async (b: Browser): Promise<boolean> => (await inspect.exists(`sess:${b.sessionId}`)) === 1;
  const tokensOf = (browsers: Browser[]): string[] =>
    browsers.flatMap((b) => [b.tokens.accessToken, b.tokens.refreshToken]);
  /** Who each browser is, as each app sees it. */
  async function signedInAs(b: Browser): Promise<[string | null, string | null]> {
    return [(await whoami(A, b.cookie)).user, (await whoami(B, b.cookie)).user];
  }
  async function expectSignedOut(browsers: Browser[]): Promise<void> {
    for (const b of browsers) {
      expect(await signedInAs(b)).toEqual([null, null]);
      expect(await inStore(b)).toBe(false);
    }
  }
  const handles = async (app: AppHandle, userId: string): Promise<string[]> =>
    (await list(app, userId)).map((s) => s.id).sort();

  it("'everywhere' from one of 5 browsers on 2 processes: all 5 gone, all 10 tokens revoked, signed out on both", async () => {
    const user = newUser();
    const bystander = newUser();
    const browsers = [
      await signIn(A, user),
      await signIn(B, user),
      await signIn(A, user),
      await signIn(B, user),
      await signIn(A, user),
    ];
    const other = await signIn(B, bystander);
    // Both processes see the same five sessions, under the same handles.
    const expected = browsers.map((b) => b.handle!).sort();
    expect(await handles(A, user)).toEqual(expected);
    expect(await handles(B, user)).toEqual(expected);
    expect((await whoami(B, browsers[0]!.cookie)).handle).toBe(browsers[0]!.handle);
    const indexKey = await indexKeyHolding(inspect, browsers[0]!.handle!);
    expect(await inspect.zCard(indexKey)).toBe(5);
    expect(await inspect.exists(`${indexKey}:meta`)).toBe(1);
    for (const b of browsers) expect(await inspect.exists(ownerKeyOf(b.sessionId))).toBe(1);
    expect(await keysWithoutExpiry(inspect)).toEqual([]);

    const callsBefore = fake.calls.length;
    const res = await logout(B, browsers[3]!.cookie, 'everywhere', true);
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie().join('\n')).toMatch(/connect\.sid=;.*Expires=Thu, 01 Jan 1970/);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      loggedOut: true,
      revocation: { accessToken: 'revoked', refreshToken: 'revoked' },
      sessions: { sessions: 5, revoked: 10, queued: 0, failed: 0 },
    });

    // The stand-in received each of the ten tokens and revoked them all; nothing else was sent.
    const received = fake.calls.slice(callsBefore);
    for (const token of tokensOf(browsers)) {
      expect(received.filter((c) => c.token === token && c.result === 200)).toHaveLength(1);
      expect(fake.isActive(token)).toBe(false);
    }
    expect(received).toHaveLength(10);
    await expectSignedOut(browsers);
    for (const b of browsers) expect(await inspect.exists(tombstoneKeyOf(b.sessionId))).toBe(1);
    expect(await list(A, user)).toEqual([]);
    expect(await list(B, user)).toEqual([]);
    expect(await inspect.exists(indexKey)).toBe(0);
    expect(await inspect.exists(`${indexKey}:meta`)).toBe(0);
    for (const b of browsers) expect(await inspect.exists(ownerKeyOf(b.sessionId))).toBe(0);
    expect(await inspect.pTTL(`${indexKey}:nbf`)).toBeGreaterThan(0);
    expect(await keysWithoutExpiry(inspect)).toEqual([]);

    // Another user is untouched.
    expect(await signedInAs(other)).toEqual([bystander, bystander]);
    expect(fake.isActive(other.tokens.refreshToken)).toBe(true);
    expect(await handles(A, bystander)).toEqual([other.handle]);

    // The audit event of the process that ran it says what happened.
    const event = (
      await B.waitFor(
        (r) => r.type === 'logout' && (r.event as { scope?: string }).scope === 'everywhere',
        5000,
        'the audit event',
      )
    ).event as Record<string, unknown>;
    expect(event).toMatchObject({
      scope: 'everywhere',
      loggedOut: true,
      sessionDestroyed: true,
      sessions: { sessions: 5, revoked: 10, queued: 0, failed: 0 },
    });
  });

  it("'others' keeps exactly the current session, on both processes", async () => {
    const user = newUser();
    const browsers = [await signIn(A, user), await signIn(B, user), await signIn(A, user), await signIn(B, user)];
    const current = browsers[1]!;
    const others = browsers.filter((b) => b !== current);

    const res = await logout(B, current.cookie, 'others');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
    // The current session stays: its cookie is not cleared, its tokens are not revoked.
    expect(res.headers.getSetCookie().join('\n')).not.toMatch(/connect\.sid=;/);
    expect(await signedInAs(current)).toEqual([user, user]);
    expect(await inStore(current)).toBe(true);
    expect(fake.isActive(current.tokens.accessToken)).toBe(true);
    expect(fake.isActive(current.tokens.refreshToken)).toBe(true);
    await expectSignedOut(others);
    for (const token of tokensOf(others)) {
      expect(revokedAtPolar(fake, token)).toBe(true);
      expect(fake.isActive(token)).toBe(false);
    }
    expect(fake.calls.some((c) => c.token === current.tokens.accessToken)).toBe(false);
    expect(fake.calls.some((c) => c.token === current.tokens.refreshToken)).toBe(false);
    expect(await handles(A, user)).toEqual([current.handle]);
    expect(await handles(B, user)).toEqual([current.handle]);
    const event = events(B).find((e) => e.scope === 'others');
    expect(event).toMatchObject({ scope: 'others', sessions: { sessions: 3, revoked: 6, queued: 0, failed: 0 } });

    // Again, from the same session, once a new browser has signed in since (JSON this time).
    const later = await signIn(A, user);
    const again = await logout(A, current.cookie, 'others', true);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({
      loggedOut: false,
      sessions: { sessions: 1, revoked: 2, queued: 0, failed: 0 },
    });
    await expectSignedOut([later]);
    expect(await signedInAs(current)).toEqual([user, user]);
    expect(await handles(B, user)).toEqual([current.handle]);
  });

  it('logins racing a logout everywhere: none that began before it survives, and the index never lies', async () => {
    const user = newUser();
    const first = await signIn(A, user);
    // Six logins that began before the logout (their sessions generated), held until after it.
    const gated = [A, B, A, B, A, B].map((app) => gatedLogin(app, fake, user));
    await Promise.all(gated.map((g) => g.reached));
    // And twelve more fired at the same time as the logout, on both processes.
    const racing = Array.from({ length: 12 }, (_, i) =>
      login(i % 2 ? A : B, fake, user).then(
        (b) => b,
        () => undefined,
      ),
    );
    const res = await logout(A, first.cookie, 'everywhere', true);
    expect(res.status).toBe(200);
    await Promise.all(gated.map((g) => g.release()));
    const held = await Promise.all(
      gated.map((g) =>
        g.done.then(
          (b) => b,
          () => undefined,
        ),
      ),
    );
    const raced = (await Promise.all(racing)).filter((b): b is Browser => b !== undefined);
    for (const b of [...held, ...raced]) if (b) secrets.add(b.sessionId);

    await expectSignedOut([first]);
    // A login that began before the logout cannot leave a live session, whether or not its save was refused.
    for (const b of held) {
      if (!b) continue;
      expect(await signedInAs(b)).toEqual([null, null]);
      expect(await inStore(b)).toBe(false);
    }
    // Racing logins may begin after the mark and live; the index names exactly those that live.
    const alive: string[] = [];
    for (const b of raced) {
      const [onA, onB] = await signedInAs(b);
      expect(onA).toBe(onB);
      if (onA === user) alive.push(b.handle!);
    }
    expect(await handles(A, user)).toEqual(alive.sort());

    // Whatever lives is indexed: one more logout everywhere ends all of it.
    if (raced.length > 0) {
      const survivor = raced.find((b) => alive.includes(b.handle!));
      if (survivor) {
        const again = await logout(B, survivor.cookie, 'everywhere', true);
        expect(((await again.json()) as { sessions: { sessions: number } }).sessions.sessions).toBe(alive.length);
      }
    }
    await expectSignedOut([...raced, ...held.filter((b): b is Browser => b !== undefined)]);
    expect(await list(B, user)).toEqual([]);
  });

  it("two 'everywhere' at once from two devices on two processes: all ended, no other session ended twice", async () => {
    const user = newUser();
    const browsers: Browser[] = [];
    for (let i = 0; i < 8; i += 1) browsers.push(await signIn(i % 2 ? B : A, user));
    const callsBefore = fake.calls.length;
    const [one, two] = await Promise.all([
      logout(A, browsers[0]!.cookie, 'everywhere', true),
      logout(B, browsers[1]!.cookie, 'everywhere', true),
    ]);
    expect([one.status, two.status]).toEqual([200, 200]);
    const summaries = [
      ((await one.json()) as { sessions: lib.SessionsLogoutSummary }).sessions,
      ((await two.json()) as { sessions: lib.SessionsLogoutSummary }).sessions,
    ];
    await expectSignedOut(browsers);
    expect(await list(A, user)).toEqual([]);
    // Every token is revoked (at once, or by the outbox), unless a logout said it failed (a loaded machine may make
    // a call and its hand-over to the outbox both run out of time).
    const failed = summaries[0]!.failed + summaries[1]!.failed;
    await waitUntil(
      () => tokensOf(browsers).filter((t) => !revokedAtPolar(fake, t)).length <= failed,
      20_000,
      `every token revoked or counted failed (${JSON.stringify(summaries)})`,
    );
    // Each of the six other sessions was ended, and its tokens handled, by one of the two logouts only. (Each logout's
    // own session follows its usual line, and the other logout may end it meanwhile: those two may count twice.)
    // Before the fix, each logout ended all eight: 16 sessions, 32 tokens.
    const ended = summaries[0]!.sessions + summaries[1]!.sessions;
    expect(ended).toBeGreaterThanOrEqual(8);
    expect(ended).toBeLessThanOrEqual(10);
    const handled = summaries.reduce((n, x) => n + x.revoked + x.queued + x.failed, 0);
    expect(handled).toBeGreaterThanOrEqual(16);
    expect(handled).toBeLessThanOrEqual(20);
    expect(fake.calls.length - callsBefore).toBeLessThanOrEqual(20);
  }, 60_000);

  it('a slow request in flight on the other process that saves after the logout does not bring the session back', async () => {
    const user = newUser();
    const victim = await signIn(A, user);
    const actor = await signIn(A, user);
    const slow = slowRequest(B, victim.cookie);
    await slow.loaded;
    const res = await logout(A, actor.cookie, 'everywhere', true);
    expect(((await res.json()) as { sessions: unknown }).sessions).toMatchObject({ sessions: 2, revoked: 4 });
    expect(await inStore(victim)).toBe(false);
    await slow.release();
    await slow.response;
    // The save at the end of the slow request was refused.
    expect(await inStore(victim)).toBe(false);
    await expectSignedOut([victim, actor]);
    expect(await list(B, user)).toEqual([]);
    expect(await list(A, user)).toEqual([]);
  });

  it('a login right after a logout everywhere works and is indexed, on both processes', async () => {
    const user = newUser();
    const before = await signIn(A, user);
    await logout(A, before.cookie, 'everywhere').then((r) => expect(r.status).toBe(303));
    const after = await signIn(B, user);
    expect(await signedInAs(after)).toEqual([user, user]);
    expect(await handles(A, user)).toEqual([after.handle]);
    const indexKey = await indexKeyHolding(inspect, after.handle!);
    expect(await inspect.zCard(indexKey)).toBe(1);
    expect(await inspect.pTTL(indexKey)).toBeGreaterThan(0);
    // And it is still alive a moment later (a write after the login, and a read on the other process).
    const slow = slowRequest(A, after.cookie);
    await slow.loaded;
    await slow.release();
    expect((await slow.response).status).toBe(200);
    expect(await signedInAs(after)).toEqual([user, user]);
    expect(await inStore(after)).toBe(true);
  });

  it('expired sessions: pruned from the index, and the index expires with its last session', async () => {
    const user = newUser();
    const MAX_AGE_MS = 1500;
    const startedAt = Date.now();
    const short = [await signIn(A, user, { maxAgeMs: MAX_AGE_MS }), await signIn(B, user, { maxAgeMs: MAX_AGE_MS })];
    const indexKey = await indexKeyHolding(inspect, short[0]!.handle!);
    // Each entry's score is its session's expiry plus a bounded margin; the key expires with the latest entry.
    const scores = (await inspect.zRangeWithScores(indexKey, 0, -1)).map((e) => e.score);
    expect(scores).toHaveLength(2);
    const latest = Math.max(...scores);
    for (const score of scores) {
      expect(score).toBeGreaterThanOrEqual(startedAt + MAX_AGE_MS);
      expect(score).toBeLessThanOrEqual(Date.now() + MAX_AGE_MS + 10 * 60_000);
    }
    const pttl = await inspect.pTTL(indexKey);
    expect(pttl).toBeGreaterThan(0);
    expect(Math.abs(Date.now() + pttl - latest)).toBeLessThan(2000);
    expect(Math.abs(Date.now() + (await inspect.pTTL(`${indexKey}:meta`)) - latest)).toBeLessThan(2000);

    // Once the store has let them go, list() no longer shows them and the index keys are gone.
    await waitUntil(async () => !(await inStore(short[0]!)) && !(await inStore(short[1]!)), 10_000, 'expiry');
    expect(await list(A, user)).toEqual([]);
    expect(await inspect.exists(indexKey)).toBe(0);
    expect(await inspect.exists(`${indexKey}:meta`)).toBe(0);
    for (const b of short) expect(await inspect.exists(ownerKeyOf(b.sessionId))).toBe(0);

    // With one long-lived session beside an expired one, only the expired one is pruned.
    const long = await signIn(A, user);
    const brief = await signIn(B, user, { maxAgeMs: MAX_AGE_MS });
    await waitUntil(async () => !(await inStore(brief)), 10_000, 'expiry');
    expect(await handles(B, user)).toEqual([long.handle]);
    expect(await inspect.zCard(await indexKeyHolding(inspect, long.handle!))).toBe(1);
    expect(await keysWithoutExpiry(inspect)).toEqual([]);
  });

  it('regenerate() moves the entry: old handle gone, new one present, the same on both processes', async () => {
    const user = newUser();
    const browser = await signIn(A, user);
    const sibling = await signIn(B, user);
    const moved = await regenerate(browser, B);
    secrets.add(moved.sessionId);
    expect(moved.sessionId).not.toBe(browser.sessionId);
    expect(moved.handle).not.toBe(browser.handle);
    expect((await whoami(A, moved.cookie)).handle).toBe(moved.handle);
    expect(await handles(A, user)).toEqual([moved.handle, sibling.handle].sort());
    expect(await inspect.zCard(await indexKeyHolding(inspect, moved.handle!))).toBe(2);
    expect(await inspect.exists(ownerKeyOf(browser.sessionId))).toBe(0);
    expect(await inspect.exists(ownerKeyOf(moved.sessionId))).toBe(1);
    expect(await signedInAs(browser)).toEqual([null, null]);
    expect(await signedInAs(moved)).toEqual([user, user]);

    // The moved session is still one of the user's: logging out everywhere ends it too.
    const res = await logout(A, sibling.cookie, 'everywhere', true);
    expect(((await res.json()) as { sessions: unknown }).sessions).toMatchObject({ sessions: 2, revoked: 4 });
    await expectSignedOut([moved, sibling]);
  });

  it('Polar down during the fan-out: the tokens are queued in the outbox and revoked once it heals', async () => {
    const user = newUser();
    const browsers = [await signIn(A, user), await signIn(B, user), await signIn(A, user)];
    fake.fail({ type: 'status', status: 503 });
    const res = await logout(A, browsers[0]!.cookie, 'everywhere', true);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      loggedOut: true,
      sessions: { sessions: 3, revoked: 0, queued: 6, failed: 0 },
    });
    // Signed out everywhere at once, although Polar has not revoked anything yet.
    await expectSignedOut(browsers);
    for (const token of tokensOf(browsers)) expect(fake.isActive(token)).toBe(true);
    // Queued in Redis, encrypted.
    const dump = await redis.dump();
    for (const token of tokensOf(browsers)) expect(dump).not.toContain(token);

    fake.heal();
    await waitUntil(
      () => tokensOf(browsers).every((t) => revokedAtPolar(fake, t)),
      20_000,
      'the outbox to revoke all 6',
    );
    for (const token of tokensOf(browsers)) expect(fake.isActive(token)).toBe(false);
    const settled = (): number =>
      children.flatMap((c) => c.records.filter((r) => r.type === 'settled' && r.outcome === 'revoked')).length;
    await waitUntil(() => settled() >= 6, 5000, 'six settled records');
  });
});
