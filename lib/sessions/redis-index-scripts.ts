/**
 * The Lua scripts of the Redis index. Each runs on the keys of one user and one session, which share the prefix's
 * hash tag, so they run on a Redis Cluster too; each is one atomic step (no read-modify-write from the client).
 *
 * Keys: KEYS[1] tombstone, KEYS[2] the user's index (sorted set: handle → expiry ms), KEYS[3] its entries (hash:
 * `<handle>` → session id, `<handle>:c` created, `<handle>:s` last seen, `<handle>:a` User-Agent), KEYS[4] the user's
 * "not before" mark (hash: at, except), KEYS[5] the session's owner (`<user key> <handle>`, for destroy()).
 * Times come from the instance (ARGV), in ms since the epoch.
 */
import { SEEN_EVERY_MS } from './session-index';

const script = (source: string): string => source;

/** A read's refusal: tombstone, entry times and the "not before" mark, shared by CHECK and PEEK. */
const REFUSAL = `
local function ended(markKey, handle, created)
  local mark = redis.call('HMGET', markKey, 'at', 'except')
  local at = tonumber(mark[1])
  if not at or mark[2] == handle then return false end
  return created == nil or created <= at
end
-- A read's refusal ('destroyed', 'ending', 'ended') or nil, then the entry's created and last seen times (or nil).
local function refusal(tomb, entries, markKey, handle)
  if redis.call('EXISTS', tomb) == 1 then return 'destroyed' end
  local info = redis.call('HMGET', entries, handle .. ':c', handle .. ':s')
  local created = tonumber(info[1])
  if ended(markKey, handle, created) then
    if created then return 'ending' end
    return 'ended'
  end
  return nil, created, tonumber(info[2])
end
`;

const PRELUDE = `${REFUSAL}
local function prune(index, entries, now)
  local gone = redis.call('ZRANGEBYSCORE', index, '-inf', now)
  for _, h in ipairs(gone) do redis.call('HDEL', entries, h, h .. ':c', h .. ':s', h .. ':a') end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', index, '-inf', now) end
  local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', index, last[2])
    redis.call('PEXPIREAT', entries, last[2])
  else
    redis.call('DEL', index, entries)
  end
end
local function write(handle, sid, created, now, expires, owner, ua)
  if sid ~= '' then redis.call('HSET', KEYS[3], handle, sid) end
  redis.call('HSET', KEYS[3], handle .. ':c', created, handle .. ':s', now)
  if ua ~= '' then redis.call('HSETNX', KEYS[3], handle .. ':a', ua) end
  local old = tonumber(redis.call('ZSCORE', KEYS[2], handle))
  if not old or expires > old then
    redis.call('ZADD', KEYS[2], expires, handle)
    redis.call('SET', KEYS[5], owner, 'PX', math.max(1, expires - now))
  end
  prune(KEYS[2], KEYS[3], now)
end
`;

/**
 * A read. ARGV: handle, sid ('' to ask first), now, expires, owner, userAgent. Returns the verdict, or 'unknown' for
 * a session the index does not know when no sid was given (the caller seals it and asks again). lastSeenAt is
 * written at most every SEEN_EVERY_MS, as PEEK assumes.
 */
export const CHECK = script(`${PRELUDE}
local handle = ARGV[1]
local now = tonumber(ARGV[3])
local refused, created, seen = refusal(KEYS[1], KEYS[3], KEYS[4], handle)
if refused then return refused end
if created == nil then
  if ARGV[2] == '' then return 'unknown' end
  write(handle, ARGV[2], now, now, tonumber(ARGV[4]), ARGV[5], ARGV[6])
elseif now - (seen or 0) >= ${SEEN_EVERY_MS} then
  write(handle, '', created, now, tonumber(ARGV[4]), ARGV[5], '')
end
return 'ok'
`);

/**
 * A read that writes nothing, sent together with the store's own read (keys and arguments need no session data).
 * KEYS[1] tombstone, KEYS[2] the user's entries, KEYS[3] the mark. ARGV: handle, now. Returns the verdict, or
 * 'unknown' when CHECK must run instead: the index does not know the session, or its lastSeenAt is due.
 */
export const PEEK = script(`${REFUSAL}
local refused, created, seen = refusal(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
if refused then return refused end
if created == nil or tonumber(ARGV[2]) - (seen or 0) >= ${SEEN_EVERY_MS} then return 'unknown' end
return 'ok'
`);

/** Before a write. ARGV: handle, sid, now, expires, createdAt, owner, userAgent. Returns the verdict. */
export const ADMIT = script(`${PRELUDE}
if redis.call('EXISTS', KEYS[1]) == 1 then return 'destroyed' end
local handle = ARGV[1]
local known = tonumber(redis.call('HGET', KEYS[3], handle .. ':c'))
local created = known or tonumber(ARGV[5])
if ended(KEYS[4], handle, created) then
  if known then return 'ending' end
  return 'ended'
end
write(handle, ARGV[2], created, tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[6], ARGV[7])
return 'ok'
`);

/** After a write. ARGV: handle. Returns the verdict. */
export const RECHECK = script(`${PRELUDE}
if redis.call('EXISTS', KEYS[1]) == 1 then return 'destroyed' end
if ended(KEYS[4], ARGV[1], tonumber(redis.call('HGET', KEYS[3], ARGV[1] .. ':c'))) then return 'ended' end
return 'ok'
`);

/**
 * A tombstone (destroy()), and the removal of the session's entry when the owner key names one. KEYS[1] tombstone,
 * KEYS[2] owner. ARGV: ttlMs. Returns the owner (`<user key> <handle>`) or false; the caller drops the entry.
 */
export const BURY = script(`
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
local owner = redis.call('GET', KEYS[2])
if owner then redis.call('DEL', KEYS[2]) end
return owner
`);

/**
 * Removes an entry (and, with ARGV[3] > 0, records the tombstone). ARGV: handle, now, tombstoneTtlMs. Returns 1 when
 * the entry was there (this call removed it), else 0.
 */
export const DROP = script(`${PRELUDE}
local handle = ARGV[1]
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], '1', 'PX', ARGV[3]) end
local removed = redis.call('ZREM', KEYS[2], handle)
redis.call('HDEL', KEYS[3], handle, handle .. ':c', handle .. ':s', handle .. ':a')
redis.call('DEL', KEYS[5])
prune(KEYS[2], KEYS[3], tonumber(ARGV[2]))
return removed
`);

/** The user's entries, pruned. KEYS[2] index, KEYS[3] entries. ARGV: now. Returns flat [handle, sid, c, s, a]*. */
const LIST_ENTRIES = `
local out = {}
for _, h in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if h ~= ARGV[2] then
    local e = redis.call('HMGET', KEYS[3], h, h .. ':c', h .. ':s', h .. ':a')
    if e[1] then
      table.insert(out, h); table.insert(out, e[1]); table.insert(out, e[2] or '0')
      table.insert(out, e[3] or '0'); table.insert(out, e[4] or '')
    end
  end
end
return out
`;

export const ENTRIES = script(`${PRELUDE}
prune(KEYS[2], KEYS[3], tonumber(ARGV[1]))
${LIST_ENTRIES}`);

/**
 * Sets the "not before" mark and returns the entries to end. KEYS[2] index, KEYS[3] entries, KEYS[4] mark.
 * ARGV: now, except ('' for none), ttlMs.
 */
export const MARK = script(`${PRELUDE}
redis.call('HSET', KEYS[4], 'at', ARGV[1], 'except', ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
prune(KEYS[2], KEYS[3], tonumber(ARGV[1]))
${LIST_ENTRIES}`);
