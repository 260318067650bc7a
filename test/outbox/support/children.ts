/**
 * Real child processes for the durability tests: the library bundled with esbuild (the same sources as
 * dist/, CommonJS and ESM, dependencies left external) into a private folder under .tmp/, so the tests
 * neither need nor disturb dist/. The worker bin is copied next to it and runs unchanged.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const ROOT = path.resolve(__dirname, '../../..');

export interface Bundle {
  /** Folder holding dist/index.js, dist/index.mjs and bin/. */
  dir: string;
  cjs: string;
  esm: string;
  bin: string;
  remove(): void;
}

export async function bundleLibrary(): Promise<Bundle> {
  const dir = path.join(ROOT, '.tmp', `outbox-test-${process.pid}-${Date.now()}`);
  const options = {
    entryPoints: { index: path.join(ROOT, 'lib/index.ts') },
    bundle: true,
    platform: 'node' as const,
    target: 'node20',
    packages: 'external' as const,
    outdir: path.join(dir, 'dist'),
    logLevel: 'silent' as const,
  };
  await Promise.all([
    build({ ...options, format: 'cjs' }),
    build({
      ...options,
      format: 'esm',
      outExtension: { '.js': '.mjs' },
      // What tsup's `shims` give dist/index.mjs: __filename, from which lib/redis/peers.ts resolves the peers.
      banner: {
        js: "import { fileURLToPath as __eplFileURLToPath } from 'node:url'; const __filename = __eplFileURLToPath(import.meta.url);",
      },
    }),
  ]);
  mkdirSync(path.join(dir, 'bin'), { recursive: true });
  const bin = path.join(dir, 'bin', 'express-polar-logout-worker.js');
  copyFileSync(path.join(ROOT, 'bin', 'express-polar-logout-worker.js'), bin);
  return {
    dir,
    cjs: path.join(dir, 'dist', 'index.js'),
    esm: path.join(dir, 'dist', 'index.mjs'),
    bin,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface Child {
  readonly process: ChildProcess;
  /** JSON lines printed on stdout. */
  readonly records: Record<string, unknown>[];
  /** Everything printed (stdout and stderr), for the secrets scan. */
  output(): string;
  /** Resolves with the first record (seen or to come) that matches. */
  waitFor(
    match: (record: Record<string, unknown>) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<Record<string, unknown>>;
  kill(signal: NodeJS.Signals): Promise<void>;
  exited(): Promise<number | null>;
}

export function startChild(script: string, env: Record<string, string>, args: string[] = []): Child {
  const child = spawn(process.execPath, [...args, script], {
    env: { PATH: process.env.PATH ?? '', DEBUG: 'express-polar-logout*', DEBUG_COLORS: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const records: Record<string, unknown>[] = [];
  const chunks: string[] = [];
  const waiters = new Set<() => void>();
  let buffer = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    chunks.push(text);
    buffer += text;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      try {
        records.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a record
      }
    }
    for (const wake of waiters) wake();
  });
  child.stderr.on('data', (chunk: Buffer) => void chunks.push(chunk.toString('utf8')));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exit.then(() => {
    for (const wake of waiters) wake();
  });

  return {
    process: child,
    records,
    output: () => chunks.join(''),
    waitFor(match, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = records.find(match);
          if (found) return finish(() => resolve(found));
          if (child.exitCode !== null || child.signalCode !== null) {
            finish(() => reject(new Error(`child exited before ${what}:\n${chunks.join('').slice(-3000)}`)));
          }
        };
        const timer = setTimeout(
          () =>
            finish(() =>
              reject(
                new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${chunks.join('').slice(-3000)}`),
              ),
            ),
          timeoutMs,
        );
        function finish(settle: () => void): void {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        }
        waiters.add(check);
        check();
      });
    },
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exit;
    },
    exited: () => exit,
  };
}
