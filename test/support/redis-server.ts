/**
 * A throwaway redis-server for the suites that need a real Redis (outbox, reliability, e2e): Debian's binary
 * (or REDIS_SERVER_BIN) on a free 127.0.0.1 port, persistence off, stopped afterwards. Without the binary the
 * Redis tests are skipped with a message, except in CI (process.env.CI set), where its absence fails them.
 */
import type { ChildProcess } from 'node:child_process';
import { createClient } from 'redis';
import { freePort, REDIS_SERVER_BIN, redisServerAvailable, spawnRedisServer } from './redis-process.cjs';

export { freePort, REDIS_SERVER_BIN };

/** Whether redis-server can be run here (it answers `--version`). */
export const redisAvailable: boolean = redisServerAvailable();

/** describe() that needs redis-server: skipped with a message when it is missing, a failing test in CI. */
export function describeWithRedis(name: string, body: () => void): void {
  if (redisAvailable) {
    describe(name, body);
    return;
  }
  if (process.env.CI) {
    describe(name, () => {
      it('needs redis-server', () => {
        throw new Error(
          `${REDIS_SERVER_BIN} was not found, and CI is set: CI must install it (apt-get install -y redis-server).`,
        );
      });
    });
    return;
  }
  console.warn(
    `Skipping "${name}": ${REDIS_SERVER_BIN} not found (apt-get install redis-server). It is required when CI is set.`,
  );
  describe.skip(name, body);
}

export type NodeRedisClient = ReturnType<typeof createClient>;

/** A connected node-redis client; connection errors are reported by the failing command instead. */
export async function connectNodeRedis(url: string): Promise<NodeRedisClient> {
  const client = createClient({ url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** The keys matching a pattern (SCAN, not KEYS; each key once). */
export async function keysMatching(client: NodeRedisClient, pattern: string): Promise<string[]> {
  const keys = new Set<string>();
  for await (const batch of client.scanIterator({ MATCH: pattern, COUNT: 1000 })) {
    for (const key of batch) keys.add(key);
  }
  return [...keys];
}

const READS: Record<string, (key: string) => string[]> = {
  string: (key) => ['GET', key],
  hash: (key) => ['HGETALL', key],
  list: (key) => ['LRANGE', key, '0', '-1'],
  set: (key) => ['SMEMBERS', key],
  zset: (key) => ['ZRANGE', key, '0', '-1', 'WITHSCORES'],
  stream: (key) => ['XRANGE', key, '-', '+'],
};

/** Every string inside a reply, as is (no escaping that could hide a secret from a `toContain` check). */
function replyLines(reply: unknown): string[] {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) return reply.flatMap(replyLines);
  if (reply instanceof Map) return [...reply.entries()].flat().flatMap(replyLines);
  if (Buffer.isBuffer(reply)) return [reply.toString('utf8')];
  if (typeof reply === 'object') return Object.entries(reply).flat().flatMap(replyLines);
  if (typeof reply === 'string') return [reply];
  if (typeof reply === 'number' || typeof reply === 'bigint' || typeof reply === 'boolean') return [String(reply)];
  return [];
}

/**
 * Every key and value in a Redis (strings, hashes, lists, sets, sorted sets, streams) as one text, to search
 * for secrets in clear.
 */
export async function dumpRedis(client: NodeRedisClient): Promise<string> {
  const parts: string[] = [];
  for (const key of await keysMatching(client, '*')) {
    const type = await client.type(key);
    if (type === 'none') continue; // gone since the scan (a lock, a job that moved on)
    const read = READS[type];
    if (!read) throw new Error(`dumpRedis: a key of type ${type} it cannot read`);
    parts.push(`KEY ${key}`, ...replyLines(await client.sendCommand(read(key))));
  }
  return parts.join('\n');
}

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** The keys matching a pattern. */
  keys(pattern: string): Promise<string[]>;
  /** Every key and value, as one text (for the secrets scans). */
  dump(): Promise<string>;
  /** SIGKILL: Redis gone at once, connections refused (outage tests). stop() still cleans up afterwards. */
  kill(): Promise<void>;
  /** SIGTERM (SIGKILL after 3 s), then removes its directory. Safe after kill() and when called twice. */
  stop(): Promise<void>;
}

/**
 * Resolves once the server answers PING and INFO says it is this child (not another process that took the
 * port first); rejects when the child exits or the deadline passes.
 */
async function waitUntilAnswers(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode}):\n${output()}`);
    }
    const client = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 500 } });
    client.on('error', () => undefined);
    let pid: string | undefined;
    try {
      await client.connect();
      await client.ping();
      pid = /^process_id:(\d+)/m.exec(await client.info('server'))?.[1] ?? '?';
      await client.close();
    } catch {
      if (client.isOpen) client.destroy();
    }
    if (pid === String(child.pid)) return;
    if (pid !== undefined) throw new Error(`${url} is answered by another process (pid ${pid}), not this redis-server`);
    if (Date.now() > deadline) throw new Error(`redis-server did not answer within 10 s:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Starts redis-server on a free 127.0.0.1 port (another port if someone takes the first one meanwhile). */
export async function startRedisServer(): Promise<RedisServer> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const port = await freePort();
    const server = spawnRedisServer(port);
    const { child, url } = server;

    let inspector: Promise<NodeRedisClient> | undefined;
    const inspect = (): Promise<NodeRedisClient> => (inspector ??= connectNodeRedis(url));
    const dropInspector = async (): Promise<void> => {
      const client = await inspector?.catch(() => undefined);
      inspector = undefined;
      if (client?.isOpen) client.destroy();
    };
    const kill = async (): Promise<void> => {
      await server.kill();
      await dropInspector();
    };
    const stop = async (): Promise<void> => {
      await dropInspector();
      await server.stop();
    };

    try {
      await waitUntilAnswers(url, child, server.output);
    } catch (err) {
      lastError = err;
      await stop();
      continue;
    }
    return {
      url,
      port,
      keys: async (pattern) => keysMatching(await inspect(), pattern),
      dump: async () => dumpRedis(await inspect()),
      kill,
      stop,
    };
  }
  throw lastError instanceof Error ? lastError : new Error('could not start redis-server');
}
