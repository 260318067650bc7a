export {
  COMMAND_TIMEOUT_MS,
  connectionFailure,
  createRedisAdapter,
  RedisUnavailableError,
  UNREACHABLE_WARNING,
  type CommandOptions,
  type RedisAdapter,
  type RedisAdapterOptions,
} from './adapter';
export { DEFAULT_PREFIX, hashTagOf, resolvePrefix } from './keys';
export { hasPeer, loadPeer, pick, requirePeers } from './peers';
export { clientReady, type RawClient } from './client';
