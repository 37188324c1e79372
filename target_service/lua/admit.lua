-- Check every limit of one request and, only if all fit, consume them: one atomic step.
--
-- ARGV[1] member (unique per request), ARGV[2] window in ms, ARGV[3] concurrency lease in ms,
-- then five values per check: kind, limit, cost, index of its first key in KEYS, ms to UTC midnight
-- (daily checks only). Kinds:
--   R  requests in a sliding window: sorted set, member -> arrival time
--   T  tokens in a sliding window: sorted set "member|tokens" -> arrival time, plus a running sum key
--   D  tokens per UTC day: a counter that expires after two days
--   C  requests in flight: sorted set, member -> lease expiry time
-- Returns {1} followed by (used after, reset ms) per check when admitted, or
-- {0, index of the first check that did not fit, retry after in ms} when rejected.

if redis.replicate_commands then
  redis.replicate_commands()
end

local member = ARGV[1]
local window = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local count = (#ARGV - 3) / 5

local function field(check, position)
  return ARGV[3 + (check - 1) * 5 + position]
end

local function weight(entry)
  return tonumber(string.match(entry, '|(%d+)$'))
end

local function evict_tokens(key, sum_key)
  local expired = redis.call('ZRANGEBYSCORE', key, '-inf', now - window)
  if #expired > 0 then
    local freed = 0
    for _, entry in ipairs(expired) do
      freed = freed + weight(entry)
    end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    redis.call('DECRBY', sum_key, freed)
  end
  return tonumber(redis.call('GET', sum_key) or '0')
end

local function used_now(kind, key, sum_key)
  if kind == 'R' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    return redis.call('ZCARD', key)
  elseif kind == 'T' then
    return evict_tokens(key, sum_key)
  elseif kind == 'D' then
    return tonumber(redis.call('GET', key) or '0')
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return redis.call('ZCARD', key)
end

-- Time until enough of the window has expired for `excess` more units to fit.
local function retry_after(kind, key, excess, check)
  if kind == 'R' then
    local entry = redis.call('ZRANGE', key, excess - 1, excess - 1, 'WITHSCORES')
    return tonumber(entry[2]) + window - now
  elseif kind == 'T' then
    local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    local freed = 0
    for position = 1, #entries, 2 do
      freed = freed + weight(entries[position])
      if freed >= excess then
        return tonumber(entries[position + 1]) + window - now
      end
    end
    return window
  elseif kind == 'D' then
    return tonumber(field(check, 5))
  end
  -- A slot frees when some request in flight ends, which no clock can tell; suggest a second.
  return 1000
end

local function oldest_expiry(kind, key)
  if kind ~= 'R' and kind ~= 'T' then
    return 0
  end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #oldest == 0 then
    return 0
  end
  return tonumber(oldest[2]) + window - now
end

local used = {}
for check = 1, count do
  local kind, limit, cost = field(check, 1), tonumber(field(check, 2)), tonumber(field(check, 3))
  local key_index = tonumber(field(check, 4))
  local key, sum_key = KEYS[key_index], KEYS[key_index + 1]
  used[check] = used_now(kind, key, sum_key)
  if used[check] + cost > limit then
    local wait = retry_after(kind, key, used[check] + cost - limit, check)
    return {0, check, math.max(wait, 1)}
  end
end

local result = {1}
for check = 1, count do
  local kind, cost = field(check, 1), tonumber(field(check, 3))
  local key_index = tonumber(field(check, 4))
  local key, sum_key = KEYS[key_index], KEYS[key_index + 1]
  if kind == 'R' then
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, window)
  elseif kind == 'T' then
    redis.call('ZADD', key, now, member .. '|' .. cost)
    redis.call('INCRBY', sum_key, cost)
    redis.call('PEXPIRE', key, window)
    redis.call('PEXPIRE', sum_key, window)
  elseif kind == 'D' then
    redis.call('INCRBY', key, cost)
    redis.call('EXPIRE', key, 172800)
  else
    redis.call('ZADD', key, now + lease, member)
    redis.call('PEXPIRE', key, lease)
  end
  table.insert(result, used[check] + cost)
  table.insert(result, oldest_expiry(kind, key))
end
return result
