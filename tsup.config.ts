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
  splitting: false,
  // __filename in the ESM build (lib/redis/peers.ts resolves the optional peers from this package's location).
  shims: true,
  tsconfig: 'tsconfig.build.json',
});
