import { defineConfig } from 'tsup';

// Dual build: CommonJS (.js) and ES modules (.mjs), each with its own declarations.
export default defineConfig({
  entry: { index: 'lib/index.ts', 'testing/index': 'lib/testing/index.ts' },
  format: ['cjs', 'esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  platform: 'node',
  // `__filename` in the ES module build too: lib/redis/peers.ts and lib/telemetry/load.ts resolve the optional
  // peers (bullmq, ioredis, @opentelemetry/api) from this package's own location.
  shims: true,
  splitting: false,
  tsconfig: 'tsconfig.build.json',
});
