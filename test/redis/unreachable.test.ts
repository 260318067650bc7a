/**
 * When Redis is not there: commands have a time bound (a dead or silent Redis never holds a request), the
 * problem is reported once with host and port and never the password, and the worker bin says so at once and
 * exits for a restart when it cannot make progress.
 */
import net from 'node:net';
import path from 'node:path';
import Redis from 'ioredis';
import { createRedisTombstones } from '../../lib';
import { freePort } from '../support/redis-server';
import { bundleLibrary, startChild, type Bundle, type Child } from '../outbox/support/children';

const PASSWORD = 'redis-pass-4f1c9e7a';

describe('an unreachable or silent Redis', () => {
  // What warnOnce() hands to process.emitWarning (jest's sandboxed `process` does not relay 'warning' events).
  const warnings: Array<{ message: string; type?: string; code?: string }> = [];
  let spy: jest.SpyInstance | undefined;
  beforeAll(() => {
    spy = jest.spyOn(process, 'emitWarning').mockImplementation(((
      message: string,
      options?: { type?: string; code?: string },
    ) => {
      warnings.push({ message, ...options });
    }) as never);
  });
  afterAll(() => spy?.mockRestore());

  it('tombstone commands on a Redis that accepts but never answers fail within their bound', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    const client = new Redis({
      host: '127.0.0.1',
      port,
      password: PASSWORD,
      enableReadyCheck: false,
      maxRetriesPerRequest: 1,
    });
    client.on('error', () => undefined);
    try {
      const tombstones = createRedisTombstones({ client, commandTimeoutMs: 300 });
      const started = Date.now();
      const error = await Promise.resolve(tombstones.has('some-key')).then(
        () => undefined,
        (err: unknown) => err as Error,
      );
      expect(Date.now() - started).toBeLessThan(3000);
      expect(error?.name).toBe('RedisUnavailableError');
      expect(error?.message).not.toContain(PASSWORD);
      expect(error?.message).not.toContain('some-key');
      const warning = warnings.find((w) => w.code === 'EPL_REDIS_UNREACHABLE');
      expect(warning?.type).toBe('PolarLogoutWarning');
      expect(warning?.message).toContain(`Redis at 127.0.0.1:${port} is not reachable`);
      expect(warning?.message).not.toContain(PASSWORD);
    } finally {
      client.disconnect();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  describe('the worker bin', () => {
    let bundle: Bundle;
    let child: Child | undefined;
    beforeAll(async () => {
      bundle = await bundleLibrary();
    });
    afterAll(() => {
      child?.process.kill('SIGKILL');
      bundle.remove();
    });

    it('reports a Redis with nothing behind it at once (host and port, no password) and exits 3 when stuck', async () => {
      const port = await freePort();
      child = startChild(bundle.bin, {
        POLAR_CLIENT_ID: 'polar_ci_unreachable',
        POLAR_CLIENT_SECRET: 'polar_cs_unreachable_0123456789',
        POLAR_BASE_URL: 'http://127.0.0.1:9',
        REDIS_URL: `redis://default:${PASSWORD}@127.0.0.1:${port}`,
        POLAR_OUTBOX_STUCK_AFTER_MS: '2000',
      });
      const started = Date.now();
      const warning = await child.waitFor(
        (r) => r.code === 'EPL_REDIS_UNREACHABLE',
        5000,
        'the unreachable-Redis warning',
      );
      expect(Date.now() - started).toBeLessThan(5000);
      expect(warning.msg).toContain(`127.0.0.1:${port}`);
      expect(await child.exited()).toBe(3);
      expect(child.records.some((r) => /no progress since start-up/.test(String(r.msg)))).toBe(true);
      expect(child.output()).not.toContain(PASSWORD);
      expect(path.basename(bundle.bin)).toBe('express-polar-logout-worker.js');
    }, 30_000);
  });
});
