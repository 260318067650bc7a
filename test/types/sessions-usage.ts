/**
 * Type tests of the session registry (compiled by `npm run typecheck`, never run): the example compiles
 * with every Redis client users run, next to connect-redis 9; the answers are typed.
 */
import { RedisStore } from 'connect-redis';
import session from 'express-session';
import { Cluster, Redis } from 'ioredis';
import { createClient, createCluster } from 'redis';
import {
  createPolarRevoker,
  createSessionRegistry,
  polarLogout,
  type SessionInfo,
  type SessionsLogoutSummary,
} from '../../lib';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(_proof?: T): void {}

const client = createClient();
const sessions = createSessionRegistry({
  store: new RedisStore({ client }),
  redis: client,
  userIdOf: (data) => (data.user as { id?: string } | undefined)?.id,
});
session({ store: sessions.store, secret: 's', resave: false, saveUninitialized: false });
createSessionRegistry({ store: new session.MemoryStore(), redis: new Redis(), userIdOf: () => undefined });
createSessionRegistry({ store: new session.MemoryStore(), redis: new Cluster([]), userIdOf: () => undefined });
createSessionRegistry({ store: new session.MemoryStore(), redis: createCluster({ rootNodes: [] }), userIdOf: () => 1 });
createSessionRegistry({ store: new session.MemoryStore(), redis: 'redis://127.0.0.1:6379', userIdOf: () => 1 });
// @ts-expect-error userIdOf is required
createSessionRegistry({ store: new session.MemoryStore() });

const credentials = { clientId: 'id', clientSecret: 'secret' };
polarLogout({ ...credentials, sessions, scope: 'everywhere' });
polarLogout({ ...credentials, sessions, scope: 'others' });
// @ts-expect-error scope is one of 'session', 'others', 'everywhere'
polarLogout({ ...credentials, sessions, scope: 'all' });

export async function usage(): Promise<void> {
  const list = await sessions.list('user-1');
  assertType<Equal<typeof list, SessionInfo[]>>();
  assertType<Equal<SessionInfo['createdAt'], Date>>();
  const revoker = createPolarRevoker(credentials);
  const summary = await sessions.logoutUser('user-1', { revoker, except: list[0]?.id });
  assertType<Equal<typeof summary, SessionsLogoutSummary>>();
  await sessions.logoutSession(42, 'handle', { revoker });
}
