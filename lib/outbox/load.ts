/**
 * Loads the optional peers (bullmq, ioredis) on first use. In CommonJS (dist/index.js, and the tests)
 * through the module's own require; in ES modules (dist/index.mjs) through import(). Both name the
 * package literally, so bundlers see what is loaded.
 */
function commonJsModule(): NodeJS.Module | undefined {
  // `module` is not defined at all in an ES module, whatever its type says.
  return typeof module === 'undefined' ? undefined : module;
}

export function loadBullmq(): Promise<unknown> {
  const cjs = commonJsModule();
  return cjs ? Promise.resolve().then(() => cjs.require('bullmq') as unknown) : import('bullmq');
}

export function loadIoredis(): Promise<unknown> {
  const cjs = commonJsModule();
  return cjs ? Promise.resolve().then(() => cjs.require('ioredis') as unknown) : import('ioredis');
}
