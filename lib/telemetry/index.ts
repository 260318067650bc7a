// Telemetry: diagnostics channels and OpenTelemetry, behind the few calls the logout line, the revoker and the
// outbox make. Nothing here is on the request path unless someone subscribes or an SDK is registered.
export { createLogoutTelemetry, type RunLogout, type TraceLogout } from './logout';
export { traceAttempts, type TracedAttempt } from './revoke';
export { observeOutbox, publishSettled } from './outbox';
export { recordThrottled } from './throttle';
export { CHANNELS, METRICS, SPANS } from './names';
export type { LogoutMessage, LogoutOutcome, LogoutScope, OutboxMessage, RevokeMessage } from './types';
