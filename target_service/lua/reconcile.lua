-- Replace a request's token reservation with the tokens it really used, in the sliding windows
-- (sorted set "member|tokens" plus its sum key, in KEYS pairs) and in the daily counters (single KEYS).
-- ARGV[1] member, ARGV[2] reserved tokens, ARGV[3] used tokens, ARGV[4] number of window key pairs.

if redis.replicate_commands then
  redis.replicate_commands()
end

local member, reserved, actual = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local pairs_count = tonumber(ARGV[4])
local delta = actual - reserved

for pair = 1, pairs_count do
  local key, sum_key = KEYS[pair * 2 - 1], KEYS[pair * 2]
  local old_entry = member .. '|' .. reserved
  local arrived = redis.call('ZSCORE', key, old_entry)
  if arrived then
    -- The reservation is still in the window: move the difference, keeping the arrival time.
    redis.call('ZREM', key, old_entry)
    redis.call('ZADD', key, arrived, member .. '|' .. actual)
    redis.call('INCRBY', sum_key, delta)
  end
end
for position = pairs_count * 2 + 1, #KEYS do
  if redis.call('EXISTS', KEYS[position]) == 1 then
    redis.call('INCRBY', KEYS[position], delta)
  end
end
return 1
