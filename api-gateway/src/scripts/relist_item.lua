-- relist_item.lua: put a closed or cancelled item up again as a new round.
--
-- The round number rises, the price and bids start over, and `seq` keeps increasing so every
-- consumer (viewers, archive) orders the new round after the old one. Only a closed or
-- cancelled item can be relisted, so an item never has two active rounds. The new round has
-- the terms given here, the same fields item creation sets (`store::RoundTerms`: starting
-- price, increment table, reserve, buy it now, anti-sniping), and every proxy maximum of the
-- old round is forgotten (`leader_max_cents`): nobody's old maximum bids in a round they never
-- joined.
--
-- KEYS[1]  item hash            {s<n>}:item:<id>
-- KEYS[2]  closing sorted set   {s<n>}:closing
-- KEYS[3]  outbox stream        {s<n>}:outbox
-- KEYS[4..12]  the shard's listing sets (see item_index.lua; always the last nine KEYS)
-- ARGV[1]  item id
-- ARGV[2]  event id for the auction_relisted event
-- ARGV[3]  start µs ("" = now)   ARGV[4] end µs
-- ARGV[5..] field/value pairs of the round's terms (starting_cents, min_increment_cents,
--          increments, reserve_cents, buy_now_cents, ext_window_us, ext_us)
--
-- Reply: {reply_fields} or {reply_fields, event_fields}, each a flat name, value, … list
-- (the shape every gateway script answers in, decoded by store/script_reply.rs):
--   outcome "relisted", with event_fields: the auction_relisted event exactly as appended to
--           the outbox (type, event_id, item_id, seq, ts_us, round, starting_cents, start_us,
--           end_us, seller_id: the seller stays the item's)
--   outcome "not_found" | "active" (the current round still runs)
--   outcome "ended"                (the new end is not after now and the start)

local function int(n) return string.format('%d', n) end

local item, closing, outbox = KEYS[1], KEYS[2], KEYS[3]
local item_id, event_id = ARGV[1], ARGV[2]

local f = redis.call('HMGET', item, 'status', 'seq', 'round', 'seller_id')
if not f[1] then return {{'outcome', 'not_found'}} end
if f[1] ~= 'closed' and f[1] ~= 'cancelled' then return {{'outcome', 'active'}} end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local start_us = tonumber(ARGV[3]) or now
local end_us = tonumber(ARGV[4])
if end_us <= now or end_us <= start_us then return {{'outcome', 'ended'}} end

local seq = tonumber(f[2]) + 1
local round = (tonumber(f[3]) or 1) + 1
redis.call('HDEL', item, 'closed_us', 'close_event', 'leader_max_cents')
local fields = {'status', 'active', 'start_us', int(start_us), 'end_us', int(end_us),
  'current_cents', '0', 'highest_bidder', '', 'bid_count', '0', 'seq', int(seq),
  'round', int(round), 'winner_id', '', 'cancel_reason', '', 'listed_us', int(now)}
local starting = ''
for i = 5, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'starting_cents' then starting = ARGV[i + 1] end
end
redis.call('HSET', item, unpack(fields))
redis.call('ZADD', closing, end_us, item_id)
-- Listing index (item_index.lua, prepended): the item's listing sets follow this change.
-- A relisted item is newly listed: its newest score is the relist time.
index_item(item, item_id, now)
local event = {'type', 'auction_relisted', 'event_id', event_id, 'item_id', item_id,
  'seq', int(seq), 'ts_us', int(now), 'round', int(round), 'starting_cents', starting,
  'start_us', int(start_us), 'end_us', int(end_us), 'seller_id', f[4] or ''}
redis.call('XADD', outbox, '*', unpack(event))
return {{'outcome', 'relisted'}, event}
