/**
 * The session registry with its index on a real 3-master Redis Cluster, with each client library's cluster client:
 * express-session requests sign a user in three times at one app instance and read each session twice at another
 * (the first read runs the full CHECK script, the second the read-only PEEK sent with the store's read), list()
 * shows the three, logoutUser() ends them and revokes their six tokens at the stand-in, the old cookies are signed
 * out, and every key the registry wrote lives in the one slot of `{polar-logout}`. The session store is a
 * MemoryStore shared by both instances: the index is what is under test here, not connect-redis on a cluster.
 */
import { createHash } from 'node:crypto';
import session from 'express-session';
import * as lib from '../../lib';
import { CHECK, PEEK } from '../../lib/sessions/redis-index-scripts';
import { userKeyOf } from '../../lib/sessions/keys';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import { connectNodeRedis, describeWithRedis, type NodeRedisClient } from '../support/redis-server';
import { startRedisCluster, type RedisCluster } from '../support/redis-topologies';
import {
  login,
  revokedAtPolar,
  startInProcessApp,
  stored,
  whoami,
  type Browser,
  type InProcessApp,
} from '../sessions/support/client';
import { LIBRARIES, type AnyClient } from './clients';

jest.setTimeout(40_000);

const PREFIX = '{polar-logout}';
const sha1 = (source: string): string => createHash('sha1').update(source).digest('hex');
const sha256 = (sid: string): string => createHash('sha256').update(sid).digest('base64url');
const userIdOf = (data: Record<string, unknown>): unknown => (data.user as { id?: unknown } | undefined)?.id;

describeWithRedis('the session registry on a 3-master Redis Cluster', () => {
  let cluster: RedisCluster;
  let fake: FakePolar;
  let revoker: lib.PolarRevoker;
  /** A plain connection to the master serving `{polar-logout}`'s slot, for the test's own checks. */
  let owner: NodeRedisClient;
  let ownerPort: number;

  beforeAll(async () => {
    [cluster, fake] = await Promise.all([startRedisCluster(), startFakePolar()]);
    revoker = lib.createPolarRevoker({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      timeoutMs: 3000,
    });
    ownerPort = await cluster.ownerOf(PREFIX);
    owner = await connectNodeRedis(`redis://127.0.0.1:${ownerPort}`);
  }, 60_000);
  afterAll(async () => {
    revoker.close();
    await owner.close();
    await Promise.all([cluster.stop(), fake.close()]);
  });

  describe.each(LIBRARIES)('with a $name cluster client', (library) => {
    let client: AnyClient;
    beforeAll(async () => {
      client = await library.cluster(cluster.nodes);
    });
    afterAll(async () => {
      await client.close();
    });

    it('indexes, checks, peeks, lists and ends a user’s sessions; every key it writes shares one slot', async () => {
      const user = `cluster-${library.name.replace(/\W/g, '')}@example.com`;
      const inner = new session.MemoryStore();
      const registryOf = (): lib.SessionRegistry =>
        lib.createSessionRegistry({ store: inner, redis: client.client as never, userIdOf, timeoutMs: 3000 });
      // Two instances of one app (one store, one cluster): logins at one, reads at the other.
      const registries = [registryOf(), registryOf()];
      const polar = { clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url };
      const apps: InProcessApp[] = [];
      try {
        for (const [i, registry] of registries.entries()) {
          apps.push(
            await startInProcessApp(lib, { name: `app ${i}`, store: registry.store, sessions: registry, polar }),
          );
        }
        const [a, b] = apps as [InProcessApp, InProcessApp];
        const browsers: Browser[] = [];
        for (let i = 0; i < 3; i += 1) browsers.push(await login(a, fake, user));
        for (const x of browsers) expect(x.handle).toEqual(expect.any(String));

        // First reads at the other instance: it has not checked these sessions yet, so CHECK runs.
        for (const x of browsers) expect((await whoami(b, x.cookie)).user).toBe(user);
        // Second reads: known sessions, read with PEEK (sent with the store's read) and nothing else. The owner's
        // script cache is emptied first, so what is in it afterwards is what these reads ran there.
        await owner.scriptFlush();
        for (const x of browsers) expect((await whoami(b, x.cookie)).user).toBe(user);
        expect(await owner.scriptExists([sha1(PEEK), sha1(CHECK)])).toEqual([1, 0]);

        const listed = await registries[1]!.list(user);
        expect(listed.map((x) => x.id).sort()).toEqual(browsers.map((x) => x.handle).sort());
        const userKey = `${PREFIX}:user:${userKeyOf(user)}`;
        const written = [userKey, `${userKey}:meta`, ...browsers.map((x) => `${PREFIX}:owner:${sha256(x.sessionId)}`)];
        for (const key of written) expect(await owner.exists(key)).toBe(1);

        fake.resetCalls();
        const summary = await registries[1]!.logoutUser(user, { revoker });
        expect(summary).toEqual({ sessions: 3, revoked: 6, queued: 0, failed: 0 });
        for (const x of browsers) {
          expect(revokedAtPolar(fake, x.tokens.accessToken)).toBe(true);
          expect(revokedAtPolar(fake, x.tokens.refreshToken)).toBe(true);
          expect(fake.isActive(x.tokens.refreshToken)).toBe(false);
          expect(await stored(inner, x.sessionId)).toBeNull();
          // The old cookie is signed out at both instances.
          for (const app of apps) expect((await whoami(app, x.cookie)).user).toBeNull();
        }
        expect(await registries[0]!.list(user)).toEqual([]);
        const ended = [`${userKey}:nbf`, ...browsers.map((x) => `${PREFIX}:tombstone:${sha256(x.sessionId)}`)];
        for (const key of ended) expect(await owner.exists(key)).toBe(1);
        for (const x of browsers) expect(await owner.exists(`${PREFIX}:owner:${sha256(x.sessionId)}`)).toBe(0);

        // Every key of the package, on every master: all in `{polar-logout}`'s slot, so all on its master.
        const keys = await cluster.keys('*');
        for (const key of [...written, ...ended]) {
          expect(await owner.sendCommand(['CLUSTER', 'KEYSLOT', key])).toBe(
            await owner.sendCommand(['CLUSTER', 'KEYSLOT', PREFIX]),
          );
        }
        expect(keys).toEqual(expect.arrayContaining(ended));
        for (const key of keys) expect(key.startsWith(`${PREFIX}:`)).toBe(true);
        const slots = new Set(await Promise.all(keys.map((key) => owner.sendCommand(['CLUSTER', 'KEYSLOT', key]))));
        expect(slots.size).toBe(1);
        expect((await owner.keys(`${PREFIX}:*`)).sort()).toEqual([...keys].sort());
      } finally {
        await Promise.all(apps.map((app) => app.close()));
        await Promise.all(registries.map((registry) => registry.close()));
      }
    });
  });
});
