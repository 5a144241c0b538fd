-- start_listed.lua: move a shard's scheduled items whose start time has come to its active
-- listing sets (item_index.lua is prepended). Nothing else happens at an auction's start, so
-- the closer's pass runs this per shard on every tick: an item lists as scheduled for at most
-- one closer interval past its start.
--
-- KEYS[1..9]  the shard's listing sets (see item_index.lua)
-- ARGV[1]     most items to move in this call
--
-- Reply: how many items moved. The scores move with them (end time, listing time), so no
-- item hash is read.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local due = redis.call('ZRANGE', LISTED_STARTS, '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(due) do
  local ending = redis.call('ZSCORE', LISTED.scheduled[1], id)
  local newest = redis.call('ZSCORE', LISTED.scheduled[2], id)
  if ending then redis.call('ZADD', LISTED.active[1], ending, id) end
  if newest then redis.call('ZADD', LISTED.active[2], newest, id) end
  redis.call('ZREM', LISTED.scheduled[1], id)
  redis.call('ZREM', LISTED.scheduled[2], id)
  redis.call('ZREM', LISTED_STARTS, id)
end
return #due
