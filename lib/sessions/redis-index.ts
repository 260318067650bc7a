/**
 * The index in Redis, shared by every instance of the app: one script per operation (redis-index-scripts.ts), every
 * key under the prefix's hash tag. Every command is bounded in time by the adapter; the store decides what a
 * failure means (reads fail open, writes are refused).
 */
import type { RedisAdapter } from '../redis';
import createDebug from 'debug';
import type { SessionRef } from './keys';
import type { SessionIdSealer } from './seal';
import { ADMIT, BURY, CHECK, DROP, ENTRIES, MARK, PEEK, RECHECK } from './redis-index-scripts';
import { WRITE_WAIT_MS, type IndexEntry, type SessionIndex, type Verdict } from './session-index';

export interface RedisIndexOptions {
  redis: RedisAdapter;
  /** Bound of each call, in ms (the request path's timeoutMs, or longer for logoutUser's). */
  timeoutMs: number;
  /** Whether close() closes the connection (opened for a URL). */
  owned: boolean;
  /** Seals the session ids the index keeps (encryptionKey), or keeps them as they are. */
  sealer: SessionIdSealer;
}

const debug = createDebug('express-polar-logout:sessions');

function verdictOf(reply: unknown): Verdict | 'unknown' {
  if (reply === 'ok' || reply === 'destroyed' || reply === 'ended' || reply === 'ending' || reply === 'unknown') {
    return reply;
  }
  throw new Error('unexpected reply from the session index script');
}

function entriesOf(reply: unknown, sealer: SessionIdSealer): IndexEntry[] {
  if (!Array.isArray(reply)) throw new Error('unexpected reply from the session index script');
  const flat = reply.map(String);
  const out: IndexEntry[] = [];
  for (let i = 0; i + 4 < flat.length; i += 5) {
    const [handle = '', stored = '', createdAt, lastSeenAt, userAgent = ''] = flat.slice(i, i + 5);
    const sid = sealer.open(stored, handle);
    if (sid === undefined) {
      debug('an index entry was sealed with a key no longer in encryptionKey; skipped');
      continue;
    }
    out.push({
      handle,
      sid,
      createdAt: Number(createdAt),
      lastSeenAt: Number(lastSeenAt),
      userAgent: userAgent === '' ? undefined : userAgent,
    });
  }
  return out;
}

export function createRedisIndex({ redis, timeoutMs, owned, sealer }: RedisIndexOptions): SessionIndex {
  const prefix = redis.prefix;
  const tombKey = (tomb: string): string => `${prefix}:tombstone:${tomb}`;
  const ownerKey = (tomb: string): string => `${prefix}:owner:${tomb}`;
  const userKeys = (user: string): [string, string, string] => [
    `${prefix}:user:${user}`,
    `${prefix}:user:${user}:meta`,
    `${prefix}:user:${user}:nbf`,
  ];
  const keysOf = (ref: SessionRef): string[] => [tombKey(ref.tomb), ...userKeys(ref.user), ownerKey(ref.tomb)];
  // Scripts that touch only the user's keys still declare five, in the same order, so that one layout serves all.
  const keysOfUser = (user: string): string[] => [tombKey('-'), ...userKeys(user), ownerKey('-')];
  const run = (source: string, keys: string[], args: Array<string | number>, limit = timeoutMs): Promise<unknown> =>
    redis.eval(source, keys, args.map(String), { timeoutMs: limit });
  const owner = (ref: SessionRef): string => `${ref.user} ${ref.handle}`;

  // Ending sessions (and list()'s pruning) is not a read on a request's path: like mark(), it may wait longer. A
  // drop given up too early is worse than slow: a script Redis has to be sent again (NOSCRIPT) is then never sent,
  // and the session is destroyed without its tombstone while its entry stays.
  async function drop(ref: SessionRef, now: number, tombstoneTtlMs?: number): Promise<boolean> {
    const limit = Math.max(timeoutMs, 5000);
    return (await run(DROP, keysOf(ref), [ref.handle, now, tombstoneTtlMs ?? 0], limit)) === 1;
  }

  return {
    bounded: true,
    async add(tomb, ttlMs) {
      const found = await run(BURY, [tombKey(tomb), ownerKey(tomb)], [ttlMs]);
      if (typeof found !== 'string') return;
      const [user, handle] = found.split(' ');
      if (!user || !handle) return;
      await run(DROP, [tombKey(tomb), ...userKeys(user), ownerKey(tomb)], [handle, Date.now(), 0]);
    },
    has: (tomb) => redis.exists(tombKey(tomb), { timeoutMs }),
    async check(ref, times, userAgent) {
      // The session id is sealed (and sent) only for a session the index does not know yet: reads stay cheap.
      const ask = async (sid: string): Promise<Verdict | 'unknown'> =>
        verdictOf(
          await run(CHECK, keysOf(ref), [ref.handle, sid, times.now, times.expiresAt, owner(ref), userAgent ?? '']),
        );
      const verdict = await ask('');
      if (verdict !== 'unknown') return verdict;
      const adopted = await ask(sealer.seal(ref.sid, ref.handle));
      return adopted === 'unknown' ? 'ok' : adopted;
    },
    async peek(ref, now) {
      const [, entries, nbf] = userKeys(ref.user);
      return verdictOf(await run(PEEK, [tombKey(ref.tomb), entries, nbf], [ref.handle, now]));
    },
    async admit(ref, times, userAgent) {
      const verdict = verdictOf(
        await run(
          ADMIT,
          keysOf(ref),
          [
            ref.handle,
            sealer.seal(ref.sid, ref.handle),
            times.now,
            times.expiresAt,
            times.createdAt,
            owner(ref),
            userAgent ?? '',
          ],
          Math.max(timeoutMs, WRITE_WAIT_MS),
        ),
      );
      return verdict === 'unknown' ? 'ok' : verdict;
    },
    async recheck(ref) {
      const verdict = verdictOf(await run(RECHECK, keysOf(ref), [ref.handle], Math.max(timeoutMs, WRITE_WAIT_MS)));
      return verdict === 'unknown' ? 'ok' : verdict;
    },
    async mark(user, now, except, ttlMs) {
      // Not on a request's path: a user with many sessions takes longer than a read.
      return entriesOf(
        await run(MARK, keysOfUser(user), [now, except ?? '', ttlMs], Math.max(timeoutMs, 5000)),
        sealer,
      );
    },
    async entries(user, now) {
      return entriesOf(await run(ENTRIES, keysOfUser(user), [now], Math.max(timeoutMs, 5000)), sealer);
    },
    drop,
    async close() {
      if (owned) await redis.close();
    },
  };
}
