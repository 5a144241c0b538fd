-- extend_item.lua: an admin moves a running auction's end time later.
--
-- KEYS[1]  item hash            {s<n>}:item:<id>
-- KEYS[2]  closing sorted set   {s<n>}:closing
-- KEYS[3]  outbox stream        {s<n>}:outbox
-- KEYS[4..12]  the shard's listing sets (see item_index.lua; always the last nine KEYS)
-- ARGV[1]  item id
-- ARGV[2]  event id for the auction_extended event
-- ARGV[3]  new end time, µs
--
-- Reply: {reply_fields} or {reply_fields, event_fields}, each a flat name, value, … list
-- (the shape every gateway script answers in, decoded by store/script_reply.rs):
--   outcome "extended", with event_fields: the auction_extended event exactly as appended to
--           the outbox (type, event_id, item_id, seq, ts_us, end_us, round, seller_id)
--   outcome "not_found" | "not_active" (closed, cancelled or past its end)
--   outcome "not_later", end_us        (the current end, which the new one must pass)

local function int(n) return string.format('%d', n) end

local item, closing, outbox = KEYS[1], KEYS[2], KEYS[3]
local item_id, event_id, new_end = ARGV[1], ARGV[2], tonumber(ARGV[3])

local f = redis.call('HMGET', item, 'status', 'end_us', 'seq', 'round', 'seller_id')
if not f[1] then return {{'outcome', 'not_found'}} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local end_us = tonumber(f[2])
if f[1] ~= 'active' or now >= end_us then return {{'outcome', 'not_active'}} end
if new_end <= end_us then return {{'outcome', 'not_later', 'end_us', int(end_us)}} end

local seq = tonumber(f[3]) + 1
local round = f[4] or '1'
redis.call('HSET', item, 'end_us', int(new_end), 'seq', int(seq))
redis.call('ZADD', closing, new_end, item_id)
-- Listing index (item_index.lua, prepended): the item's listing sets follow this change.
index_item(item, item_id, now)
local event = {'type', 'auction_extended', 'event_id', event_id, 'item_id', item_id,
  'seq', int(seq), 'ts_us', int(now), 'end_us', int(new_end), 'round', round,
  'seller_id', f[5] or ''}
redis.call('XADD', outbox, '*', unpack(event))
return {{'outcome', 'extended'}, event}
