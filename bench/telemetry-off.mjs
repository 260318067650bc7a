// Figure 9's "library without telemetry": bench/variants.mjs builds lib/ with every import of lib/telemetry/ (the
// logout line's, the revoker's, the outbox's) resolved to this file instead. Each entry point does here what the
// real one does on its fast path (no subscriber, no SDK), minus the checks that decide it is on the fast path, so
// the difference between the two builds is what telemetry costs when nobody listens.
export { CHANNELS, METRICS, SPANS } from '../lib/telemetry/names';

/** The logout runs as is, with no message to fill in. */
export const createLogoutTelemetry = () => (_req, next, run) => run(next, undefined);
/** The revoker's single attempt, unwrapped. */
export const traceAttempts = (_revokeUrl, attempt) => (token, hint, budget) => attempt(token, hint, budget);
export const recordThrottled = () => {};
export const observeOutbox = (outbox) => outbox;
export const publishSettled = () => {};
