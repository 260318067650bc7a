/**
 * A read of a session this process has checked before asks the Redis index together with the store's own read (one
 * round trip of latency for both), and only trusts that answer once the stored data confirms the user it was asked
 * for. Real connect-redis and node-redis on a real redis-server; the client's commands are recorded as sent and as
 * answered, so that "together" is what Redis saw, not a claim.
 */
import { createHash } from 'node:crypto';
import { RedisStore } from 'connect-redis';
import type session from 'express-session';
import * as lib from '../../lib';
import { CHECK, PEEK } from '../../lib/sessions/redis-index-scripts';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import {
  connectNodeRedis,
  describeWithRedis,
  redisAvailable,
  startRedisServer,
  type NodeRedisClient,
  type RedisServer,
} from '../support/redis-server';
import { login, startInProcessApp, stored, whoami, type InProcessApp } from './support/client';

let fake: FakePolar;
let redis: RedisServer | undefined;
let client: NodeRedisClient | undefined;
let userCounter = 0;
let prefixCounter = 0;

const sha1 = (source: string): string => createHash('sha1').update(source).digest('hex');
const userIdOf = (data: Record<string, unknown>): unknown => (data.user as { id?: unknown } | undefined)?.id;
const polar = () => ({ clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url });
const newUser = (): string => `together-${++userCounter}@example.com`;

/** What the app's client sent and when each answer came back, in order: `send GET`, `reply EVALSHA:<sha>`, ... */
interface Recorder {
  events: string[];
  stop(): void;
}

function record(target: NodeRedisClient): Recorder {
  let owner: object | null = target;
  while (owner && !Object.prototype.hasOwnProperty.call(owner, 'sendCommand')) owner = Object.getPrototypeOf(owner);
  const holder = owner as { sendCommand: (...args: unknown[]) => Promise<unknown> };
  const original = holder.sendCommand;
  const ours = new Set<unknown>([target, (target as unknown as { _self?: unknown })._self]);
  const events: string[] = [];
  holder.sendCommand = function (this: unknown, ...args: unknown[]) {
    const result = original.apply(this, args);
    if (!ours.has(this) && !ours.has((this as { _self?: unknown } | null)?._self)) return result;
    const argv = args.find(Array.isArray) as string[];
    const name = argv[0] === 'EVALSHA' ? `EVALSHA:${argv[1]}` : String(argv[0]);
    events.push(`send ${name}`);
    void result.then(
      () => events.push(`reply ${name}`),
      () => events.push(`fail ${name}`),
    );
    return result;
  };
  return {
    events,
    stop: () => void (holder.sendCommand = original),
  };
}

beforeAll(async () => {
  fake = await startFakePolar();
  if (redisAvailable) {
    redis = await startRedisServer();
    client = await connectNodeRedis(redis.url);
  }
});
afterAll(async () => {
  client?.destroy();
  await redis?.stop();
  await fake.close();
});

describeWithRedis('reads of a known session ask the index with the store (connect-redis, Redis index)', () => {
  let inner: session.Store;
  let registry: lib.SessionRegistry;
  let app: InProcessApp;
  let recorder: Recorder | undefined;

  beforeEach(async () => {
    inner = new RedisStore({ client: client!, prefix: `together${++prefixCounter}:` });
    registry = lib.createSessionRegistry({ store: inner, userIdOf, redis: client!, timeoutMs: 2000 });
    app = await startInProcessApp(lib, { store: registry.store, sessions: registry, polar: polar() });
  });
  afterEach(async () => {
    recorder?.stop();
    recorder = undefined;
    await app.close();
    await registry.close();
  });

  /** The GET and index script of one read, in the order they happened. */
  const readOnce = async (cookie: string): Promise<{ user: string | null; events: string[] }> => {
    recorder = record(client!);
    const { user } = await whoami(app, cookie);
    recorder.stop();
    const events = recorder.events.filter((e) => / (GET|EVALSHA:[0-9a-f]+)$/.test(e));
    recorder = undefined;
    return { user, events };
  };

  it('a session this process has not checked: the store first, then the full check', async () => {
    const user = newUser();
    const b = await login(app, fake, user);
    // A second app on the same store and index: a process that has never seen this session.
    const otherRegistry = lib.createSessionRegistry({ store: inner, userIdOf, redis: client!, timeoutMs: 2000 });
    const other = await startInProcessApp(lib, { store: otherRegistry.store, sessions: otherRegistry, polar: polar() });
    try {
      recorder = record(client!);
      expect((await whoami(other, b.cookie)).user).toBe(user);
      recorder.stop();
      const check = `EVALSHA:${sha1(CHECK)}`;
      const events = recorder.events.filter((e) => / (GET|EVALSHA:[0-9a-f]+)$/.test(e));
      // (On a Redis that has not seen the script yet, EVALSHA fails with NOSCRIPT and EVAL follows.)
      expect(events.slice(0, 3)).toEqual(['send GET', 'reply GET', `send ${check}`]);
      recorder = undefined;
      // Its next read is a known session's.
      const again = await (async () => {
        recorder = record(client!);
        await whoami(other, b.cookie);
        recorder.stop();
        return recorder.events.filter((e) => / (GET|EVALSHA:[0-9a-f]+)$/.test(e));
      })();
      recorder = undefined;
      expect(again.slice(0, 2)).toEqual([`send EVALSHA:${sha1(PEEK)}`, 'send GET']);
    } finally {
      await other.close();
      await otherRegistry.close();
    }
  });

  it('a session this process has checked: the index call is sent with the store read, before either answers', async () => {
    const user = newUser();
    const b = await login(app, fake, user);
    const peek = `EVALSHA:${sha1(PEEK)}`;
    const { user: seen, events } = await readOnce(b.cookie);
    expect(seen).toBe(user);
    // Both sent before the first answer: one round trip of latency, not two. Sequential reads would show a reply
    // between the two sends.
    expect(events.slice(0, 2).sort()).toEqual([`send ${peek}`, 'send GET'].sort());
    expect(events).toHaveLength(4);
    expect(events.filter((e) => e.startsWith('send'))).toHaveLength(2);
    expect(events.some((e) => e.includes(sha1(CHECK)))).toBe(false);
  });

  it('a session ended elsewhere is refused on the next read, even though this process knew it', async () => {
    const user = newUser();
    const b = await login(app, fake, user);
    expect((await whoami(app, b.cookie)).user).toBe(user);
    // Another registry (another instance) logs the user out everywhere.
    const elsewhere = lib.createSessionRegistry({ store: inner, userIdOf, redis: client!, timeoutMs: 2000 });
    const revoker = lib.createPolarRevoker({ ...polar(), timeoutMs: 2000 });
    try {
      expect(await elsewhere.logoutUser(user, { revoker })).toMatchObject({ sessions: 1, revoked: 2 });
    } finally {
      revoker.close();
      await elsewhere.close();
    }
    const { user: seen, events } = await readOnce(b.cookie);
    expect(seen).toBeNull();
    expect(events[0]).toBe(`send EVALSHA:${sha1(PEEK)}`);
    expect(await stored(inner, b.sessionId)).toBeNull();
  });

  it("an early answer asked for one user is not used for data that names another (checked for the data's user)", async () => {
    const [userA, userB] = [newUser(), newUser()];
    const b = await login(app, fake, userA);
    expect((await whoami(app, b.cookie)).user).toBe(userA);
    // The stored session now names user B, written past the registry (as an unguarded writer would).
    const data = (await stored(inner, b.sessionId)) as Record<string, unknown>;
    await new Promise<void>((resolve, reject) =>
      inner.set(b.sessionId, { ...data, user: { id: userB } } as unknown as session.SessionData, (err) =>
        err ? reject(err as Error) : resolve(),
      ),
    );
    // User B is logged out everywhere: every session of B that began before now is ended, indexed or not.
    const revoker = lib.createPolarRevoker({ ...polar(), timeoutMs: 2000 });
    try {
      await registry.logoutUser(userB, { revoker });
    } finally {
      revoker.close();
    }
    // The early answer (for A) says ok; the data says B, whose mark ends it.
    const { user: seen, events } = await readOnce(b.cookie);
    expect(seen).toBeNull();
    expect(events).toContain(`send EVALSHA:${sha1(PEEK)}`);
    expect(events).toContain(`send EVALSHA:${sha1(CHECK)}`);
    expect(await stored(inner, b.sessionId)).toBeNull();
  });

  it('a failed early answer fails open, as every read of the index does, and leaves no unhandled rejection', async () => {
    const user = newUser();
    const b = await login(app, fake, user);
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown): void => void rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    // The index script fails (as a Redis that refuses scripts would); the store read still works.
    let owner: object | null = client!;
    while (owner && !Object.prototype.hasOwnProperty.call(owner, 'sendCommand')) owner = Object.getPrototypeOf(owner);
    const holder = owner as { sendCommand: (...args: unknown[]) => Promise<unknown> };
    const original = holder.sendCommand;
    const scripts: string[] = [];
    holder.sendCommand = function (this: unknown, ...args: unknown[]) {
      const argv = args.find(Array.isArray) as string[];
      if (argv[0] === 'EVALSHA' || argv[0] === 'EVAL') scripts.push(argv[0] === 'EVAL' ? 'EVAL' : argv[1]!);
      if (argv[0] === 'EVALSHA' && argv[1] === sha1(PEEK)) return Promise.reject(new Error('ERR refused by the test'));
      return original.apply(this, args);
    };
    try {
      expect((await whoami(app, b.cookie)).user).toBe(user);
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      holder.sendCommand = original;
      process.off('unhandledRejection', onRejection);
    }
    expect(rejections).toEqual([]);
    // Failed open on the early answer itself: the read was not checked a second time.
    expect(scripts).toEqual([sha1(PEEK)]);
  });
});
