/**
 * Process warnings for misconfiguration that shows only at run time (a wrong client secret, a URL that is not
 * Polar's, a cookie name that does not match, a Redis that is not there). Each code is reported once per process:
 * a warning per request would drown the logs it is meant for. `debug` sees every occurrence.
 *
 * Messages say what is wrong and what to fix; like every message of this library they never carry a token, the
 * client secret, a session id or URL credentials.
 */
import createDebug from 'debug';

const debug = createDebug('express-polar-logout:warning');

/** The `type` of every warning this library emits: `process.on('warning', (w) => w.name === WARNING_TYPE)`. */
export const WARNING_TYPE = 'PolarLogoutWarning';

const emitted = new Set<string>();

/** Emits `message` as a process warning with a stable `code`, the first time that code is seen in this process. */
export function warnOnce(code: string, message: string): void {
  debug('%s: %s', code, message);
  if (emitted.has(code)) return;
  emitted.add(code);
  process.emitWarning(message, { type: WARNING_TYPE, code });
}
