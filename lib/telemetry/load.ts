/**
 * Loads @opentelemetry/api, an optional peer, synchronously and only if the app installed it, resolved from
 * this file's location like any dependency: in CommonJS with the module's own `require` (the one jest provides
 * in tests, so the test's SDK and the library share one API); in the ES module build with a require created
 * from `__filename`, which tsup's shims define from `import.meta.url` there (tsup.config.ts `shims: true`).
 * The API keeps its registrations on a global, so the copy loaded here is the app's, whichever format it uses.
 */
import { createRequire } from 'node:module';
import type * as OpenTelemetryApi from '@opentelemetry/api';

export type OtelApi = typeof OpenTelemetryApi;

function requireHere(): (id: string) => unknown {
  // A CommonJS module's own `module` names this very file. In an ES module a `module` global may still exist
  // (the REPL, node --input-type=module -e) but it belongs to something else: never resolve from it.
  if (typeof module !== 'undefined' && module.filename === __filename) return (id) => module.require(id) as unknown;
  return createRequire(__filename);
}

/** The API, or undefined when it is not installed (or not usable: telemetry then stays off). */
export function loadOpenTelemetryApi(): OtelApi | undefined {
  try {
    const api = requireHere()('@opentelemetry/api') as Partial<OtelApi>;
    return typeof api.metrics?.getMeterProvider === 'function' && typeof api.trace?.getTracer === 'function'
      ? (api as OtelApi)
      : undefined;
  } catch {
    return undefined;
  }
}
