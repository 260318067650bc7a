/**
 * A throwaway redis-server for the suites that need a real Redis (outbox, reliability, e2e): Debian's binary
 * (or REDIS_SERVER_BIN) on a free 127.0.0.1 port, persistence off, stopped afterwards. Without the binary the
 * Redis tests are skipped with a message, except in CI (process.env.CI set), where its absence fails them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createClient } from 'redis';

export const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? 'redis-server';

/** Whether redis-server can be run here (it answers `--version`). */
export const redisAvailable: boolean = (() => {
  const probe = spawnSync(REDIS_SERVER_BIN, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 && /Redis server/i.test(probe.stdout);
})();

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

/** A port that was free a moment ago on 127.0.0.1 (for servers whose URL must be known before they listen). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
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

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
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
    const dir = mkdtempSync(path.join(os.tmpdir(), 'epl-redis-'));
    const child = spawn(
      REDIS_SERVER_BIN,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--protected-mode',
        'yes',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--loglevel',
        'warning',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    running.add(child);
    let output = '';
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const url = `redis://127.0.0.1:${port}`;

    let inspector: Promise<NodeRedisClient> | undefined;
    const inspect = (): Promise<NodeRedisClient> => (inspector ??= connectNodeRedis(url));
    const dropInspector = async (): Promise<void> => {
      const client = await inspector?.catch(() => undefined);
      inspector = undefined;
      if (client?.isOpen) client.destroy();
    };
    const kill = async (): Promise<void> => {
      child.kill('SIGKILL');
      await exited(child);
      await dropInspector();
    };
    const stop = async (): Promise<void> => {
      await dropInspector();
      if (child.exitCode === null && child.signalCode === null) {
        const force = setTimeout(() => child.kill('SIGKILL'), 3000);
        child.kill('SIGTERM');
        await exited(child);
        clearTimeout(force);
      }
      running.delete(child);
      rmSync(dir, { recursive: true, force: true });
    };

    try {
      await waitUntilAnswers(url, child, () => output);
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
