/**
 * The registry's own API against real stores: MemoryStore with the index in memory, and connect-redis with the index
 * in a real redis-server. Sessions are made through real requests (express-session on the wrapped store);
 * list(), logoutUser() and logoutSession() are called directly, the way an admin action or a webhook would.
 */
import { RedisStore } from 'connect-redis';
import session from 'express-session';
import * as lib from '../../lib';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import { signedCookie } from '../reliability/support/race-app';
import {
  connectNodeRedis,
  describeWithRedis,
  redisAvailable,
  startRedisServer,
  type NodeRedisClient,
  type RedisServer,
} from '../support/redis-server';
import {
  login,
  regenerate,
  revokedAtPolar,
  startInProcessApp,
  stored,
  waitUntil,
  whoami,
  type Browser,
  type InProcessApp,
} from './support/client';
import { COOKIE_SECRET } from './support/sessions-app.cjs';
import { indexKeyHolding, keysWithoutExpiry, ownerKeyOf, tombstoneKeyOf } from './support/redis-keys';

let fake: FakePolar;
let revoker: lib.PolarRevoker;
let redis: RedisServer | undefined;
let client: NodeRedisClient | undefined;
let userCounter = 0;
/** The registry's timeoutMs in these tests: a loaded machine must not fail a login (a write past it is refused). */
const GENEROUS_MS = 2000;

beforeAll(async () => {
  fake = await startFakePolar();
  revoker = lib.createPolarRevoker({
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    baseUrl: fake.url,
    timeoutMs: 2000,
  });
  if (redisAvailable) {
    redis = await startRedisServer();
    client = await connectNodeRedis(redis.url);
  }
});
afterAll(async () => {
  revoker.close();
  client?.destroy();
  await redis?.stop();
  await fake.close();
});

const userIdOf = (data: Record<string, unknown>): unknown => (data.user as { id?: unknown } | undefined)?.id;
const polar = () => ({ clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url });
const newUser = (): string => `reg-user-${++userCounter}@example.com`;
const tokensOf = (browsers: Browser[]): string[] =>
  browsers.flatMap((b) => [b.tokens.accessToken, b.tokens.refreshToken]);

interface Setup {
  inner: session.Store;
  registry: lib.SessionRegistry;
  app: InProcessApp;
}

type Kind = 'memory' | 'redis';

describe('the registry (memory index, MemoryStore)', () => suite('memory'));
describeWithRedis('the registry (Redis index, connect-redis)', () => suite('redis'));

function suite(kind: Kind): void {
  {
    let s: Setup;
    let prefixCounter = 0;

    beforeEach(async () => {
      const inner =
        kind === 'memory'
          ? new session.MemoryStore()
          : new RedisStore({ client: client!, prefix: `sess${++prefixCounter}:` });
      const registry = lib.createSessionRegistry({
        store: inner,
        userIdOf,
        ...(kind === 'redis' && { redis: client! }),
        timeoutMs: GENEROUS_MS,
      });
      const app = await startInProcessApp(lib, { store: registry.store, sessions: registry, polar: polar() });
      s = { inner, registry, app };
    });
    afterEach(async () => {
      jest.useRealTimers();
      fake.heal();
      await s.app.close();
      await s.registry.close();
    });

    const signIn = (userId: string | undefined, userAgent?: string): Promise<Browser> =>
      login(s.app, fake, userId, userAgent ? { userAgent } : {});
    const signedIn = async (b: Browser): Promise<boolean> =>
      (await whoami(s.app, b.cookie)).user === b.userId && (await stored(s.inner, b.sessionId)) !== null;

    it('list() gives a handle, times and the User-Agent of each session, nothing secret', async () => {
      const user = newUser();
      const startedAt = Date.now();
      const longAgent = `Mozilla/5.0 ${'x'.repeat(600)}`;
      const one = await signIn(user, 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0');
      const two = await signIn(user, longAgent);
      await signIn(newUser()); // someone else

      const sessions = await s.registry.list(user);
      expect(sessions.map((x) => x.id).sort()).toEqual([one.handle, two.handle].sort());
      for (const info of sessions) {
        expect(Object.keys(info).sort()).toEqual(['createdAt', 'id', 'lastSeenAt', 'userAgent']);
        expect(info.createdAt).toBeInstanceOf(Date);
        expect(info.lastSeenAt).toBeInstanceOf(Date);
        expect(info.createdAt.getTime()).toBeGreaterThanOrEqual(startedAt - 1000);
        expect(info.createdAt.getTime()).toBeLessThanOrEqual(Date.now());
        expect(info.lastSeenAt.getTime()).toBeGreaterThanOrEqual(info.createdAt.getTime() - 60_000);
      }
      const byId = new Map(sessions.map((x) => [x.id, x]));
      expect(byId.get(one.handle!)!.userAgent).toBe('Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0');
      expect(byId.get(two.handle!)!.userAgent).toBe(longAgent.slice(0, 512));
      // No session id, no token, no cookie in what list() returns.
      const text = JSON.stringify(sessions);
      for (const b of [one, two]) {
        for (const secret of [b.sessionId, b.tokens.accessToken, b.tokens.refreshToken, b.cookie]) {
          expect(text).not.toContain(secret);
        }
      }
      expect(await s.registry.list(`${user}-no-such`)).toEqual([]);
    });

    it('a user id given as a number is the same user as its string', async () => {
      const numeric = 4242 + userCounter++;
      const b = await login(s.app, fake, String(numeric));
      expect((await s.registry.list(numeric)).map((x) => x.id)).toEqual([b.handle]);
    });

    it('lastSeenAt is written at most once a minute', async () => {
      const user = newUser();
      // Only Date is faked: timers, sockets and Redis run for real.
      jest.useFakeTimers({
        doNotFake: [
          'hrtime',
          'nextTick',
          'performance',
          'queueMicrotask',
          'setImmediate',
          'clearImmediate',
          'setInterval',
          'clearInterval',
          'setTimeout',
          'clearTimeout',
        ],
        now: Date.now(),
      });
      const b = await signIn(user);
      const [first] = await s.registry.list(user);
      for (let i = 0; i < 5; i += 1) {
        jest.setSystemTime(Date.now() + 5000);
        expect((await whoami(s.app, b.cookie)).user).toBe(user);
      }
      const [within] = await s.registry.list(user);
      expect(within!.lastSeenAt.getTime()).toBe(first!.lastSeenAt.getTime()); // 25 s later: not written

      jest.setSystemTime(Date.now() + 61_000);
      const seenAt = Date.now();
      expect((await whoami(s.app, b.cookie)).user).toBe(user);
      const [after] = await s.registry.list(user);
      expect(after!.lastSeenAt.getTime()).toBeGreaterThanOrEqual(seenAt - 60_000);
      expect(after!.lastSeenAt.getTime()).toBeGreaterThan(first!.lastSeenAt.getTime());
      expect(after!.createdAt.getTime()).toBe(first!.createdAt.getTime());

      jest.setSystemTime(Date.now() + 10_000);
      expect((await whoami(s.app, b.cookie)).user).toBe(user);
      const [again] = await s.registry.list(user);
      expect(again!.lastSeenAt.getTime()).toBe(after!.lastSeenAt.getTime());
    });

    it('list() drops an entry whose session is gone from the store', async () => {
      const user = newUser();
      const [one, two] = [await signIn(user), await signIn(user)];
      const indexKey = kind === 'redis' ? await indexKeyHolding(client!, one.handle!) : undefined;
      // Gone behind the registry's back (an expiry, an operator's DEL).
      await new Promise<void>((resolve, reject) =>
        s.inner.destroy(one.sessionId, (err) => (err ? reject(err as Error) : resolve())),
      );
      expect((await s.registry.list(user)).map((x) => x.id)).toEqual([two.handle]);
      if (indexKey) {
        expect(await client!.zCard(indexKey)).toBe(1);
        expect(await client!.exists(ownerKeyOf(one.sessionId))).toBe(0);
        expect(await keysWithoutExpiry(client!)).toEqual([]);
      }
    });

    it('never indexes an anonymous session', async () => {
      const anonymous = await signIn(undefined);
      expect(await stored(s.inner, anonymous.sessionId)).not.toBeNull(); // it is a stored session (a cart)
      if (kind === 'redis') expect(await client!.exists(ownerKeyOf(anonymous.sessionId))).toBe(0);
      // Ending every session of every user in sight leaves it alone.
      expect(await s.registry.logoutUser('undefined', { revoker })).toMatchObject({ sessions: 0 });
      expect(await stored(s.inner, anonymous.sessionId)).not.toBeNull();
      expect(fake.isActive(anonymous.tokens.refreshToken)).toBe(true);
    });

    it('a session whose user changes (or signs out within it) is listed and ended only for its current user', async () => {
      const user = newUser();
      const someone = newUser();
      const mine = await signIn(user);
      const switched = await signIn(user);
      const signedOut = await signIn(user);
      // The same browsers sign in as someone else, and sign out within the session, without a new session id.
      const now = await login(s.app, fake, someone, { cookie: switched.cookie });
      expect(now.sessionId).toBe(switched.sessionId);
      await login(s.app, fake, undefined, { cookie: signedOut.cookie });
      expect((await whoami(s.app, signedOut.cookie)).user).toBeNull();
      expect(await stored(s.inner, signedOut.sessionId)).not.toBeNull();

      expect((await s.registry.list(user)).map((x) => x.id)).toEqual([mine.handle]);
      expect((await s.registry.list(someone)).map((x) => x.id)).toEqual([switched.handle]);
      expect(await s.registry.logoutUser(user, { revoker })).toMatchObject({ sessions: 1, revoked: 2 });
      expect(await signedIn(mine)).toBe(false);
      expect((await whoami(s.app, switched.cookie)).user).toBe(someone);
      expect(await stored(s.inner, signedOut.sessionId)).not.toBeNull();
      expect(fake.isActive(now.tokens.refreshToken)).toBe(true);
    });

    it('logoutUser() ends every session but `except`, revokes their tokens, and says so', async () => {
      const user = newUser();
      const browsers = [await signIn(user), await signIn(user), await signIn(user)];
      const [kept, ...ended] = browsers as [Browser, ...Browser[]];
      const other = await signIn(newUser());
      const summary = await s.registry.logoutUser(user, { revoker, except: kept.handle! });
      expect(summary).toEqual({ sessions: 2, revoked: 4, queued: 0, failed: 0 });
      for (const b of ended) {
        expect(await signedIn(b)).toBe(false);
        expect(await stored(s.inner, b.sessionId)).toBeNull();
      }
      for (const token of tokensOf(ended)) expect(revokedAtPolar(fake, token)).toBe(true);
      expect(await signedIn(kept)).toBe(true);
      expect(await signedIn(other)).toBe(true);
      for (const token of tokensOf([kept, other])) expect(fake.isActive(token)).toBe(true);
      expect((await s.registry.list(user)).map((x) => x.id)).toEqual([kept.handle]);
      // A user with no session: nothing to do.
      expect(await s.registry.logoutUser(newUser(), { revoker })).toEqual({
        sessions: 0,
        revoked: 0,
        queued: 0,
        failed: 0,
      });
    });

    it('logoutUser() without a revoker hands every token to the outbox, which revokes them', async () => {
      const user = newUser();
      const browsers = [await signIn(user), await signIn(user)];
      const outbox = lib.createRevocationOutbox({
        ...polar(),
        timeoutMs: 1000,
        backoff: { initialDelayMs: 100, maxDelayMs: 500 },
      });
      try {
        const summary = await s.registry.logoutUser(user, { outbox });
        expect(summary).toEqual({ sessions: 2, revoked: 0, queued: 4, failed: 0 });
        for (const b of browsers) expect(await signedIn(b)).toBe(false);
        await waitUntil(() => tokensOf(browsers).every((t) => revokedAtPolar(fake, t)), 10_000, 'the outbox');
      } finally {
        await outbox.close();
      }
    });

    it('timeoutMs is one budget for the whole fan-out: sessions read after it send nothing to Polar', async () => {
      const user = newUser();
      // More sessions than are ended at once (64): the store is read in three waves.
      const browsers: Browser[] = [];
      for (let i = 0; i < 130; i += 1) browsers.push(await signIn(user));
      // A slow store: every read takes 150 ms, so the third wave is read at 300 ms or later, after the budget.
      const get = s.inner.get.bind(s.inner);
      s.inner.get = (sid, callback) => void setTimeout(() => get(sid, callback), 150);
      fake.fail({ type: 'hang' });
      const outbox = lib.createRevocationOutbox({
        ...polar(),
        timeoutMs: 1000,
        backoff: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
      });
      try {
        const sentBefore = fake.calls.length;
        const summary = await s.registry.logoutUser(user, { revoker, outbox, timeoutMs: 250 });
        s.inner.get = get;
        // Tokens of the last wave never reached Polar (with a budget per session, all 260 did): at most the first
        // two waves' 256 were sent, and far fewer on a machine where a wave takes longer than its 150 ms.
        const sent = new Set(fake.calls.slice(sentBefore).map((call) => call.token));
        expect(sent.size).toBeGreaterThan(0);
        expect(sent.size).toBeLessThanOrEqual(256);
        const lastWave = browsers.filter((b) => !sent.has(b.tokens.accessToken) && !sent.has(b.tokens.refreshToken));
        expect(lastWave.length).toBeGreaterThanOrEqual(2);
        // Every session ended all the same, and every token queued: none could be revoked (Polar hangs).
        expect(summary).toEqual({ sessions: 130, revoked: 0, queued: 260, failed: 0 });
        for (const b of [...browsers.slice(0, 2), ...lastWave.slice(0, 2)]) expect(await signedIn(b)).toBe(false);
        expect(await s.registry.list(user)).toEqual([]);
      } finally {
        s.inner.get = get;
        fake.heal();
        await outbox.close();
      }
    });

    it('logoutUser() with Polar down and no outbox: sessions ended, tokens counted as failed', async () => {
      const user = newUser();
      const browsers = [await signIn(user), await signIn(user)];
      fake.fail({ type: 'status', status: 503 });
      const summary = await s.registry.logoutUser(user, { revoker, timeoutMs: 1000 });
      expect(summary).toEqual({ sessions: 2, revoked: 0, queued: 0, failed: 4 });
      for (const b of browsers) expect(await signedIn(b)).toBe(false);
      expect(await s.registry.list(user)).toEqual([]);
    });

    it('a session read (and refused) while logoutUser() is ending it still has its tokens revoked', async () => {
      const user = newUser();
      const [one, two] = [await signIn(user), await signIn(user)];
      // The ending's read of `two` waits until `two`'s own next request has come and gone.
      const get = s.inner.get.bind(s.inner);
      let reached!: () => void;
      let release!: () => void;
      const atGate = new Promise<void>((resolve) => (reached = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      let armed = true;
      s.inner.get = (sid, callback) => {
        if (!armed || sid !== two.sessionId) return get(sid, callback);
        armed = false;
        reached();
        void released.then(() => get(sid, callback));
      };
      const ending = s.registry.logoutUser(user, { revoker });
      await atGate;
      // Its request, after the "not before" mark: refused.
      expect((await whoami(s.app, two.cookie)).user).toBeNull();
      release();
      expect(await ending).toEqual({ sessions: 2, revoked: 4, queued: 0, failed: 0 });
      for (const token of tokensOf([one, two])) expect(revokedAtPolar(fake, token)).toBe(true);
      expect(await stored(s.inner, two.sessionId)).toBeNull();
      expect(await s.registry.list(user)).toEqual([]);
    });

    it('logoutUser() needs a revoker or an outbox', async () => {
      const user = newUser();
      const b = await signIn(user);
      let error: unknown;
      try {
        await s.registry.logoutUser(user, {});
      } catch (err) {
        error = err;
      }
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('revoker') });
      expect(await signedIn(b)).toBe(true);
    });

    it('logoutSession() ends one session of its user, and nothing for a handle of another user', async () => {
      const user = newUser();
      const someone = newUser();
      const [one, two] = [await signIn(user), await signIn(user)];
      const theirs = await signIn(someone);

      // A handle that is not this user's ends nothing (an admin page cannot be tricked across users).
      expect(await s.registry.logoutSession(user, theirs.handle!, { revoker })).toEqual({
        sessions: 0,
        revoked: 0,
        queued: 0,
        failed: 0,
      });
      expect(await signedIn(theirs)).toBe(true);
      expect(await s.registry.logoutSession(user, 'no-such-handle', { revoker })).toMatchObject({ sessions: 0 });

      expect(await s.registry.logoutSession(user, one.handle!, { revoker })).toEqual({
        sessions: 1,
        revoked: 2,
        queued: 0,
        failed: 0,
      });
      expect(await signedIn(one)).toBe(false);
      for (const token of tokensOf([one])) expect(revokedAtPolar(fake, token)).toBe(true);
      expect(await signedIn(two)).toBe(true);
      for (const token of tokensOf([two, theirs])) expect(fake.isActive(token)).toBe(true);
      expect((await s.registry.list(user)).map((x) => x.id)).toEqual([two.handle]);
      // Twice: already ended.
      expect(await s.registry.logoutSession(user, one.handle!, { revoker })).toMatchObject({ sessions: 0 });
    });

    it('a session of the user that the index missed is refused after logoutUser() (the "not before" mark)', async () => {
      const user = newUser();
      const known = await signIn(user);
      // Written straight into the app's store, as by an instance without the registry: the index never saw it.
      const sid = `missed-${userCounter}-${Date.now()}`;
      const data = {
        cookie: { originalMaxAge: null, httpOnly: true, path: '/' },
        user: { id: user },
        accessToken: 'x',
        refreshToken: 'y',
      } as unknown as session.SessionData;
      await new Promise<void>((resolve, reject) =>
        s.inner.set(sid, data, (err) => (err ? reject(err as Error) : resolve())),
      );
      await s.registry.logoutUser(user, { revoker });
      expect(await signedIn(known)).toBe(false);
      const who = await whoami(s.app, signedCookie(sid, 'connect.sid', COOKIE_SECRET));
      expect(who.user).toBeNull();
      // And a new login is not caught by the mark.
      const fresh = await signIn(user);
      expect(await signedIn(fresh)).toBe(true);
    });

    it("the default scope ends only the request's own session and its entry", async () => {
      const user = newUser();
      const [one, two] = [await signIn(user), await signIn(user)];
      const res = await fetch(`${s.app.url}/logout`, {
        method: 'POST',
        headers: { cookie: one.cookie },
        redirect: 'manual',
      });
      expect(res.status).toBe(303);
      expect(s.app.records.filter((r) => r.type === 'logout').at(-1)).toMatchObject({
        event: { scope: 'session', loggedOut: true },
      });
      expect(await signedIn(one)).toBe(false);
      expect(fake.isActive(one.tokens.refreshToken)).toBe(false);
      expect(await signedIn(two)).toBe(true);
      expect(fake.isActive(two.tokens.refreshToken)).toBe(true);
      expect((await s.registry.list(user)).map((x) => x.id)).toEqual([two.handle]);
      if (kind === 'redis') expect(await client!.exists(ownerKeyOf(one.sessionId))).toBe(0);
    });

    it('regenerate() moves the entry', async () => {
      const user = newUser();
      const b = await signIn(user);
      const moved = await regenerate(b);
      expect((await s.registry.list(user)).map((x) => x.id)).toEqual([moved.handle]);
      expect(moved.handle).not.toBe(b.handle);
      expect(await signedIn(moved)).toBe(true);
      expect((await whoami(s.app, b.cookie)).user).toBeNull();
    });

    it('idOf() names the request’s session as list() does, and is not the session id', async () => {
      const user = newUser();
      const b = await signIn(user);
      expect(b.handle).toBe(s.registry.idOf({ sessionID: b.sessionId }));
      expect(b.handle).not.toContain(b.sessionId);
      expect(s.registry.idOf({})).toBeUndefined();
    });
  }
}

describeWithRedis('ending sessions while Redis is slow', () => {
  it('every ended session keeps its tombstone and leaves the index, though Redis holds writes for longer than timeoutMs', async () => {
    const redisClient = client!;
    /** connect-redis whose next get() makes Redis hold writes (and forget its scripts) before it answers. */
    class SlowingStore extends RedisStore {
      armed = false;
      override async get(sid: string, cb?: (err: unknown, data?: session.SessionData | null) => unknown) {
        if (this.armed) {
          this.armed = false;
          // As after a failover or a restart (scripts gone) under load: writes wait past timeoutMs.
          await redisClient.scriptFlush();
          await redisClient.sendCommand(['CLIENT', 'PAUSE', String(GENEROUS_MS + 500), 'WRITE']);
        }
        return (await super.get(sid, cb)) as unknown;
      }
    }
    const inner = new SlowingStore({ client: redisClient, prefix: 'slow:' });
    const registry = lib.createSessionRegistry({ store: inner, userIdOf, redis: redisClient, timeoutMs: GENEROUS_MS });
    const app = await startInProcessApp(lib, { store: registry.store, sessions: registry, polar: polar() });
    try {
      const user = newUser();
      const browsers = [await login(app, fake, user), await login(app, fake, user), await login(app, fake, user)];
      const indexKey = await indexKeyHolding(redisClient, browsers[0]!.handle!);
      inner.armed = true;
      const summary = await registry.logoutUser(user, { revoker });
      expect(summary).toEqual({ sessions: 3, revoked: 6, queued: 0, failed: 0 });
      for (const b of browsers) {
        expect(await redisClient.exists(`slow:${b.sessionId}`)).toBe(0);
        expect(await redisClient.pTTL(tombstoneKeyOf(b.sessionId))).toBeGreaterThan(0);
        expect(await redisClient.exists(ownerKeyOf(b.sessionId))).toBe(0);
      }
      expect(await redisClient.exists(indexKey)).toBe(0);
      expect(await redisClient.exists(`${indexKey}:meta`)).toBe(0);
    } finally {
      await redisClient.sendCommand(['CLIENT', 'UNPAUSE']);
      await app.close();
      await registry.close();
    }
  });
});

describeWithRedis("the index's Redis gone during a logout", () => {
  interface Gone {
    app: InProcessApp;
    inner: session.MemoryStore;
    user: string;
    browsers: Browser[];
    close(): Promise<void>;
  }
  /** Three sessions of a user in a MemoryStore (they stay readable), the index on a Redis then killed. */
  async function indexGone(): Promise<Gone> {
    const own = await startRedisServer();
    const inner = new session.MemoryStore();
    const registry = lib.createSessionRegistry({ store: inner, userIdOf, redis: own.url, timeoutMs: GENEROUS_MS });
    const app = await startInProcessApp(lib, { store: registry.store, sessions: registry, polar: polar() });
    const user = newUser();
    const browsers = [await login(app, fake, user), await login(app, fake, user), await login(app, fake, user)];
    await own.kill();
    return {
      app,
      inner,
      user,
      browsers,
      async close() {
        await app.close();
        await registry.close();
        await own.stop();
      },
    };
  }
  const post = (app: InProcessApp, path: string, cookie: string) =>
    fetch(`${app.url}${path}`, { method: 'POST', headers: { cookie, accept: 'application/json' } });

  it("'others' ends nothing and fails with 503 SESSION_INDEX_FAILED", async () => {
    const g = await indexGone();
    try {
      const res = await post(g.app, '/logout/others', g.browsers[0]!.cookie);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ error: 'SESSION_INDEX_FAILED' });
      for (const b of g.browsers) {
        expect((await whoami(g.app, b.cookie)).user).toBe(g.user);
        expect(fake.isActive(b.tokens.refreshToken)).toBe(true);
      }
    } finally {
      await g.close();
    }
  }, 30_000);

  it("'everywhere' logs the current session out and ends nothing else", async () => {
    const g = await indexGone();
    try {
      const [current, ...others] = g.browsers as [Browser, ...Browser[]];
      const started = performance.now();
      const res = await post(g.app, '/logout/everywhere', current.cookie);
      const elapsed = performance.now() - started;
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ loggedOut: true, sessions: { sessions: 1, revoked: 2 } });
      expect(await stored(g.inner, current.sessionId)).toBeNull();
      expect(revokedAtPolar(fake, current.tokens.refreshToken)).toBe(true);
      for (const b of others) {
        expect(await stored(g.inner, b.sessionId)).not.toBeNull();
        expect(fake.isActive(b.tokens.refreshToken)).toBe(true);
      }
      expect(elapsed).toBeLessThan(15_000);
    } finally {
      await g.close();
    }
  }, 30_000);

  // The index's Redis also holds the tombstones: this session's tombstone fails too, and must not mask the index's failure.
  it("'everywhere': its audit event says the other sessions could not be ended", async () => {
    const g = await indexGone();
    try {
      await post(g.app, '/logout/everywhere', g.browsers[0]!.cookie);
      const event = g.app.records.filter((r) => r.type === 'logout').at(-1)?.event;
      expect(event).toMatchObject({ scope: 'everywhere', loggedOut: true, error: { code: 'SESSION_INDEX_FAILED' } });
    } finally {
      await g.close();
    }
  }, 30_000);
});

describe('options', () => {
  const store = new session.MemoryStore();

  it('createSessionRegistry() refuses bad options, naming them', () => {
    const bad: Array<[string, unknown]> = [
      ['store', { userIdOf }],
      ['store', { store: {}, userIdOf }],
      ['userIdOf', { store }],
      ['userIdOf', { store, userIdOf: 'user.id' }],
      ['tokensOf', { store, userIdOf, tokensOf: 1 }],
      ['prefix', { store, userIdOf, prefix: '' }],
      ['tombstoneTtlMs', { store, userIdOf, tombstoneTtlMs: 0 }],
      ['notBeforeTtlMs', { store, userIdOf, notBeforeTtlMs: -1 }],
      ['timeoutMs', { store, userIdOf, timeoutMs: 1.5 }],
      ['onRefused', { store, userIdOf, onRefused: true }],
      ['userIdof', { store, userIdOf, userIdof: userIdOf }],
    ];
    for (const [name, options] of bad) {
      expect(() => lib.createSessionRegistry(options as lib.SessionRegistryOptions)).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringContaining(name) }),
      );
    }
  });

  it("polarLogout() refuses a scope other than 'session' without a registry, and unknown scopes", () => {
    const client = { clientId: 'polar_ci_x', clientSecret: 'polar_cs_x', baseUrl: 'http://127.0.0.1:9' };
    for (const scope of ['others', 'everywhere'] as const) {
      expect(() => lib.polarLogout({ ...client, scope })).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringContaining('sessions') }),
      );
    }
    const sessions = lib.createSessionRegistry({ store, userIdOf });
    expect(() => lib.polarLogout({ ...client, sessions, scope: 'all' as never })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringContaining('scope') }),
    );
    expect(() => lib.polarLogout({ ...client, sessions: {} as never })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringContaining('sessions') }),
    );
    const handler = lib.polarLogout({ ...client, sessions, scope: 'everywhere' });
    handler.close();
    void sessions.close();
  });
});
