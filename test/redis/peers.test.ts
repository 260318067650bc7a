/**
 * The packed package installed into an app that already depends on ioredis 6 (npm's latest): no ERESOLVE, no
 * --legacy-peer-deps. Then the ES module build, run as `node --input-type=module -e` (where a `module` global
 * exists and once made the outbox claim bullmq and ioredis were missing), queues a job in a real Redis.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describeWithRedis, startRedisServer, type RedisServer } from '../support/redis-server';

const root = path.resolve(__dirname, '../..');

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): string {
  return execFileSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 180_000,
    env: { ...process.env, ...env },
  });
}

describeWithRedis('installed next to ioredis 6', () => {
  let work: string;
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedisServer();
    work = mkdtempSync(path.join(tmpdir(), 'epl-ioredis6-'));
    run('npm', ['pack', '--ignore-scripts', '--pack-destination', work, '--silent'], root);
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'))!;
    writeFileSync(
      path.join(work, 'package.json'),
      JSON.stringify({
        name: 'app-with-ioredis6',
        private: true,
        dependencies: { ioredis: '^6.0.0', bullmq: '^6.7.0' },
      }),
    );
    // The app's own dependencies first, as it had them; then this package, with npm's default peer checks.
    run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], work);
    run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', `./${tarball}`], work);
  }, 240_000);
  afterAll(async () => {
    if (work) rmSync(work, { recursive: true, force: true });
    await redis.stop();
  });

  it('installs without --legacy-peer-deps and keeps the app on ioredis 6', () => {
    expect(run('node', ['-p', "require('ioredis/package.json').version"], work).trim()).toMatch(/^6\./);
  });

  it('queues a job from `node --input-type=module -e` with the ESM build', () => {
    const script = `
      import { createRevocationOutbox } from 'express-polar-logout';
      const outbox = createRevocationOutbox({
        clientId: 'polar_ci_esm_eval', clientSecret: 'polar_cs_esm_eval_0123456789', baseUrl: 'http://127.0.0.1:9',
        redis: process.env.REDIS_URL, worker: false,
      });
      await outbox.enqueue('polar_at_esm_eval_token', 'access_token');
      console.log(JSON.stringify({ module: typeof module, counts: await outbox.counts() }));
      await outbox.close();
    `;
    const out = run('node', ['--input-type=module', '-e', script], work, { REDIS_URL: redis.url });
    const result = JSON.parse(out.trim().split('\n').pop()!) as { module: string; counts: unknown };
    expect(result.module).not.toBe('undefined'); // the global that fooled the old detection is there
    expect(result.counts).toEqual({ waiting: 1, delayed: 0, active: 0 });
  }, 30_000);
});
