// The public face: re-exports only.
export { polarLogout, type PolarLogoutHandler } from './middleware';
export { createPolarRevoker, type PolarRevoker, type RevokeCallOptions } from './revoker';
export { PolarLogoutError, type PolarLogoutErrorCode } from './errors';
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
  ClientAuthMethod,
  LogoutEvent,
  PolarClientOptions,
  PolarLogoutOptions,
  PolarRevokerOptions,
  PolarServer,
  RevocationError,
  RevocationErrorCode,
  RevocationQueue,
  RevocationResult,
  TokenOutcome,
  TokenPair,
  TokenTypeHint,
} from './types';
export {
  guardSessionStore,
  createMemoryTombstones,
  createRedisTombstones,
  type SessionStoreGuardOptions,
  type SessionTombstones,
  type MemoryTombstonesOptions,
  type RedisTombstonesOptions,
  type RedisTombstoneClient,
} from './session-guard';
