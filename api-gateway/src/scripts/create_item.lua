-- create_item.lua: create an item's auction unless the id exists, and schedule its close.
--
-- KEYS[1]  item hash            {s<n>}:item:<id>
-- KEYS[2]  closing sorted set   {s<n>}:closing
-- KEYS[3..11]  the shard's listing sets (see item_index.lua; always the last nine KEYS)
-- ARGV[1]  item id
-- ARGV[2]  start time µs, or "" for now (Redis TIME)
-- ARGV[3]  end time µs
-- ARGV[4..] field/value pairs of the remaining item fields
--
-- Reply: {reply_fields}, a flat name, value, … list (the shape every gateway script answers
-- in, decoded by store/script_reply.rs; this one writes no event):
--   outcome "created", start_us, end_us, created_us
--   outcome "exists" | "ended"   (the end is not after now and the start)
-- The end time is checked against Redis TIME, the clock every bid is judged by.

local function int(n) return string.format('%d', n) end

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {{'outcome', 'exists'}}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local start_us = tonumber(ARGV[2]) or now
local end_us = tonumber(ARGV[3])
if end_us <= now or end_us <= start_us then
  return {{'outcome', 'ended'}}
end

local fields = {'status', 'active', 'start_us', int(start_us), 'end_us', int(end_us),
  'created_us', int(now), 'current_cents', '0', 'highest_bidder', '', 'bid_count', '0',
  'listed_us', int(now), 'seq', '0', 'round', '1', 'winner_id', ''}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], end_us, ARGV[1])
-- Listing index (item_index.lua, prepended): the item's listing sets follow this change.
index_item(KEYS[1], ARGV[1], now)
return {{'outcome', 'created', 'start_us', int(start_us), 'end_us', int(end_us),
  'created_us', int(now)}}
