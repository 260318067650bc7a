/**
 * What the registry keeps in Redis, read the way an operator would: the per-user index (a sorted set of handles),
 * its entries, the "not before" mark, the owners and the tombstones, all under the `{polar-logout}` prefix.
 */
import { createHash } from 'node:crypto';
import { keysMatching, type NodeRedisClient } from '../../support/redis-server';

export const PREFIX = '{polar-logout}';

const sha256 = (sid: string): string => createHash('sha256').update(sid).digest('base64url');
export const tombstoneKeyOf = (sid: string): string => `${PREFIX}:tombstone:${sha256(sid)}`;
export const ownerKeyOf = (sid: string): string => `${PREFIX}:owner:${sha256(sid)}`;

/** The user index keys (sorted sets), without their `:meta` and `:nbf` companions. */
export async function indexKeys(client: NodeRedisClient): Promise<string[]> {
  const keys = await keysMatching(client, `${PREFIX}:user:*`);
  return keys.filter((k) => !k.endsWith(':meta') && !k.endsWith(':nbf'));
}

/** The index key that holds `handle`: found by its content, so the test does not depend on how user ids are hashed. */
export async function indexKeyHolding(client: NodeRedisClient, handle: string): Promise<string> {
  for (const key of await indexKeys(client)) {
    if ((await client.zScore(key, handle)) !== null) return key;
  }
  throw new Error('no user index holds this handle');
}

/** Every key the registry owns: index, entries, marks, owners, tombstones (BullMQ's are left out). */
export async function registryKeys(client: NodeRedisClient): Promise<string[]> {
  const groups = await Promise.all(
    ['user', 'owner', 'tombstone'].map((kind) => keysMatching(client, `${PREFIX}:${kind}:*`)),
  );
  return groups.flat();
}

/** Keys of the registry that would never expire (PTTL -1). Every key it writes must carry an expiry. */
export async function keysWithoutExpiry(client: NodeRedisClient): Promise<string[]> {
  const out: string[] = [];
  for (const key of await registryKeys(client)) {
    const pttl = await client.pTTL(key);
    if (pttl === -1) out.push(key);
  }
  return out;
}

/** Every value under the registry's keys, as text (for the secrets scan). */
export async function registryValues(client: NodeRedisClient): Promise<string> {
  const parts: string[] = [];
  for (const key of await registryKeys(client)) {
    const type = await client.type(key);
    if (type === 'string') parts.push(String(await client.get(key)));
    else if (type === 'hash') parts.push(JSON.stringify(await client.hGetAll(key)));
    else if (type === 'zset') parts.push(JSON.stringify(await client.zRangeWithScores(key, 0, -1)));
  }
  return parts.join('\n');
}
