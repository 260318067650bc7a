/**
 * A real redis-server (Debian's) per test file, on a free loopback port, with persistence off. Without
 * redis-server the Redis suites are skipped with a message, except in CI (process.env.CI), where they fail.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';

export const redisAvailable = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

/** describe() that needs redis-server: skipped with a message locally when it is missing, failing in CI. */
export function describeWithRedis(name: string, body: () => void): void {
  if (redisAvailable) {
    describe(name, body);
    return;
  }
  if (process.env.CI) {
    describe(name, () => {
      it('needs redis-server', () => {
        throw new Error('redis-server is not installed: CI must install it (apt-get install -y redis-server).');
      });
    });
    return;
  }
  console.warn(`Skipping "${name}": redis-server is not installed (apt-get install redis-server). In CI this fails.`);
  describe.skip(name, body);
}

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

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  /** A client for the test's own inspections. */
  client(): Redis;
  /** Every key and value in Redis, as one string (for the secrets scan). */
  dump(): Promise<string>;
  /** SIGKILL: Redis gone, connections refused. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

function waitForReady(child: ChildProcess): Promise<boolean> {
  return new Promise((resolve) => {
    let output = '';
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.includes('Ready to accept connections')) done(true);
    };
    const onExit = (): void => done(false);
    const timer = setTimeout(() => done(false), 10_000);
    function done(ok: boolean): void {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      resolve(ok);
    }
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startRedis(): Promise<RedisServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'epl-redis-'));
  const clients: Redis[] = [];
  for (let tries = 0; tries < 5; tries += 1) {
    const port = await freePort();
    const child = spawn(
      'redis-server',
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
        'notice',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    if (!(await waitForReady(child))) {
      child.kill('SIGKILL');
      continue; // the port was taken between freePort() and the start: try another
    }
    child.stdout.resume();
    const url = `redis://127.0.0.1:${port}`;
    const server: RedisServer = {
      url,
      port,
      process: child,
      client() {
        const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: false });
        client.on('error', () => undefined);
        clients.push(client);
        return client;
      },
      async dump() {
        const client = server.client();
        const parts: string[] = [];
        let cursor = '0';
        do {
          const [next, keys] = await client.scan(cursor, 'COUNT', 1000);
          cursor = next;
          for (const key of keys) {
            parts.push(`KEY ${key}`);
            const type = await client.type(key);
            if (type === 'string') parts.push(String(await client.get(key)));
            else if (type === 'hash') parts.push(JSON.stringify(await client.hgetall(key)));
            else if (type === 'list') parts.push(JSON.stringify(await client.lrange(key, 0, -1)));
            else if (type === 'set') parts.push(JSON.stringify(await client.smembers(key)));
            else if (type === 'zset') parts.push(JSON.stringify(await client.zrange(key, 0, -1, 'WITHSCORES')));
            else if (type === 'stream') parts.push(JSON.stringify(await client.xrange(key, '-', '+')));
            else parts.push(`(${type})`);
          }
        } while (cursor !== '0');
        return parts.join('\n');
      },
      async kill() {
        child.kill('SIGKILL');
        await exited(child);
      },
      async stop() {
        for (const client of clients.splice(0)) client.disconnect();
        child.kill('SIGTERM');
        await exited(child);
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return server;
  }
  throw new Error('redis-server did not start');
}
