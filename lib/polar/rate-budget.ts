/**
 * One budget for every call to Polar. Polar counts revocations per caller address (500 a minute in production,
 * 100 in sandbox, see the README), so every process behind one egress address must draw from one budget: with
 * a Redis, the bucket lives there and all processes share it; without, it is per process.
 *
 * The budget is a token bucket sized so that no window of `perMs` ever holds more than `requests` calls: its
 * burst capacity is a twentieth of `requests` and it refills at `requests - capacity` per `perMs`. Live logouts
 * may empty it; the outbox's drain stops at a floor (`reserve`) and so only uses what live logouts leave, yet
 * still runs at the full refill rate when nobody is logging out. A 429 from Polar empties the bucket and pauses
 * everybody until Polar's `Retry-After` (or a backoff), with jitter, so that work resumes paced, not as a herd.
 */
import createDebug from 'debug';
import { TOKEN_BUCKET_SCRIPT, PAUSE_SCRIPT } from './rate-budget-scripts';
import { warnOnce } from '../warnings';
import { settleWithin } from '../util/settle';

const debug = createDebug('express-polar-logout:rate-budget');

/** Who is asking: a logout in progress (may empty the bucket) or the outbox's drain (stops at the reserve). */
export type CallPriority = 'live' | 'drain';

/** What a take() got. `granted < wanted` means: the rest would exceed the budget; `retryInMs` says when to ask again. */
export interface BudgetGrant {
  granted: number;
  retryInMs: number;
}

/** The numbers a budget runs on, derived once from `{ requests, perMs, reserve }`. */
export interface BucketShape {
  requests: number;
  perMs: number;
  /** Burst size: calls that may go out back to back. */
  capacity: number;
  /** Tokens added per ms: `(requests - capacity) / perMs`, so that no window of perMs exceeds `requests`. */
  refillPerMs: number;
  /** Tokens the drain leaves for live logouts. */
  reserve: number;
}

/** Where the bucket's state lives: this process, or a Redis shared by every process. */
export interface BucketStore {
  take(wanted: number, floor: number): Promise<BudgetGrant>;
  /** Empties the bucket and pauses every taker for `ms` (already jittered by the caller). */
  pause(ms: number): Promise<void>;
}

/** Runs a Lua script on the keys (one slot): the Redis adapter's `eval` (EVALSHA, then EVAL on NOSCRIPT). */
export type RedisEval = (script: string, keys: string[], args: string[]) => Promise<unknown>;

export interface RateBudget {
  readonly shape: BucketShape;
  /**
   * Takes up to `wanted` calls from the budget. Never rejects and never waits longer than `boundMs` for the
   * shared store: a store that does not answer in time is replaced by this process's own bucket (reported once).
   */
  take(wanted: number, priority: CallPriority, boundMs?: number): Promise<BudgetGrant>;
  /** Polar answered 429: pause every caller for `retryAfterMs`, or for a growing backoff when Polar gave none. */
  pause(retryAfterMs: number | undefined): void;
}

/** 80 % of Polar's per-address limit for the `^/v1` zone (Polar's `server/polar/rate_limit.py`, group default). */
export const POLAR_DEFAULT_RATE_LIMITS = {
  production: { requests: 400, perMs: 60_000 },
  sandbox: { requests: 80, perMs: 60_000 },
} as const;

/** Backoff for a 429 without Retry-After: doubles from 1 s to 60 s. */
const PAUSE_BASE_MS = 1000;
const PAUSE_CAP_MS = 60_000;
/** How much later, at most, one call may reach Polar than another granted after it, without passing the limit. */
const ARRIVAL_SKEW_MS = 50;
/** A shared store that has not answered in this long is bypassed for this call (never hangs a logout). */
const DEFAULT_STORE_BOUND_MS = 250;

export function bucketShape(requests: number, perMs: number, reserve?: number): BucketShape {
  const capacity = Math.max(1, Math.ceil(requests / 20));
  // Refilled over a window stretched by ARRIVAL_SKEW_MS: calls granted here reach Polar a little later and not
  // all equally late, and Polar counts arrivals. Negligible for Polar's 60 s window, decisive for short ones.
  const refillPerMs = (requests - capacity) / (perMs + ARRIVAL_SKEW_MS);
  return {
    requests,
    perMs,
    capacity,
    refillPerMs: refillPerMs > 0 ? refillPerMs : requests / (perMs + ARRIVAL_SKEW_MS),
    reserve: reserve ?? Math.floor(capacity / 2),
  };
}

/** Adds up to 20 % (never less: Retry-After is a minimum) so that paused processes do not resume as one herd. */
export function withJitter(ms: number): number {
  return Math.round(ms * (1 + Math.random() * 0.2));
}

/** The bucket in this process's memory: the default without Redis, and the fallback when Redis does not answer. */
export interface MemoryBucket extends BucketStore {
  /** How long this process still pauses for a 429 it has met, in ms (0: none). */
  pausedFor(): number;
}

export function createMemoryBucket(shape: BucketShape, now: () => number = Date.now): MemoryBucket {
  let tokens = shape.capacity;
  let at = now();
  let pausedUntil = 0;
  return {
    take(wanted, floor) {
      const t = now();
      if (t < pausedUntil) return Promise.resolve({ granted: 0, retryInMs: pausedUntil - t });
      tokens = Math.min(shape.capacity, tokens + (t - at) * shape.refillPerMs);
      at = t;
      const granted = Math.max(0, Math.min(wanted, Math.floor(tokens - floor)));
      tokens -= granted;
      if (granted === wanted) return Promise.resolve({ granted, retryInMs: 0 });
      // When the next whole token above the floor will be there.
      const retryInMs = Math.max(1, Math.ceil((floor + 1 - tokens) / shape.refillPerMs));
      return Promise.resolve({ granted, retryInMs });
    },
    pause(ms) {
      const t = now();
      pausedUntil = Math.max(pausedUntil, t + ms);
      tokens = 0;
      at = pausedUntil;
      return Promise.resolve();
    },
    pausedFor: () => Math.max(0, pausedUntil - now()),
  };
}

/** The bucket in Redis, one hash per Polar server, changed only by Lua scripts (atomic; Redis's clock). */
export function createRedisBucket(evaluate: RedisEval, key: string, shape: BucketShape): BucketStore {
  const ttlMs = String(Math.ceil(shape.capacity / shape.refillPerMs) + PAUSE_CAP_MS * 2);
  const args = [String(shape.capacity), String(shape.refillPerMs), ttlMs];
  const run = (script: string, extra: string[]): Promise<unknown> => evaluate(script, [key], [...args, ...extra]);
  return {
    async take(wanted, floor) {
      const reply = (await run(TOKEN_BUCKET_SCRIPT, [String(wanted), String(floor)])) as [unknown, unknown];
      // Integer replies: numbers from node-redis and ioredis alike, but typed as unknown here on purpose.
      return { granted: Number(reply[0]), retryInMs: Number(reply[1]) };
    },
    async pause(ms) {
      await run(PAUSE_SCRIPT, [String(ms)]);
    },
  };
}

/** Resolves `promise`, or `undefined` after `ms`; the promise's rejection is swallowed either way. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  const outcome = await settleWithin(() => promise, ms);
  return outcome.kind === 'done' ? outcome.value : undefined;
}

/**
 * This process's bucket for one Polar host and shape: the logout handler, the standalone client and the outbox
 * of one process draw from the same one, since Polar counts the address, not the part of the app.
 */
const processBuckets = new Map<string, MemoryBucket>();

function processBucket(host: string, shape: BucketShape): MemoryBucket {
  const key = `${host} ${shape.requests}/${shape.perMs} ${shape.reserve}`;
  let bucket = processBuckets.get(key);
  if (!bucket) processBuckets.set(key, (bucket = createMemoryBucket(shape)));
  return bucket;
}

/**
 * The budget for calls to `host`: a shared store when one is given, with this process's own bucket as the
 * fallback when the store does not answer within the bound (a dead Redis must never hang a logout nor stop the
 * outbox; the fallback keeps each process within the limit on its own, which is the best it can know).
 */
export function createRateBudget(shape: BucketShape, host: string, shared?: BucketStore): RateBudget {
  const local = processBucket(host, shape);
  let strikes = 0;
  let lastPauseAt = 0;

  async function take(wanted: number, priority: CallPriority, boundMs = DEFAULT_STORE_BOUND_MS): Promise<BudgetGrant> {
    const floor = priority === 'drain' ? shape.reserve : 0;
    if (!shared) return local.take(wanted, floor);
    // A 429 this process has met pauses it at once, before the shared pause has reached Redis (its script may even
    // be sent again after a NOSCRIPT, behind takes already on the wire): CI saw ten calls slip through that way.
    const paused = local.pausedFor();
    if (paused > 0) return { granted: 0, retryInMs: paused };
    const grant = await within(shared.take(wanted, floor), Math.max(1, boundMs));
    if (grant) return grant;
    warnOnce(
      'EPL_RATE_BUDGET_UNAVAILABLE',
      'express-polar-logout: the shared rate budget in Redis did not answer; this process uses its own budget ' +
        "until Redis answers again. Several processes may then exceed Polar's rate limit together: check Redis.",
    );
    return local.take(wanted, floor);
  }

  function pause(retryAfterMs: number | undefined): void {
    const now = Date.now();
    // A 429 long after the last one starts the backoff again.
    if (now - lastPauseAt > PAUSE_CAP_MS * 2) strikes = 0;
    lastPauseAt = now;
    const base = retryAfterMs ?? Math.min(PAUSE_CAP_MS, PAUSE_BASE_MS * 2 ** strikes);
    strikes += 1;
    const ms = withJitter(base);
    debug('Polar answered 429: every call pauses for %d ms', ms);
    void local.pause(ms);
    if (shared) void within(shared.pause(ms), DEFAULT_STORE_BOUND_MS);
  }

  return { shape, take, pause };
}
