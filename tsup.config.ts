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
  // `__filename` in the ES module build too (lib/telemetry/load.ts resolves the optional OpenTelemetry API from it).
  shims: true,
  splitting: false,
  tsconfig: 'tsconfig.build.json',
});
