/**
 * guardSessionStore() when its tombstones fail: reads fail open (reported, bounded in time), writes stay
 * refused, a logout whose tombstone cannot be recorded is a logout (the event says the tombstone is missing).
 * Real express-session apps, a real redis-server killed mid-test, the Polar stand-in over HTTP.
 */
import { format } from 'node:util';
import createDebug from 'debug';
import session from 'express-session';
import Redis from 'ioredis';
import {
  createMemoryTombstones,
  createRedisTombstones,
  guardSessionStore,
  PolarLogoutError,
  TombstoneWriteError,
  type SessionTombstones,
} from '../lib';
import { startFakePolar, type FakePolar } from '../lib/testing';
import { startRaceApp, storedSession, type RaceApp } from './reliability/support/race-app';
import { realProcess } from './reliability/support/process';
import {
  connectNodeRedis,
  describeWithRedis,
  startRedisServer,
  type NodeRedisClient,
  type RedisServer,
} from './support/redis-server';

/** Generous: the bound under test is 200 ms; the machine may be loaded. */
const TIMEOUT_MS = 200;
const WITHIN_MS = 5_000;

let fake: FakePolar;
const apps: RaceApp[] = [];
const debugLines: string[] = [];
const warnings: Array<{ message: string; code: string | undefined }> = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => void unhandled.push(reason);

beforeAll(async () => {
  fake = await startFakePolar();
  createDebug.enable('express-polar-logout*');
  createDebug.log = (...args: unknown[]) => void debugLines.push(format(...args));
  realProcess.on('unhandledRejection', onUnhandled);
});
beforeEach(() => {
  jest.spyOn(process, 'emitWarning').mockImplementation(((message: string, options?: { code?: string }) => {
    warnings.push({ message, code: options?.code });
  }) as typeof process.emitWarning);
});
afterEach(async () => {
  jest.restoreAllMocks();
  await Promise.all(apps.splice(0).map((a) => a.close()));
});
afterAll(async () => {
  createDebug.disable();
  realProcess.off('unhandledRejection', onUnhandled);
  await fake.close();
});

async function app(store: session.Store): Promise<RaceApp> {
  const started = await startRaceApp({ store, fake });
  apps.push(started);
  return started;
}

/** Memory tombstones that can be switched to fail (reject) or hang (never settle), as a sick Redis would. */
function switchableTombstones(): SessionTombstones & { mode: 'ok' | 'fail' | 'hang'; calls: number } {
  const memory = createMemoryTombstones();
  const sick = (): Promise<never> =>
    switchable.mode === 'hang' ? new Promise<never>(() => undefined) : Promise.reject(new Error('tombstones down'));
  const switchable = {
    mode: 'ok' as 'ok' | 'fail' | 'hang',
    calls: 0,
    add(key: string, ttlMs: number) {
      switchable.calls += 1;
      return switchable.mode === 'ok' ? memory.add(key, ttlMs) : sick();
    },
    has(key: string) {
      switchable.calls += 1;
      return switchable.mode === 'ok' ? memory.has(key) : sick();
    },
  };
  return switchable;
}

function sessionData(extra: Record<string, unknown> = {}): session.SessionData {
  const data = { cookie: { originalMaxAge: null }, user: 'ada', ...extra };
  return data;
}

function call<T>(fn: (cb: (err?: unknown, value?: T) => void) => void): Promise<{ err: unknown; value?: T }> {
  return new Promise((resolve) => fn((err, value) => resolve({ err, value })));
}

/** Nothing the guard reported names a session id. */
function expectNoSessionId(...sids: string[]): void {
  const printed = [...debugLines, ...warnings.map((w) => w.message)].join('\n');
  for (const sid of sids) expect(printed).not.toContain(sid);
}

describe.each(['fail', 'hang'] as const)('tombstones that %s', (mode) => {
  it('signed-in reads still work, within the time bound, and it is reported', async () => {
    const tombstones = switchableTombstones();
    const inner = new session.MemoryStore();
    const a = await app(guardSessionStore(inner, { tombstones, tombstoneTimeoutMs: TIMEOUT_MS }));
    const { sessionId, cookie } = await a.login();
    tombstones.mode = mode;
    const callsBefore = tombstones.calls;

    const started = performance.now();
    const who = await Promise.all([a.whoami(cookie), a.whoami(cookie), a.whoami(cookie)]);
    const elapsed = performance.now() - started;
    expect(who).toEqual(['ada', 'ada', 'ada']);
    expect(elapsed).toBeLessThan(WITHIN_MS);
    expect(tombstones.calls).toBeGreaterThan(callsBefore); // the check was tried, and failed
    expect(a.errors).toEqual([]);
    // Reported: debug every time, a warning at most once per process; no session id in either.
    expect(debugLines.some((l) => l.includes('could not read the tombstones'))).toBe(true);
    expect(warnings.map((w) => w.code)).toContain('EPL_TOMBSTONES_UNREADABLE');
    expectNoSessionId(sessionId);
  });

  it('a write that needs the check is refused, and touch is skipped', async () => {
    const tombstones = switchableTombstones();
    const inner = new session.MemoryStore();
    const store = guardSessionStore(inner, { tombstones, tombstoneTimeoutMs: TIMEOUT_MS });
    await call((cb) => store.set('sid-w', sessionData(), cb));
    const before = (await storedSession(inner, 'sid-w')) as { cookie: { expires?: unknown } };
    tombstones.mode = mode;

    const started = performance.now();
    const set = await call((cb) => store.set('sid-w', sessionData({ cart: 1 }), cb));
    expect(set.err).toBeInstanceOf(Error);
    expect(await storedSession(inner, 'sid-w')).toEqual(before); // not written
    const newExpiry = { cookie: { originalMaxAge: 1000, expires: new Date(Date.now() + 1000) }, user: 'ada' };
    const touched = await call((cb) => store.touch!('sid-w', newExpiry as unknown as session.SessionData, cb));
    expect(touched.err).toBeFalsy(); // skipped, without failing the request
    expect(await storedSession(inner, 'sid-w')).toEqual(before);
    expect(performance.now() - started).toBeLessThan(WITHIN_MS);
  });

  it('a logout whose tombstone cannot be recorded logs out and says the tombstone is missing', async () => {
    const tombstones = switchableTombstones();
    const inner = new session.MemoryStore();
    const a = await app(guardSessionStore(inner, { tombstones, tombstoneTimeoutMs: TIMEOUT_MS }));
    const { sessionId, cookie, tokens } = await a.login();
    tombstones.mode = mode;

    const res = await a.postLogout(cookie);
    expect(res.status).toBe(303);
    expect(String(res.headers['set-cookie'])).toMatch(/connect\.sid=;.*Expires=Thu, 01 Jan 1970/);
    expect(await storedSession(inner, sessionId)).toBeNull();
    expect(fake.isActive(tokens.refreshToken)).toBe(false);
    expect(a.errors).toEqual([]);
    expect(a.events).toHaveLength(1);
    expect(a.events[0]).toMatchObject({
      loggedOut: true,
      sessionDestroyed: true,
      error: { code: 'TOMBSTONE_FAILED' },
    });
    expectNoSessionId(sessionId);
  });
});

describe('the guarded destroy', () => {
  it('rejects with TombstoneWriteError when it deleted the session without a tombstone', async () => {
    const inner = new session.MemoryStore();
    const tombstones: SessionTombstones = { add: () => Promise.reject(new Error('down')), has: () => false };
    const store = guardSessionStore(inner, { tombstones });
    await call((cb) => store.set('sid-d', sessionData(), cb));
    const { err } = await call((cb) => store.destroy('sid-d', cb));
    expect(err).toBeInstanceOf(TombstoneWriteError);
    expect(err).toBeInstanceOf(PolarLogoutError);
    expect(err).toMatchObject({ code: 'TOMBSTONE_WRITE_FAILED', sessionDeleted: true });
    expect((err as Error).message).not.toContain('sid-d');
    expect(await storedSession(inner, 'sid-d')).toBeNull();
    expect(warnings.map((w) => w.code)).toContain('EPL_TOMBSTONE_WRITE_FAILED');
  });

  it('passes the store error on when the session itself could not be deleted', async () => {
    const inner = new session.MemoryStore();
    inner.destroy = (_sid, cb) => cb?.(new Error('store down'));
    const store = guardSessionStore(inner, {
      tombstones: { add: () => Promise.reject(new Error('down')), has: () => false },
    });
    const { err } = await call((cb) => store.destroy('sid-e', cb));
    expect(err).toMatchObject({ message: 'store down' });
    expect(err).not.toBeInstanceOf(TombstoneWriteError);
  });
});

describe('tombstoneTimeoutMs', () => {
  it('ignores an answer that comes after the bound, without an unhandled rejection', async () => {
    const inner = new session.MemoryStore();
    const late = (): Promise<never> =>
      new Promise((_resolve, reject) => setTimeout(() => reject(new Error('late')), TIMEOUT_MS * 2));
    const store = guardSessionStore(inner, { tombstones: { add: late, has: late }, tombstoneTimeoutMs: TIMEOUT_MS });
    await call((cb) => inner.set('sid-l', sessionData(), cb));
    const read = await call<session.SessionData | null>((cb) => store.get('sid-l', cb));
    expect(read.err).toBeFalsy();
    expect(read.value).toMatchObject({ user: 'ada' });
    await new Promise((r) => setTimeout(r, TIMEOUT_MS * 3));
    expect(unhandled).toEqual([]);
  });

  it('is validated', () => {
    const inner = new session.MemoryStore();
    for (const bad of [0, -1, 1.5, '300', 60_001, Number.NaN]) {
      expect(() => guardSessionStore(inner, { tombstoneTimeoutMs: bad as number })).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringContaining('tombstoneTimeoutMs') }),
      );
    }
    expect(() => guardSessionStore(inner, { tombstoneTimeoutMs: 1 })).not.toThrow();
  });
});

describeWithRedis('Redis tombstones whose redis-server is killed', () => {
  let redis: RedisServer;
  let client: NodeRedisClient;
  let io: Redis;
  beforeAll(async () => {
    redis = await startRedisServer();
    client = await connectNodeRedis(redis.url);
    io = new Redis(redis.url, { lazyConnect: true, disconnectTimeout: 50 }); // its socket is dead by then
    io.on('error', () => undefined);
    await io.connect();
  });
  afterAll(async () => {
    io.disconnect();
    if (client.isOpen) client.destroy();
    await redis.stop();
  });

  it('signed-in reads keep working (node-redis and ioredis), writes and logouts behave', async () => {
    const inner = new session.MemoryStore();
    const viaNodeRedis = await app(
      guardSessionStore(inner, { tombstones: createRedisTombstones({ client }), tombstoneTimeoutMs: TIMEOUT_MS }),
    );
    const viaIoredis = await app(
      guardSessionStore(inner, { tombstones: createRedisTombstones({ client: io }), tombstoneTimeoutMs: TIMEOUT_MS }),
    );
    const one = await viaNodeRedis.login();
    const two = await viaIoredis.login();
    const other = await viaNodeRedis.login();
    expect(await redis.keys('polar-logout:tombstone:*')).toEqual([]);

    await redis.kill();
    const started = performance.now();
    expect(await viaNodeRedis.whoami(one.cookie)).toBe('ada');
    expect(await viaIoredis.whoami(two.cookie)).toBe('ada');
    expect(performance.now() - started).toBeLessThan(WITHIN_MS);
    expect(viaNodeRedis.errors).toEqual([]);
    expect(viaIoredis.errors).toEqual([]);

    // A write that needs the check is refused.
    const store = guardSessionStore(inner, {
      tombstones: createRedisTombstones({ client: io }),
      tombstoneTimeoutMs: TIMEOUT_MS,
    });
    const before = await storedSession(inner, other.sessionId);
    const set = await call((cb) => store.set(other.sessionId, sessionData({ cart: 1 }), cb));
    expect(set.err).toBeInstanceOf(Error);
    expect(await storedSession(inner, other.sessionId)).toEqual(before);

    // A logout deletes the session and says its tombstone is missing.
    const res = await viaIoredis.postLogout(two.cookie);
    expect(res.status).toBe(303);
    expect(await storedSession(inner, two.sessionId)).toBeNull();
    expect(viaIoredis.events.at(-1)).toMatchObject({ loggedOut: true, error: { code: 'TOMBSTONE_FAILED' } });
    expect(performance.now() - started).toBeLessThan(WITHIN_MS * 2);
    expectNoSessionId(one.sessionId, two.sessionId, other.sessionId);
  });
});
