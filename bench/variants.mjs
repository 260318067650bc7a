// Builds of the library that differ from dist/ in one respect, for figures that isolate one cost. Each is an ES
// module bundle of lib/index.ts made with tsup's settings (esbuild, node20, dependencies external): without the
// replacement it is dist/index.mjs to the names of tsup's shim. Kept in .tmp/bench/, rebuilt when missing or older
// than lib/ or the file that replaces a part.
//
//   no-telemetry: every import of lib/telemetry/ resolved to bench/telemetry-off.mjs (figure 9).
//   with-telemetry: nothing replaced, figure 9's other side (a bundle used by one route only, like the first).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

const newest = (paths) =>
  Math.max(
    ...paths.flatMap((p) =>
      statSync(p).isDirectory()
        ? readdirSync(p, { recursive: true }).map((f) => statSync(join(p, String(f))).mtimeMs)
        : [statSync(p).mtimeMs],
    ),
  );

/** Resolves `./telemetry`, `../telemetry` and `../telemetry/<part>` from lib/ (outside lib/telemetry/) to `stub`. */
function replaceTelemetry(stub) {
  return {
    name: 'telemetry-off',
    setup(b) {
      b.onResolve({ filter: /^\.{1,2}\/telemetry(\/[a-z-]+)?$/ }, (args) => {
        if (!args.importer.startsWith(join(root, 'lib')) || args.importer.includes(join('lib', 'telemetry'))) {
          return undefined;
        }
        return { path: stub };
      });
    },
  };
}

/**
 * Builds lib/index.ts to .tmp/bench/<name>/index.mjs (unless it is newer than lib/, this file and `inputs`), with
 * `plugins`; returns its path.
 */
async function variantBuild(name, plugins, inputs) {
  const outfile = join(root, '.tmp', 'bench', name, 'index.mjs');
  if (
    existsSync(outfile) &&
    statSync(outfile).mtimeMs >= newest([join(root, 'lib'), fileURLToPath(import.meta.url), ...inputs])
  ) {
    return outfile;
  }
  await build({
    entryPoints: [join(root, 'lib', 'index.ts')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    tsconfig: join(root, 'tsconfig.build.json'),
    plugins,
    // tsup's `shims`, as in dist/index.mjs: lib/redis/peers.ts resolves optional peers from __filename.
    banner: {
      js: "import { fileURLToPath as __eplFileURLToPath } from 'node:url';\nconst __filename = __eplFileURLToPath(import.meta.url);",
    },
    logLevel: 'warning',
  });
  return outfile;
}

/** The path of the no-telemetry build's index.mjs, built first if needed. */
export function noTelemetryBuild() {
  const stub = join(here, 'telemetry-off.mjs');
  return variantBuild('no-telemetry', [replaceTelemetry(stub)], [stub]);
}

/**
 * The same sources built the same way with nothing replaced: figure 9's other side. Both sides are then a bundle of
 * their own, loaded once and used by one route each; dist/ is shared by every route and figure of the app, and a
 * function V8 saw called with many instances' options runs slower than one that saw a single instance's.
 */
export function withTelemetryBuild() {
  return variantBuild('with-telemetry', [], []);
}
