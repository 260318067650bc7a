/**
 * Races: two logouts of one session at once, and a request of the same session that is in flight while
 * the logout runs and saves the session afterwards (express-session saves modified sessions at the end of
 * the request, and every session with resave: true). Without a guard that save brings the destroyed
 * session back and its old cookie works again; guardSessionStore() must prevent it, with the memory store
 * and with connect-redis, in one process and across processes (Redis tombstones).
 */
import { randomBytes } from 'node:crypto';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import Redis from 'ioredis';
import {
  createMemoryTombstones,
  createRedisTombstones,
  guardSessionStore,
  type SessionStoreGuardOptions,
  type SessionTombstones,
} from '../../lib';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import { figure, skipped } from './support/figures';
import { trackUnhandled } from './support/process';
import { startRaceApp, storedSession, type RaceApp } from './support/race-app';
import {
  connectNodeRedis,
  describeWithRedis,
  keysMatching,
  redisAvailable,
  startRedisServer,
  type NodeRedisClient,
  type RedisServer,
} from '../support/redis-server';

const SECTION = 'Races';
const unhandled = trackUnhandled();
afterAll(() => unhandled.stop());

let fake: FakePolar;
const apps: RaceApp[] = [];
beforeAll(async () => {
  fake = await startFakePolar();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
  fake.heal();
  fake.setLatency(0);
});
afterAll(() => fake.close());

async function app(...args: Parameters<typeof startRaceApp>): Promise<RaceApp> {
  const started = await startRaceApp(...args);
  apps.push(started);
  return started;
}

/** Every raw session id the file created, to check that none is stored in a tombstone. */
const sessionIds = new Set<string>();

interface InFlightOutcome {
  /** The destroyed session is in the store again after the in-flight request ended. */
  back: boolean;
  /** The old cookie is logged in again. */
  oldCookieWorks: boolean;
  slowStatus: number;
}

/**
 * Logs in on `a`, starts a slow request on `a` that loads the session, logs out (on `b`, another instance
 * sharing the store, when given), releases the slow request, and looks at the store.
 */
async function inFlight(a: RaceApp, inner: session.Store, b: RaceApp = a): Promise<InFlightOutcome> {
  const { sessionId, cookie } = await a.login();
  sessionIds.add(sessionId);
  const gate = a.slow(cookie);
  await gate.loaded;
  const res = await b.postLogout(cookie);
  expect(res.status).toBe(303);
  expect(await storedSession(inner, sessionId)).toBeNull(); // the logout did destroy it
  gate.release();
  const slowStatus = (await gate.response).status;
  return {
    back: (await storedSession(inner, sessionId)) !== null,
    oldCookieWorks: (await a.whoami(cookie)) === 'ada',
    slowStatus,
  };
}

const describeOutcome = (o: InFlightOutcome): string =>
  `session back: ${o.back ? 'yes' : 'no'}, old cookie works: ${o.oldCookieWorks ? 'yes' : 'no'}`;

async function doubleLogout(a: RaceApp, inner: session.Store, label: string): Promise<void> {
  const { sessionId, cookie, tokens } = await a.login();
  sessionIds.add(sessionId);
  fake.setLatency(100); // all five are in flight together
  const before = unhandled.count;
  const responses = await Promise.all(Array.from({ length: 5 }, () => a.postLogout(cookie)));
  const statuses = responses.map((r) => r.status);
  const gone = (await storedSession(inner, sessionId)) === null;
  const ok =
    statuses.every((s) => s === 303) &&
    gone &&
    !fake.isActive(tokens.refreshToken) &&
    a.errors.length === 0 &&
    unhandled.count === before;
  figure(
    SECTION,
    `5 logouts of one session at once (${label})`,
    `answers ${[...new Set(statuses)].join(',')}, session ${gone ? 'gone' : 'kept'}, ${unhandled.count - before} unhandled`,
    '303 each, gone, 0 unhandled',
    ok,
  );
  expect(statuses).toEqual([303, 303, 303, 303, 303]);
  expect(gone).toBe(true);
  expect(a.events).toHaveLength(5);
  expect(a.events.every((e) => e.loggedOut)).toBe(true);
  expect(a.errors).toEqual([]);
}

// ---------------------------------------------------------------------------------------------------------

describe('with the memory store', () => {
  it('survives a double logout (guarded store)', async () => {
    const inner = new session.MemoryStore();
    await doubleLogout(await app({ store: guardSessionStore(inner), fake }), inner, 'memory store');
  });

  it('unguarded: an in-flight save brings the destroyed session back (the problem is real)', async () => {
    const inner = new session.MemoryStore();
    const outcome = await inFlight(await app({ store: inner, fake }), inner);
    figure(
      SECTION,
      'in-flight save after logout, unguarded (memory)',
      describeOutcome(outcome),
      'yes, yes (the race exists)',
      outcome.back && outcome.oldCookieWorks,
    );
    expect(outcome).toEqual({ back: true, oldCookieWorks: true, slowStatus: 200 });
  });

  it.each([
    ['a request that modifies the session', { slowRoute: 'modify' as const }],
    ['a request with resave: true', { slowRoute: 'read' as const, resave: true }],
    ['a request with rolling: true (touch)', { slowRoute: 'read' as const, rolling: true }],
  ])('guarded: %s cannot bring it back', async (label, options) => {
    const inner = new session.MemoryStore();
    const refused: string[] = [];
    const store = guardSessionStore(inner, { onRefused: ({ operation }) => void refused.push(operation) });
    const outcome = await inFlight(await app({ store, fake, ...options }), inner);
    figure(
      SECTION,
      `in-flight save after logout, guarded (memory): ${label}`,
      describeOutcome(outcome),
      'no, no',
      !outcome.back && !outcome.oldCookieWorks,
    );
    expect(outcome).toEqual({ back: false, oldCookieWorks: false, slowStatus: 200 });
    if (!('rolling' in options)) expect(refused).toContain('set');
  });

  it('undoes a write that passed the check while the session was being destroyed', async () => {
    class GatedMemoryStore extends session.MemoryStore {
      gate: { reached: () => void; proceed: Promise<void> } | undefined;
      override set(sid: string, sess: session.SessionData, cb?: (err?: unknown) => void): void {
        const gate = this.gate;
        this.gate = undefined;
        if (!gate) return super.set(sid, sess, cb);
        gate.reached();
        void gate.proceed.then(() => super.set(sid, sess, cb));
      }
    }
    const inner = new GatedMemoryStore();
    const refused: string[] = [];
    const store = guardSessionStore(inner, { onRefused: ({ operation }) => void refused.push(operation) });
    const sid = randomBytes(18).toString('base64url');
    sessionIds.add(sid);
    const sess = { cookie: { originalMaxAge: null }, user: 'ada' } as unknown as session.SessionData;

    let reached!: () => void;
    let proceed!: () => void;
    const atGate = new Promise<void>((r) => (reached = r));
    inner.gate = { reached, proceed: new Promise<void>((r) => (proceed = r)) };
    const written = new Promise<unknown>((resolve) => store.set(sid, sess, resolve));
    await atGate; // the guard checked, found no tombstone, and is writing
    await new Promise<void>((resolve, reject) => store.destroy(sid, (err) => (err ? reject(err) : resolve())));
    proceed();
    expect(await written).toBeUndefined();
    expect(await storedSession(inner, sid)).toBeNull();
    expect(refused).toEqual(['set']);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('the guard itself', () => {
  function recordingTombstones(): SessionTombstones & { keys: string[] } {
    const memory = createMemoryTombstones();
    const keys: string[] = [];
    return {
      keys,
      add: (key, ttl) => {
        keys.push(key);
        return memory.add(key, ttl);
      },
      has: (key) => {
        keys.push(key);
        return memory.has(key);
      },
    };
  }

  it('hands tombstones hashed ids only', async () => {
    const tombstones = recordingTombstones();
    const inner = new session.MemoryStore();
    const a = await app({ store: guardSessionStore(inner, { tombstones }), fake });
    const outcome = await inFlight(a, inner);
    expect(outcome.back).toBe(false);
    const raw = [...sessionIds].filter((sid) => tombstones.keys.some((k) => k.includes(sid)));
    expect(tombstones.keys.length).toBeGreaterThan(0);
    expect(tombstones.keys.every((k) => /^[A-Za-z0-9_-]{43}$/.test(k))).toBe(true);
    expect(raw).toEqual([]);
  });

  it('forgets tombstones after ttlMs, and bounds the memory ones', async () => {
    const inner = new session.MemoryStore();
    const store = guardSessionStore(inner, { ttlMs: 150 });
    const sess = { cookie: { originalMaxAge: null } } as unknown as session.SessionData;
    const set = (sid: string): Promise<unknown> => new Promise((resolve) => store.set(sid, sess, resolve));
    await new Promise((resolve) => store.destroy('sid-ttl', resolve));
    await set('sid-ttl');
    expect(await storedSession(inner, 'sid-ttl')).toBeNull();
    await new Promise((r) => setTimeout(r, 400));
    await set('sid-ttl');
    expect(await storedSession(inner, 'sid-ttl')).not.toBeNull();

    const bounded = createMemoryTombstones({ maxEntries: 3 });
    for (const key of ['a', 'b', 'c', 'd']) void bounded.add(key, 60_000); // memory tombstones are synchronous
    expect(['a', 'b', 'c', 'd'].map((k) => bounded.has(k))).toEqual([false, true, true, true]);
  });

  it('destroys the session even when the tombstone cannot be recorded, and says so', async () => {
    const inner = new session.MemoryStore();
    const tombstones: SessionTombstones = { add: () => Promise.reject(new Error('tombstones down')), has: () => false };
    const a = await app({ store: guardSessionStore(inner, { tombstones }), fake });
    const { sessionId, cookie } = await a.login();
    const res = await a.postLogout(cookie);
    // Logged out (the session is gone, the cookie cleared), and the audit event says the tombstone is missing.
    expect(res.status).toBe(303);
    expect(String(res.headers['set-cookie'])).toContain('connect.sid=;');
    expect(await storedSession(inner, sessionId)).toBeNull();
    expect(a.errors).toEqual([]);
    expect(a.events.at(-1)).toMatchObject({
      loggedOut: true,
      sessionDestroyed: true,
      error: { code: 'TOMBSTONE_FAILED' },
    });
  });

  it('reads without the check when it cannot read the tombstones (fails open), within tombstoneTimeoutMs', async () => {
    const inner = new session.MemoryStore();
    let sick = false;
    const memory = createMemoryTombstones();
    const tombstones: SessionTombstones = {
      add: (key, ttl) => memory.add(key, ttl),
      has: (key) => (sick ? new Promise<boolean>(() => undefined) : memory.has(key)),
    };
    const a = await app({ store: guardSessionStore(inner, { tombstones, tombstoneTimeoutMs: 100 }), fake });
    const { cookie } = await a.login();
    sick = true;
    const started = performance.now();
    expect(await a.whoami(cookie)).toBe('ada');
    const ms = performance.now() - started;
    figure(
      SECTION,
      'signed-in read while the tombstones hang (bound 100 ms)',
      `${Math.round(ms)} ms`,
      '< 5000 ms',
      ms < 5000,
    );
    expect(ms).toBeLessThan(5000);
  });

  it('refuses to write when it cannot check the tombstones (fails closed)', async () => {
    const inner = new session.MemoryStore();
    const store = guardSessionStore(inner, {
      tombstones: { add: () => undefined, has: () => Promise.reject(new Error('down')) },
    });
    const err = await new Promise((resolve) =>
      store.set('sid-x', { cookie: {} } as unknown as session.SessionData, resolve),
    );
    expect(err).toBeInstanceOf(Error);
    expect(await storedSession(inner, 'sid-x')).toBeNull();
  });

  it('works as express-session expects: regenerate, events, optional methods', async () => {
    const tombstones = recordingTombstones();
    const inner = new session.MemoryStore();
    const store = guardSessionStore(inner, { tombstones });
    let disconnected = false;
    store.on('disconnect', () => (disconnected = true));
    inner.emit('disconnect');
    expect(disconnected).toBe(true);
    expect(typeof store.all).toBe('function');
    expect(typeof store.touch).toBe('function');
    const { touch: _touch, ...noTouch } = {
      get: inner.get.bind(inner),
      set: inner.set.bind(inner),
      destroy: inner.destroy.bind(inner),
      touch: 1,
    };
    const bare = Object.assign(Object.create(session.Store.prototype) as session.Store, noTouch);
    expect(guardSessionStore(bare).touch).toBeUndefined();

    const a = await app({ store, fake });
    const { sessionId, cookie } = await a.login();
    // regenerate() through the guard destroys (and tombstones) the old id
    await new Promise<void>((resolve, reject) =>
      store.regenerate({ sessionID: sessionId } as never, (err) => (err ? reject(err) : resolve())),
    );
    expect(await storedSession(inner, sessionId)).toBeNull();
    expect(await a.whoami(cookie)).toBeNull();
  });

  it('validates its options', () => {
    const inner = new session.MemoryStore();
    const bad: Array<() => unknown> = [
      () => guardSessionStore({} as never),
      () => guardSessionStore(inner, { ttl: 5 } as unknown as SessionStoreGuardOptions),
      () => guardSessionStore(inner, { ttlMs: 0 }),
      () => guardSessionStore(inner, { ttlMs: 1.5 }),
      () => guardSessionStore(inner, { tombstones: {} as never }),
      () => guardSessionStore(inner, { onRefused: 'x' as never }),
      () => guardSessionStore(inner, { tombstoneTimeoutMs: 0 }),
      () => guardSessionStore(inner, { tombstoneTimeoutMs: 'fast' as never }),
      () => createRedisTombstones({ client: {} as never }),
      () => createMemoryTombstones({ maxEntries: 0 }),
    ];
    for (const attempt of bad) expect(attempt).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});

// ---------------------------------------------------------------------------------------------------------

if (!redisAvailable) skipped(SECTION, 'Redis races (connect-redis)', 'redis-server not found; required when CI is set');

describeWithRedis('with connect-redis on a real redis-server', () => {
  let redis: RedisServer;
  let client: NodeRedisClient;
  beforeAll(async () => {
    redis = await startRedisServer();
    client = await connectNodeRedis(redis.url);
  });
  afterAll(async () => {
    // Nothing the guard stored names a raw session id.
    const keys = await keysMatching(client, '*');
    const raw = keys.filter((k) => [...sessionIds].some((sid) => k.includes(sid)) && !k.startsWith('sess:'));
    figure(SECTION, 'raw session ids in tombstone keys (Redis and memory)', raw.length, '0', raw.length === 0);
    expect(raw).toEqual([]);
    await client.close();
    await redis.stop();
  });
  beforeEach(() => client.flushDb());

  const redisStore = (): RedisStore => new RedisStore({ client, prefix: 'sess:' });
  const redisTombstones = (): SessionTombstones => createRedisTombstones({ client });

  it('survives a double logout (guarded store, Redis tombstones)', async () => {
    const inner = redisStore();
    await doubleLogout(
      await app({ store: guardSessionStore(inner, { tombstones: redisTombstones() }), fake }),
      inner,
      'Redis',
    );
  });

  it('unguarded: an in-flight save brings the destroyed session back', async () => {
    const inner = redisStore();
    const outcome = await inFlight(await app({ store: inner, fake }), inner);
    figure(
      SECTION,
      'in-flight save after logout, unguarded (Redis)',
      describeOutcome(outcome),
      'yes, yes (the race exists)',
      outcome.back && outcome.oldCookieWorks,
    );
    expect(outcome.back).toBe(true);
  });

  it.each([
    ['memory tombstones', { slowRoute: 'modify' as const }, false],
    ['Redis tombstones', { slowRoute: 'modify' as const }, true],
    ['Redis tombstones, resave: true', { slowRoute: 'read' as const, resave: true }, true],
  ])('guarded (%s): the in-flight save cannot bring it back', async (label, options, shared) => {
    const inner = redisStore();
    const store = guardSessionStore(inner, shared ? { tombstones: redisTombstones() } : {});
    const outcome = await inFlight(await app({ store, fake, ...options }), inner);
    figure(
      SECTION,
      `in-flight save after logout, guarded (Redis, ${label})`,
      describeOutcome(outcome),
      'no, no',
      !outcome.back && !outcome.oldCookieWorks,
    );
    expect(outcome).toEqual({ back: false, oldCookieWorks: false, slowStatus: 200 });
  });

  it('two instances: memory tombstones do not see the other instance logout (documented limit)', async () => {
    const innerA = redisStore();
    const a = await app({ store: guardSessionStore(innerA), fake });
    const b = await app({ store: guardSessionStore(redisStore()), fake });
    const outcome = await inFlight(a, innerA, b);
    figure(
      SECTION,
      'two instances, memory tombstones',
      describeOutcome(outcome),
      'yes (limit: use Redis tombstones)',
      outcome.back,
    );
    expect(outcome.back).toBe(true);
  });

  it('two instances: Redis tombstones protect across instances', async () => {
    const innerA = redisStore();
    const a = await app({ store: guardSessionStore(innerA, { tombstones: redisTombstones() }), fake });
    const b = await app({ store: guardSessionStore(redisStore(), { tombstones: redisTombstones() }), fake });
    const outcome = await inFlight(a, innerA, b);
    figure(
      SECTION,
      'two instances, Redis tombstones',
      describeOutcome(outcome),
      'no, no',
      !outcome.back && !outcome.oldCookieWorks,
    );
    expect(outcome).toEqual({ back: false, oldCookieWorks: false, slowStatus: 200 });
  });

  it('undoes a write that passed the check while another instance destroyed the session', async () => {
    class GatedRedisStore extends RedisStore {
      gate: { reached: () => void; proceed: Promise<void> } | undefined;
      override async set(
        sid: string,
        sess: session.SessionData,
        cb?: (err?: unknown, data?: unknown) => unknown,
      ): Promise<unknown> {
        const gate = this.gate;
        this.gate = undefined;
        if (gate) {
          gate.reached();
          await gate.proceed;
        }
        return super.set(sid, sess, cb);
      }
    }
    const results: string[] = [];
    for (const shared of [false, true]) {
      const gated = new GatedRedisStore({ client, prefix: 'sess:' });
      const refused: string[] = [];
      const tombstones = (): SessionTombstones => (shared ? redisTombstones() : createMemoryTombstones());
      const a = guardSessionStore(gated, {
        tombstones: tombstones(),
        onRefused: ({ operation }) => void refused.push(operation),
      });
      const b = guardSessionStore(redisStore(), { tombstones: tombstones() });
      const sid = randomBytes(18).toString('base64url');
      sessionIds.add(sid);
      const sess = { cookie: { originalMaxAge: null }, user: 'ada' } as unknown as session.SessionData;
      let reached!: () => void;
      let proceed!: () => void;
      const atGate = new Promise<void>((r) => (reached = r));
      gated.gate = { reached, proceed: new Promise<void>((r) => (proceed = r)) };
      const written = new Promise<unknown>((resolve) => a.set(sid, sess, resolve));
      await atGate;
      await new Promise<void>((resolve, reject) => b.destroy(sid, (err) => (err ? reject(err) : resolve())));
      proceed();
      expect(await written).toBeUndefined();
      const exists = (await client.exists(`sess:${sid}`)) === 1;
      results.push(`${shared ? 'Redis' : 'memory'} tombstones: ${exists ? 'written back' : 'undone'}`);
      expect(exists).toBe(!shared);
      expect(refused).toEqual(shared ? ['set'] : []);
    }
    figure(
      SECTION,
      'write racing a destroy in another instance',
      results.join('; '),
      'Redis tombstones: undone',
      results[1] === 'Redis tombstones: undone',
    );
  });

  it('stores tombstones with a TTL, with node-redis and ioredis clients', async () => {
    const io = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await io.connect();
    try {
      for (const [name, tombstones] of [
        ['node-redis', redisTombstones()],
        ['ioredis', createRedisTombstones({ client: io, prefix: 'io:' })],
      ] as const) {
        await tombstones.add(`key-${name}`, 60_000);
        expect(await tombstones.has(`key-${name}`)).toBe(true);
        expect(await tombstones.has(`other-${name}`)).toBe(false);
      }
      const pttl = await client.pTTL('{polar-logout}:tombstone:key-node-redis');
      expect(pttl).toBeGreaterThan(50_000);
      expect(pttl).toBeLessThanOrEqual(60_000);
      expect(await client.pTTL('io:key-ioredis')).toBeGreaterThan(50_000);
    } finally {
      io.disconnect();
    }
  });
});

describe('process', () => {
  it('raised no unhandled rejection or uncaught exception in the race tests', () => {
    figure(SECTION, 'unhandled rejections / uncaught exceptions (races)', unhandled.count, '0', unhandled.count === 0);
    expect(unhandled.descriptions).toEqual([]);
  });
});
