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
-- ARGV[9]  the bidder's maximum in cents (proxy bidding), or "" for a plain bid; never below
--          ARGV[2] (the gateway checks)
-- ARGV[10] event id of a second event (the automatic bid a standing maximum answers with)
--
-- Reply: {reply_fields} or {reply_fields, event_fields}, each a flat name, value, … list
-- (the shape every gateway script answers in, decoded by store/script_reply.rs):
--   reply_fields  outcome: accepted | outbid_by_proxy | max_raised | max_not_raised
--                          | bid_too_low | not_found | not_started | closed
--                          | cancelled | idempotency_conflict | seller_cannot_bid
--                 and, except for not_found, idempotency_conflict and seller_cannot_bid, the
--                 item after this call: current_cents, seq, highest_bidder ("" if none),
--                 end_us, minimum_cents (the minimum next bid), round, seller_id ("" if none)
--                 replayed "1" when this is the stored answer of an earlier identical request
--   event_fields  one list per bid_placed event this call appended to the outbox, in seq
--                 order, exactly as appended (type, event_id, item_id, seq, ts_us, user_id,
--                 amount_cents, previous_cents, end_us, extended "1"/"0", round, seller_id,
--                 automatic "1"/"0", answered "1"/"0"; see shared/src/event_fields.rs): one
--                 for accepted, two for outbid_by_proxy (this bid, marked answered, then the
--                 leader's automatic answer), none or one (an automatic lift to the reserve)
--                 for max_raised, none otherwise
--
-- The rules (proxy bidding as eBay describes it; the increment `inc(p)` is the one in force at
-- price p, from the item's `increments` table or its flat `min_increment_cents`):
--   * a bid's `amount` must be at least the minimum next bid (the starting price, then
--     price + inc(price)); its reach is its maximum, or the amount without one;
--   * the leader's reach is its stored maximum (`leader_max_cents`, never shown) or the price;
--   * a challenger whose reach beats the leader's leads at max(amount, min(reach, leader's
--     reach + inc(leader's reach))): only as much as needed. A reach not above the leader's
--     (a tie goes to the earlier bidder) is recorded as its own bid (amount), then answered by
--     the leader's automatic bid at min(leader's reach, reach + inc(reach)): outbid_by_proxy;
--   * a maximum at or above the reserve lifts the price to the reserve (never past the max);
--   * the leader raising its own maximum changes no price (max_raised, no event) unless that
--     lifts the price to the reserve; a maximum not above its current one is max_not_raised;
--     a leader's plain bid raises the price as before;
--   * every event bumps seq and bid_count; after every bid_placed event its user_id leads;
--   * anti-sniping moves the end for any call that appends a bid (manual or automatic), once.
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
local max_text, second_event_id = ARGV[9] or '', ARGV[10] or ''
local amount = tonumber(amount_text)
local has_max = max_text ~= ''
local reach = amount
if has_max then reach = math.max(tonumber(max_text), amount) end

if use_idem then
  local stored = redis.call('GET', idem)
  if stored then
    local record = cjson.decode(stored)
    if record.user ~= user or record.amount ~= amount_text or (record.max or '') ~= max_text then
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
  'highest_bidder', 'round', 'seller_id', 'increments', 'leader_max_cents', 'reserve_cents')
if not f[1] then
  return {{'outcome', 'not_found'}}
end
local seller = f[13] or ''
if seller ~= '' and seller == user then
  return {{'outcome', 'seller_cannot_bid'}}
end

local status = f[1]
local start_us, end_us = tonumber(f[2]), tonumber(f[3])
local starting, flat_increment = tonumber(f[4]), tonumber(f[5])
local current, bid_count, seq = tonumber(f[6]), tonumber(f[7]), tonumber(f[8])
local ext_window, ext = tonumber(f[9]) or 0, tonumber(f[10]) or 0
local highest, round = f[11] or '', f[12] or '1'
local table_text = f[14] or ''
local leader_max = tonumber(f[15]) or 0
local reserve = tonumber(f[16]) or 0

-- The increment in force at `price`: the last row of the table whose `from` is at or below
-- it (rows ascend; the first is from 0), or the flat increment without a table.
local function inc(price)
  if table_text == '' then return flat_increment end
  local step = flat_increment
  for from, row_step in string.gmatch(table_text, '(%d+):(%d+)') do
    if tonumber(from) <= price then step = tonumber(row_step) else break end
  end
  return step
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local minimum = starting
if bid_count > 0 then minimum = current + inc(current) end

local function remember(reply, ttl)
  if use_idem then
    redis.call('SET', idem, cjson.encode({user = user, amount = amount_text, max = max_text,
      reply = reply}), 'EX', ttl)
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

-- A maximum at or above the reserve lifts a price below it to the reserve.
local function lifted(price, max)
  if reserve > price and max >= reserve then return reserve end
  return price
end

-- Decide the bids this call places: {user, amount, automatic} in order, and the leader's
-- maximum afterwards.
local bids = {}
local outcome = 'accepted'
local new_max = leader_max
if bid_count > 0 and highest == user and has_max then
  -- The leader raises its own maximum: no price changes, unless it reaches the reserve.
  if reach <= math.max(leader_max, current) then
    return answer('max_not_raised')
  end
  outcome = 'max_raised'
  new_max = reach
  local price = lifted(current, reach)
  if price > current then bids[1] = {user, price, '1'} end
elseif bid_count == 0 then
  bids[1] = {user, lifted(amount, reach), '0'}
  new_max = reach
elseif highest == user then
  -- The leader's plain bid raises the price as it always did; a higher maximum it set stays.
  bids[1] = {user, amount, '0'}
  new_max = math.max(leader_max, amount)
else
  local leader_reach = math.max(leader_max, current)
  if reach > leader_reach then
    local price = math.max(amount, math.min(reach, leader_reach + inc(leader_reach)))
    bids[1] = {user, lifted(price, reach), '0'}
    new_max = reach
  else
    -- The standing maximum holds (a tie goes to the earlier bidder): this bid is recorded,
    -- then answered by the leader's automatic bid.
    outcome = 'outbid_by_proxy'
    local price = math.min(leader_reach, reach + inc(reach))
    bids[1] = {user, amount, '0'}
    bids[2] = {highest, lifted(price, leader_reach), '1'}
  end
end

local events = {}
if #bids > 0 then
  local extended = '0'
  if ext_window > 0 and end_us - now <= ext_window and now + ext > end_us then
    end_us = now + ext
    extended = '1'
    redis.call('ZADD', closing, end_us, item_id)
  end
  local last = bids[#bids][2]
  -- The price ceiling: no valid amount could beat the last bid, so it wins now (the closer
  -- closes the auction at this end time) rather than leave a minimum next bid nobody may send.
  if last + inc(last) > ceiling then
    end_us = now
    extended = '0'
    redis.call('ZADD', closing, end_us, item_id)
  end
  local ids = {event_id, second_event_id}
  for i, b in ipairs(bids) do
    seq = seq + 1
    local previous = current
    current = b[2]
    highest = b[1]
    -- Answered: the next bid of this call is a standing maximum's automatic answer, so the
    -- leader this bid displaced takes the lead straight back (public: that event follows).
    local answered = '0'
    if bids[i + 1] and bids[i + 1][3] == '1' then answered = '1' end
    local event = {'type', 'bid_placed', 'event_id', ids[i], 'item_id', item_id,
      'seq', int(seq), 'ts_us', int(now), 'user_id', highest, 'amount_cents', int(current),
      'previous_cents', int(previous), 'end_us', int(end_us),
      'extended', (i == 1) and extended or '0', 'round', round, 'seller_id', seller,
      'automatic', b[3], 'answered', answered}
    redis.call('XADD', outbox, '*', unpack(event))
    events[i] = event
  end
  bid_count = bid_count + #bids
  redis.call('HSET', item, 'current_cents', int(current), 'highest_bidder', highest,
    'bid_count', int(bid_count), 'seq', int(seq), 'end_us', int(end_us))
  -- Listing index (item_index.lua, prepended): the item's listing sets follow this change.
  -- Only a moved end changes what a listing shows of it (the ending order's score).
  if end_us ~= tonumber(f[3]) then index_item(item, item_id, now) end
end
-- Only a maximum above the price needs keeping; the leader's, whoever that is now.
if new_max > current then
  redis.call('HSET', item, 'leader_max_cents', int(new_max))
else
  redis.call('HDEL', item, 'leader_max_cents')
end
minimum = current + inc(current)

local reply = {reply_fields(outcome)}
for _, event in ipairs(events) do reply[#reply + 1] = event end
return remember(reply, idem_ttl)
