/**
 * The Lua scripts of the shared rate budget. Each touches one key (a hash: tokens, at, pausedUntil), so they run
 * on a Redis Cluster too, and each uses Redis's own clock (TIME) so that processes with skewed clocks agree.
 * ARGV[1] capacity, ARGV[2] refill per ms, ARGV[3] key TTL in ms; then the script's own arguments.
 */
// The Redis adapter runs them by SHA and loads them on NOSCRIPT.
const script = (source: string): string => source;

const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'pausedUntil')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
local pausedUntil = tonumber(state[3]) or 0
`;

/** ARGV[4] wanted, ARGV[5] floor. Returns { granted, retryInMs }. */
export const TOKEN_BUCKET_SCRIPT = script(`${PRELUDE}
local wanted = tonumber(ARGV[4])
local floor = tonumber(ARGV[5])
if now < pausedUntil then return { 0, pausedUntil - now } end
if now > at then tokens = math.min(capacity, tokens + (now - at) * refill) end
local granted = math.max(0, math.min(wanted, math.floor(tokens - floor)))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(math.max(now, at)))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if granted == wanted then return { granted, 0 } end
return { granted, math.max(1, math.ceil((floor + 1 - tokens) / refill)) }
`);

/** ARGV[4] pause in ms. Empties the bucket; refilling starts when the pause ends, so work resumes paced. */
export const PAUSE_SCRIPT = script(`${PRELUDE}
local untilMs = math.max(pausedUntil, now + tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'tokens', '0', 'at', tostring(untilMs), 'pausedUntil', tostring(untilMs))
redis.call('PEXPIRE', KEYS[1], tostring(tonumber(ARGV[3]) + untilMs - now))
return 1
`);
