// The public face: re-exports only.
export { polarLogout, type PolarLogoutHandler } from './middleware';
export { createPolarRevoker, type PolarRevoker, type RevokeCallOptions } from './revoker';
export { PolarLogoutError, type PolarLogoutErrorCode } from './errors';
export {
  CHANNELS,
  type LogoutMessage,
  type LogoutOutcome,
  type LogoutScope,
  type OutboxMessage,
  type RevokeMessage,
} from './telemetry';
export {
  createRevocationOutbox,
  RevocationOutboxError,
  type RevocationOutboxErrorCode,
  type RevocationOutbox,
  type RevocationOutboxOptions,
  type OutboxSettledEvent,
  type OutboxErrorCode,
  type OutboxBackoffOptions,
  type OutboxCounts,
  type OutboxHealth,
  type OutboxRedis,
  type OutboxRedisClient,
  type OutboxRedisConnectionOptions,
} from './outbox';
export type {
  ClearSiteDataDirective,
  ClientAuthMethod,
  LogoutEvent,
  PolarClientOptions,
  PolarLogoutOptions,
  PolarRevokerOptions,
  PolarServer,
  PolarSessionData,
  RevocationError,
  RevocationErrorCode,
  RevocationQueue,
  RevocationResult,
  SharedRedis,
  TokenOutcome,
  TokenPair,
  TokenTypeHint,
  VerifyOptions,
  VerifyResult,
} from './types';
export {
  createSessionRegistry,
  type EndSessionsOptions,
  type SessionInfo,
  type SessionRegistry,
  type SessionRegistryOptions,
  type SessionRevoker,
  type SessionsLogoutSummary,
  type StoredSession,
} from './sessions';
export { guardSessionStore, TombstoneWriteError, type SessionStoreGuardOptions } from './session-guard';
export {
  createMemoryTombstones,
  createRedisTombstones,
  type SessionTombstones,
  type MemoryTombstonesOptions,
  type RedisTombstonesOptions,
  type RedisTombstoneClient,
} from './tombstones';
