// express-polar-logout/testing: a Polar stand-in for your own tests. Never import it in production code.
export {
  startFakePolar,
  type FakeFault,
  type FakePolar,
  type FakePolarOptions,
  type FakeRevokeCall,
  type FakeTokenPair,
  type FakeTokenTypeHint,
  type FaultScope,
  type IssueTokensOptions,
} from './fake-polar';
export type { FakeRateLimitOptions } from './rate-limit';
