-- place_bid.lua: validate and apply one bid atomically, and append its event to the outbox.
--
-- KEYS[1]  item hash            {s<n>}:item:<id>
-- KEYS[2]  outbox stream        {s<n>}:outbox
-- KEYS[3]  closing sorted set   {s<n>}:closing
-- KEYS[4]  idempotency key      {s<n>}:idem:<id>:<key>   (unused when ARGV[5] == "0")
-- KEYS[5..13]  the shard's listing sets (see item_index.lua; always the last nine KEYS)
-- ARGV[1]  user id
-- ARGV[2]  amount in cents (decimal integer text)
-- ARGV[3]  event id (UUIDv7, chosen by the gateway)
-- ARGV[4]  item id
-- ARGV[5]  "1" when an Idempotency-Key was given, else "0"
-- ARGV[6]  idempotency record TTL in seconds for an accepted bid
-- ARGV[7]  the price ceiling in cents (shared::Cents::MAX): a bid with no room above it for
--          another increment wins at once, the auction's end moving to now
-- ARGV[8]  idempotency record TTL in seconds for any other answer: a rejection changed
--          nothing, so it is kept only for a client's retry, not for a day
--
-- Reply: {reply_fields} or {reply_fields, event_fields}, each a flat name, value, … list
-- (the shape every gateway script answers in, decoded by store/script_reply.rs):
--   reply_fields  outcome: accepted | bid_too_low | not_found | not_started | closed
--                          | cancelled | idempotency_conflict | seller_cannot_bid
--                 and, except for not_found, idempotency_conflict and seller_cannot_bid, the
--                 item after this call: current_cents, seq, highest_bidder ("" if none),
--                 end_us, minimum_cents (the minimum next bid), round, seller_id ("" if none)
--                 replayed "1" when this is the stored answer of an earlier identical request
--   event_fields  when accepted: the bid_placed event exactly as appended to the outbox
--                 (type, event_id, item_id, seq, ts_us, user_id, amount_cents, previous_cents,
--                 end_us, extended "1"/"0", round, seller_id; see shared/src/event_fields.rs)
--
-- The seller of an item (its `seller_id`, the account that created it) may not bid on it:
-- refused here, atomically with every other rule, as seller_cannot_bid, which changes nothing
-- (not even the idempotency record).
--
-- Idempotency: the whole reply is stored (cjson, with user and amount) under KEYS[4] and
-- returned again, marked replayed, for the same key, user and amount; the optimistic strategy
-- (store/optimistic.rs) reads and writes the same record.
--
-- Numbers are handled as Lua doubles, exact up to 2^53: microsecond timestamps (~1.7e15) and
-- cents (at most 1e14) fit. They are written with %d because tostring() would use %.14g and
-- silently round them.

local function int(n) return string.format('%d', n) end

local item, outbox, closing, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local user, amount_text, event_id, item_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local use_idem, idem_ttl = ARGV[5] == '1', tonumber(ARGV[6])
local ceiling = tonumber(ARGV[7])
local rejection_ttl = tonumber(ARGV[8])
local amount = tonumber(amount_text)

if use_idem then
  local stored = redis.call('GET', idem)
  if stored then
    local record = cjson.decode(stored)
    if record.user ~= user or record.amount ~= amount_text then
      return {{'outcome', 'idempotency_conflict'}}
    end
    local reply = record.reply
    local fields = reply[1]
    fields[#fields + 1] = 'replayed'
    fields[#fields + 1] = '1'
    return reply
  end
end

local f = redis.call('HMGET', item, 'status', 'start_us', 'end_us', 'starting_cents',
  'min_increment_cents', 'current_cents', 'bid_count', 'seq', 'ext_window_us', 'ext_us',
  'highest_bidder', 'round', 'seller_id')
if not f[1] then
  return {{'outcome', 'not_found'}}
end
local seller = f[13] or ''
if seller ~= '' and seller == user then
  return {{'outcome', 'seller_cannot_bid'}}
end

local status = f[1]
local start_us, end_us = tonumber(f[2]), tonumber(f[3])
local starting, increment = tonumber(f[4]), tonumber(f[5])
local current, bid_count, seq = tonumber(f[6]), tonumber(f[7]), tonumber(f[8])
local ext_window, ext = tonumber(f[9]) or 0, tonumber(f[10]) or 0
local highest, round = f[11] or '', f[12] or '1'

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local minimum = starting
if bid_count > 0 then minimum = current + increment end

local function remember(reply, ttl)
  if use_idem then
    redis.call('SET', idem, cjson.encode({user = user, amount = amount_text, reply = reply}),
      'EX', ttl)
  end
  return reply
end

-- The item as this call leaves it.
local function reply_fields(outcome)
  return {'outcome', outcome, 'current_cents', int(current), 'seq', int(seq),
    'highest_bidder', highest, 'end_us', int(end_us), 'minimum_cents', int(minimum),
    'round', round, 'seller_id', seller}
end

local function answer(outcome)
  return remember({reply_fields(outcome)}, rejection_ttl)
end

if status == 'cancelled' then return answer('cancelled') end
if status ~= 'active' or now >= end_us then return answer('closed') end
if now < start_us then return answer('not_started') end
if amount < minimum then return answer('bid_too_low') end

-- Accepted.
local previous = current
local extended = '0'
if ext_window > 0 and end_us - now <= ext_window and now + ext > end_us then
  end_us = now + ext
  extended = '1'
  redis.call('ZADD', closing, end_us, item_id)
end
-- The price ceiling: no valid amount could beat this bid, so it wins now (the closer closes
-- the auction at this end time) rather than leave a minimum next bid nobody may send.
if amount + increment > ceiling then
  end_us = now
  extended = '0'
  redis.call('ZADD', closing, end_us, item_id)
end
seq = seq + 1
current = amount
highest = user
redis.call('HSET', item, 'current_cents', amount_text, 'highest_bidder', user,
  'bid_count', int(bid_count + 1), 'seq', int(seq), 'end_us', int(end_us))
-- Listing index (item_index.lua, prepended): the item's listing sets follow this change.
-- Only a moved end changes what a listing shows of it (the ending order's score).
if end_us ~= tonumber(f[3]) then index_item(item, item_id, now) end
minimum = current + increment

local event = {'type', 'bid_placed', 'event_id', event_id, 'item_id', item_id,
  'seq', int(seq), 'ts_us', int(now), 'user_id', user, 'amount_cents', amount_text,
  'previous_cents', int(previous), 'end_us', int(end_us), 'extended', extended,
  'round', round, 'seller_id', seller}
redis.call('XADD', outbox, '*', unpack(event))

return remember({reply_fields('accepted'), event}, idem_ttl)
