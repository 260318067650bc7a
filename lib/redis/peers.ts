/**
 * The optional peers (bullmq, ioredis, redis), resolved from this package's own location, synchronously, so
 * that a missing one is refused at construction with the command that installs it.
 *
 * The same code serves both builds: `__filename` is CommonJS's own in dist/index.js (and under ts-jest), and
 * tsup's `shims` define it from `import.meta.url` in dist/index.mjs. Nothing here looks at a `module` global:
 * one exists in ESM code run by `node --input-type=module -e` and the REPL, and told the ESM build wrongly
 * that the peers were missing.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { invalidOption } from '../errors';

export type PeerName = 'bullmq' | 'ioredis' | 'redis';

let requireFromHere: NodeJS.Require | undefined;
function localRequire(): NodeJS.Require {
  // A bundle without the shim (an app's own bundler) resolves from the working directory instead.
  return (requireFromHere ??= createRequire(
    typeof __filename === 'string' ? __filename : path.join(process.cwd(), 'index.js'),
  ));
}

/** Whether `name` can be loaded from here (resolution only: nothing is executed). */
export function hasPeer(name: PeerName): boolean {
  try {
    localRequire().resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** Throws an INVALID_OPTION error naming `npm install …` for the packages of `names` that are missing. */
export function requirePeers(option: string, names: readonly PeerName[], why: string): void {
  const missing = names.filter((name) => !hasPeer(name));
  if (missing.length === 0) return;
  throw invalidOption(
    option,
    `needs ${missing.join(' and ')} for ${why} (optional peer${missing.length > 1 ? 's' : ''} of ` +
      `express-polar-logout, not installed): npm install ${missing.join(' ')}.`,
  );
}

/** Loads a peer (its CommonJS entry; bullmq and ioredis are CommonJS at heart, node-redis ships both). */
export function loadPeer(name: PeerName): unknown {
  return localRequire()(name) as unknown;
}

/** A named export of a CommonJS package, whichever way it was exported. */
export function pick(mod: unknown, name: string): unknown {
  const m = mod as Record<string, unknown> & { default?: Record<string, unknown> };
  return m[name] ?? m.default?.[name];
}
