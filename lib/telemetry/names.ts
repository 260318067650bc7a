/**
 * Every name this library publishes telemetry under: diagnostics channels, OpenTelemetry metrics, spans and
 * attributes. They are a stable interface (documented in the README, "Observability"): renaming one is a
 * breaking change for dashboards and APM agents.
 */

/** `node:diagnostics_channel` names, `{package}:{operation}` as the ecosystem names them. */
export const CHANNELS = {
  /** TracingChannel around each logout (`tracing:express-polar-logout:logout:start`, ...). */
  logout: 'express-polar-logout:logout',
  /** TracingChannel around each HTTP call to Polar's revocation endpoint (every attempt, retries included). */
  revoke: 'express-polar-logout:revoke',
  /** Plain channel: one message per queued token the outbox settled. */
  outbox: 'express-polar-logout:outbox',
} as const;

/** The instrumentation scope (meter and tracer name). */
export const SCOPE_NAME = 'express-polar-logout';

export const METRICS = {
  logouts: 'polar_logout.logouts',
  logoutDuration: 'polar_logout.logout.duration',
  revocationRequests: 'polar_logout.revocation.requests',
  revocationDuration: 'polar_logout.revocation.duration',
  throttled: 'polar_logout.throttled',
  outboxJobs: 'polar_logout.outbox.jobs',
  outboxSettlements: 'polar_logout.outbox.settlements',
} as const;

export const SPANS = {
  logout: 'polar_logout.logout',
  revoke: 'polar_logout.revoke',
} as const;

/** Attribute keys: OpenTelemetry semantic conventions where they exist, `polar_logout.*` otherwise. */
export const ATTR = {
  errorType: 'error.type',
  httpStatus: 'http.response.status_code',
  httpMethod: 'http.request.method',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  outcome: 'polar_logout.outcome',
  scope: 'polar_logout.scope',
  tokenType: 'polar_logout.token_type',
  attempt: 'polar_logout.attempt',
  accessTokenStatus: 'polar_logout.access_token.status',
  refreshTokenStatus: 'polar_logout.refresh_token.status',
  outboxState: 'polar_logout.outbox.state',
  outboxMode: 'polar_logout.outbox.mode',
} as const;

/** Seconds, as the semantic conventions' HTTP duration histograms bucket them. */
export const DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
