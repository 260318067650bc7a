/**
 * The optional peer from both builds, in child processes: dist/index.js through require() and dist/index.mjs
 * through import(), with @opentelemetry/api installed and an SDK registered (metrics and spans recorded), and
 * from a copy of the package in an app that does not have the API (revocations work, channels still publish).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = path.resolve(__dirname, '../..');
const child = path.join(__dirname, 'fixtures/load-child.cjs');

interface Report {
  status: string;
  revokedAtPolar: boolean;
  uncaught: string[];
  messages: Array<{ tokenType: string; attempt: number; outcome: string }>;
  metrics: string[];
  spans: string[];
}

async function report(dir: string, format: 'js' | 'mjs', ...args: string[]): Promise<Report> {
  const { stdout } = await run(process.execPath, [child, dir, format, ...args], { cwd: dir, timeout: 20_000 });
  return JSON.parse(stdout) as Report;
}

/**
 * An app with a copy of the package and its dependencies (axios, debug), and @opentelemetry/api only if `api`
 * names the installed copy to use.
 */
function appWith(api?: string): string {
  const app = mkdtempSync(path.join(tmpdir(), 'epl-no-otel-'));
  const pkg = path.join(app, 'node_modules', 'express-polar-logout');
  mkdirSync(pkg, { recursive: true });
  cpSync(path.join(root, 'dist'), path.join(pkg, 'dist'), { recursive: true });
  cpSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'));
  for (const dep of ['axios', 'debug'])
    symlinkSync(path.join(root, 'node_modules', dep), path.join(app, 'node_modules', dep), 'dir');
  if (api) {
    mkdirSync(path.join(app, 'node_modules', '@opentelemetry'));
    symlinkSync(path.join(root, 'node_modules', api), path.join(app, 'node_modules', '@opentelemetry', 'api'), 'dir');
  }
  return app;
}

describe.each(['js', 'mjs'] as const)('dist/index.%s', (format) => {
  it('with the API and an SDK: metrics, a revoke span and the channel', async () => {
    const r = await report(root, format, 'sdk');
    expect(r).toMatchObject({ status: 'revoked', revokedAtPolar: true, uncaught: [] });
    expect(r.metrics.sort()).toEqual(['polar_logout.revocation.duration', 'polar_logout.revocation.requests']);
    expect(r.spans).toEqual(['polar_logout.revoke']);
    expect(r.messages).toEqual([
      expect.objectContaining({ tokenType: 'access_token', attempt: 1, outcome: 'revoked' }),
    ]);
  });

  it('in an app without @opentelemetry/api: revokes, publishes on the channel, throws nothing', async () => {
    const app = appWith();
    try {
      await expect(
        run(process.execPath, ['-e', "require.resolve('@opentelemetry/api')"], { cwd: app }),
      ).rejects.toThrow();
      const r = await report(path.join(app, 'node_modules', 'express-polar-logout'), format, 'nosdk');
      expect(r).toMatchObject({ status: 'revoked', revokedAtPolar: true, uncaught: [], metrics: [], spans: [] });
      expect(r.messages).toHaveLength(1);
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  });

  it('with the lowest supported API (1.3.0) in the app, the SDK registered through a newer 1.x: still recorded', async () => {
    const app = appWith('opentelemetry-api-1.3');
    try {
      const r = await report(path.join(app, 'node_modules', 'express-polar-logout'), format, 'sdk');
      expect(r).toMatchObject({ status: 'revoked', uncaught: [], spans: ['polar_logout.revoke'] });
      expect(r.metrics.sort()).toEqual(['polar_logout.revocation.duration', 'polar_logout.revocation.requests']);
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  });

  it('a throwing channel subscriber: Node reports it as uncaught, the revocation is unchanged', async () => {
    const r = await report(root, format, 'sdk', 'throw');
    expect(r).toMatchObject({ status: 'revoked', revokedAtPolar: true, uncaught: ['subscriber bug'] });
    expect(r.spans).toEqual(['polar_logout.revoke']);
  });
});
