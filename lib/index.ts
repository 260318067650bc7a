// The public face: re-exports only.
export { polarLogout, type PolarLogoutHandler } from './middleware';
export { createPolarRevoker, type PolarRevoker, type RevokeCallOptions } from './revoker';
export { PolarLogoutError, type PolarLogoutErrorCode } from './errors';
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
