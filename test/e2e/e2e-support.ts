/**
 * What the example-app tests share: loading the example (which imports the built package by its name, so
 * dist/ must exist and be current), and reading sessions. Free ports and redis-server: ../support/redis-server.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Express } from 'express';
import type session from 'express-session';
import type {
  LogoutEvent,
  OutboxBackoffOptions,
  OutboxCounts,
  OutboxSettledEvent,
  RevocationOutbox,
  SessionRegistry,
} from '../../lib';
import type { FakePolar } from '../../lib/testing';

export const ROOT = path.resolve(__dirname, '../..');
export const ARTIFACTS = path.join(ROOT, 'test/e2e/artifacts');
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// ---- The example's shapes (it is plain JavaScript with JSDoc; these mirror what the tests use) ----

export interface ExampleConfig {
  port: number;
  host: string;
  publicUrl: string;
  sessionSecret: string | undefined;
  redisUrl: string | undefined;
  trustProxy: string | number | boolean;
  polar: { clientId: string; clientSecret: string; server: 'sandbox' | 'production' } | undefined;
}

export interface PolarStandin {
  url: string;
  authorizeUrl: string;
  clientId: string;
  clientSecret: string;
  user: { sub: string; name: string; email: string };
  fake: FakePolar;
  close(): Promise<void>;
}

export interface ExampleApp {
  app: Express;
  config: ExampleConfig;
  standin: PolarStandin | undefined;
  sessionStore: {
    /** What express-session uses: `inner` wrapped by the session registry. */
    store: session.Store;
    /** The app's store itself (MemoryStore or connect-redis), read by tests without the registry in the way. */
    inner: session.Store;
    sessions: SessionRegistry;
    kind: 'memory' | 'redis';
    description: string;
    prefix: string | undefined;
  };
  outbox: {
    outbox: RevocationOutbox;
    kind: 'memory' | 'redis';
    description: string;
    counts(): Promise<OutboxCounts | undefined>;
  };
  cookieName: string;
  redirectUri: string;
  polarLabel: string;
  auditEvents: readonly LogoutEvent[];
  settledEvents: readonly OutboxSettledEvent[];
  close(): Promise<void>;
}

export interface ExampleAppOptions {
  log?: (message: string) => void;
  /** Tests only: short retry steps for the revocation outbox. */
  outboxBackoff?: OutboxBackoffOptions;
  /** Tests only: false where the configuration names the real Polar, which tests never call. */
  verifyAtStartup?: boolean;
}

export interface ExampleModules {
  readConfig(env: NodeJS.ProcessEnv): ExampleConfig;
  ConfigError: new (message: string) => Error;
  createExampleApp(config: ExampleConfig, options?: ExampleAppOptions): Promise<ExampleApp>;
  StartupError: new (message: string) => Error;
}

// ---- dist/: the example imports `express-polar-logout`, which this repository resolves to its own build ----

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

const BUILT = [path.join(ROOT, 'dist/index.js'), path.join(ROOT, 'dist/testing/index.js')];

function builtAt(): number | undefined {
  if (!BUILT.every((file) => existsSync(file))) return undefined;
  return Math.min(...BUILT.map((file) => statSync(file).mtimeMs));
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Builds dist/ when it is missing or older than lib/, once across parallel jest workers (a lock directory),
 * then waits until both entry points exist (another test, `npm pack`, may be rebuilding it right now).
 */
export function ensureBuilt(): void {
  const lock = path.join(ROOT, '.tmp/e2e-build.lock');
  const deadline = Date.now() + 90_000;
  for (;;) {
    const built = builtAt();
    if (built !== undefined && built >= newestMtime(path.join(ROOT, 'lib'))) return;
    if (Date.now() > deadline) {
      throw new Error(
        'dist/ is missing or older than lib/ and could not be built: run `npm run build` and look at its errors.',
      );
    }
    try {
      mkdirSync(path.dirname(lock), { recursive: true });
      mkdirSync(lock);
    } catch {
      // Someone else is building; a lock older than two minutes belongs to a run that died.
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 120_000)
        rmSync(lock, { recursive: true, force: true });
      sleepSync(250);
      continue;
    }
    try {
      if (builtAt() === undefined || builtAt()! < newestMtime(path.join(ROOT, 'lib'))) {
        execFileSync(path.join(ROOT, 'node_modules/.bin/tsup'), { cwd: ROOT, stdio: 'pipe' });
      }
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
    sleepSync(100);
  }
}

/** The example's modules, loaded from the current build. */
export function loadExample(): ExampleModules {
  ensureBuilt();
  /* eslint-disable @typescript-eslint/no-require-imports */
  const config = require('../../example-app/config.js') as Pick<ExampleModules, 'readConfig' | 'ConfigError'>;
  const app = require('../../example-app/app.js') as Pick<ExampleModules, 'createExampleApp'>;
  const store = require('../../example-app/session-store.js') as Pick<ExampleModules, 'StartupError'>;
  /* eslint-enable @typescript-eslint/no-require-imports */
  return { ...config, ...app, ...store };
}

// ---- Sessions ----

/** The session id inside an express-session cookie value (`s:<id>.<signature>`, URL-encoded). */
export function sessionIdOfCookie(value: string): string {
  const decoded = decodeURIComponent(value);
  if (!decoded.startsWith('s:')) throw new Error('not a signed express-session cookie');
  return decoded.slice(2, decoded.lastIndexOf('.'));
}

/** store.get() as a promise. */
export function storedSession(store: session.Store, sid: string): Promise<Record<string, unknown> | null | undefined> {
  return new Promise((resolve, reject) => {
    store.get(sid, (err, data) =>
      err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(data as never),
    );
  });
}

/** The ids of every session in a store (store.all()). */
export function storedIds(store: session.Store): Promise<string[]> {
  return new Promise((resolve, reject) => {
    store.all!((err, all) =>
      err
        ? reject(err instanceof Error ? err : new Error(String(err)))
        : resolve(Array.isArray(all) ? all.map((s) => (s as unknown as { id: string }).id) : Object.keys(all ?? {})),
    );
  });
}
