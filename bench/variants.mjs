// Builds of the library that differ from dist/ in one respect, for figures that isolate one cost. Each is an ES
// module bundle of lib/index.ts made with tsup's settings (esbuild, node20, dependencies external): without the
// replacement it is dist/index.mjs to the names of tsup's shim. Kept in .tmp/bench/, rebuilt when missing or older
// than lib/ or the file that replaces a part.
//
//   no-telemetry: every import of lib/telemetry/ resolved to bench/telemetry-off.mjs (figure 9).
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

/** The path of the no-telemetry build's index.mjs, built first if needed. */
export async function noTelemetryBuild() {
  const stub = join(here, 'telemetry-off.mjs');
  const outfile = join(root, '.tmp', 'bench', 'no-telemetry', 'index.mjs');
  if (
    existsSync(outfile) &&
    statSync(outfile).mtimeMs >= newest([join(root, 'lib'), stub, fileURLToPath(import.meta.url)])
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
    plugins: [replaceTelemetry(stub)],
    // tsup's `shims`, as in dist/index.mjs: lib/redis/peers.ts resolves optional peers from __filename.
    banner: {
      js: "import { fileURLToPath as __eplFileURLToPath } from 'node:url';\nconst __filename = __eplFileURLToPath(import.meta.url);",
    },
    logLevel: 'warning',
  });
  return outfile;
}
