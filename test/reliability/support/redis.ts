/**
 * A throwaway redis-server for the suite: Debian's binary on a free loopback port, no persistence,
 * stopped afterwards. When the binary is absent the Redis tests are skipped with a message, except in CI
 * (process.env.CI set), where its absence is an error.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createClient } from 'redis';

const BINARY = process.env.REDIS_SERVER_BIN ?? 'redis-server';

function binaryWorks(): boolean {
  const probe = spawnSync(BINARY, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 && /Redis server/i.test(probe.stdout);
}

/** Whether the Redis tests run. Throws in CI when redis-server is missing. */
export const redisAvailable: boolean = (() => {
  if (binaryWorks()) return true;
  if (process.env.CI) {
    throw new Error(`${BINARY} was not found, and CI is set: install it (apt-get install redis-server).`);
  }
  process.stdout.write(
    `\n[reliability] ${BINARY} not found: skipping the Redis tests (they are required when CI is set).\n`,
  );
  return false;
})();

export const describeWithRedis: jest.Describe = redisAvailable ? describe : describe.skip;

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitUntilReady(url: string, child: ChildProcess, deadline: number): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    const client = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 500 } });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      await client.close();
      return;
    } catch {
      if (client.isOpen) client.destroy();
      if (Date.now() > deadline) throw new Error('redis-server did not become ready in time');
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Starts redis-server on a free 127.0.0.1 port (retrying if another process takes the port first). */
export async function startRedis(): Promise<RedisServer> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'epl-redis-'));
    const child = spawn(
      BINARY,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
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
    child.stdout.resume();
    child.stderr.resume();
    const url = `redis://127.0.0.1:${port}`;
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      running.delete(child);
      rmSync(dir, { recursive: true, force: true });
    };
    try {
      await waitUntilReady(url, child, Date.now() + 5000);
      return { url, port, stop };
    } catch (err) {
      lastError = err;
      await stop();
    }
  }
  throw lastError instanceof Error ? lastError : new Error('could not start redis-server');
}

export type NodeRedisClient = ReturnType<typeof createClient>;

export async function connectNodeRedis(url: string): Promise<NodeRedisClient> {
  const client = createClient({ url });
  client.on('error', () => undefined); // reported by the failing command instead
  await client.connect();
  return client;
}

/** Keys matching a pattern (SCAN, not KEYS). */
export async function keysMatching(client: NodeRedisClient, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const batch of client.scanIterator({ MATCH: pattern, COUNT: 1000 })) keys.push(...batch);
  return keys;
}
