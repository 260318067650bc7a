/**
 * The package as users get it: `npm pack` of the built dist/, installed from the tarball into an
 * empty project, then imported from ES modules and required from CommonJS, and run for real.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');
let work: string;

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
}

// A real logout through the installed package: stand-in, app, revocation, destroyed session.
const scenario = (imports: string): string => `${imports}
(async () => {
  const fake = await startFakePolar();
  const pair = fake.issueTokens();
  const app = express();
  app.use(session({ secret: 's', resave: false, saveUninitialized: false }));
  app.post('/login', (req, res) => { Object.assign(req.session, pair); req.session.save(() => res.end()); });
  // The in-memory outbox works without the optional peers (bullmq, ioredis), which are not installed here.
  const outbox = createRevocationOutbox({ clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url });
  const logout = polarLogout({ clientId: fake.clientId, clientSecret: fake.clientSecret, baseUrl: fake.url, outbox });
  app.post('/logout', logout);
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = 'http://127.0.0.1:' + server.address().port;
  const login = await fetch(base + '/login', { method: 'POST' });
  const cookie = login.headers.get('set-cookie').split(';')[0];
  const res = await fetch(base + '/logout', { method: 'POST', headers: { cookie }, redirect: 'manual' });
  const ok = res.status === 303 && !fake.isActive(pair.accessToken) && !fake.isActive(pair.refreshToken)
    && typeof PolarLogoutError === 'function' && typeof createPolarRevoker === 'function';
  logout.close(); server.close(); await outbox.close(); await fake.close();
  console.log(ok ? 'LOGOUT_OK' : 'LOGOUT_BROKEN ' + res.status);
})();
`;

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'epl-pack-'));
  // dist/ was built by the global setup; packing without prepack keeps it stable for the suites running alongside.
  run('npm', ['pack', '--ignore-scripts', '--pack-destination', work, '--silent'], root);
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack produced no tarball');
  writeFileSync(path.join(work, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  run(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      `./${tarball}`,
      'express@5',
      'express-session@1',
      '@types/express@5',
      '@types/express-session@1',
      '@types/node@20',
    ],
    work,
  );
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('contains only what users need', () => {
    const listing = run('tar', ['-tzf', readdirSync(work).find((f) => f.endsWith('.tgz'))!], work);
    const files = listing
      .trim()
      .split('\n')
      .map((f) => f.replace(/^package\//, ''));
    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'dist/index.js',
        'dist/index.mjs',
        'dist/index.d.ts',
        'dist/testing/index.js',
      ]),
    );
    expect(
      files.filter(
        (f) =>
          !/^(dist\/|bin\/express-polar-logout-worker\.js$|package\.json$|README\.md$|CHANGELOG\.md$|LICENSE$)/.test(f),
      ),
    ).toEqual([]);
  });

  it('works with require() from CommonJS', () => {
    writeFileSync(
      path.join(work, 'cjs.cjs'),
      scenario(`const express = require('express'); const session = require('express-session');
const { polarLogout, createPolarRevoker, createRevocationOutbox, PolarLogoutError } = require('express-polar-logout');
const { startFakePolar } = require('express-polar-logout/testing');`),
    );
    expect(run('node', ['cjs.cjs'], work)).toContain('LOGOUT_OK');
  });

  it('works with import from ES modules', () => {
    writeFileSync(
      path.join(work, 'esm.mjs'),
      scenario(`import express from 'express'; import session from 'express-session';
import { polarLogout, createPolarRevoker, createRevocationOutbox, PolarLogoutError } from 'express-polar-logout';
import { startFakePolar } from 'express-polar-logout/testing';`),
    );
    expect(run('node', ['esm.mjs'], work)).toContain('LOGOUT_OK');
  });

  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const consumer = `import { polarLogout, PolarLogoutError, type LogoutEvent } from 'express-polar-logout';
import { startFakePolar, type FakePolar } from 'express-polar-logout/testing';
const onLogout = (event: LogoutEvent): void => void event.revocation.accessToken.status;
export const handler = polarLogout({ clientId: 'id', clientSecret: 'secret', onLogout });
export const isError = (e: unknown): boolean => e instanceof PolarLogoutError && e.code === 'REVOCATION_FAILED';
export const start: () => Promise<FakePolar> = startFakePolar;
// @ts-expect-error a misspelt option must not compile for users either
polarLogout({ clientId: 'id', clientSecret: 'secret', redirecTo: '/' });
`;

  it.each([
    ['node16 from a CommonJS file', 'consumer.cts', ['--module', 'node16', '--moduleResolution', 'node16']],
    ['node16 from an ES module file', 'consumer.mts', ['--module', 'node16', '--moduleResolution', 'node16']],
    ['bundler', 'consumer.ts', ['--module', 'esnext', '--moduleResolution', 'bundler']],
  ])('type-checks for TypeScript users with moduleResolution %s', (_label, file, flags) => {
    writeFileSync(path.join(work, file), consumer);
    // No skipLibCheck: the shipped declarations themselves must compile.
    run('node', [tsc, '--noEmit', '--strict', '--target', 'es2022', '--types', 'node', ...flags, file], work);
  });
});
