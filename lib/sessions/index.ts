export { createSessionRegistry } from './registry';
export { registryInternals, type RegistryInternals } from './internals';
export { countOutcome, emptySummary } from './end-sessions';
export type {
  EndSessionsOptions,
  SessionInfo,
  SessionRegistry,
  SessionRegistryOptions,
  SessionRevoker,
  SessionsLogoutSummary,
  StoredSession,
} from './types';
