-- close_item.lua: close one auction whose end time has passed, exactly once, and keep its
-- auction_closed event until the gateway confirms it announced it live.
--
-- Every gateway instance's closer may call this for the same item at the same moment; the
-- status check inside this atomic script makes exactly one of them close it. The end time is
-- re-read here because a late bid (anti-sniping) may have moved it since the item was listed
-- as due: then the item's closing score is corrected and nothing closes.
--
-- A close is announced at least once: the script keeps the event in the item hash
-- (`close_event`) and leaves the item in the closing set, due again `ARGV[5]` µs later. The
-- gateway that got the reply announces the event, then confirms (confirm_close.lua), which
-- removes both. If the reply never reached it (a call that timed out after Redis took it, a
-- gateway that stopped), the next closer pass after that grace finds the closed item due,
-- gets the kept event again (outcome "closed", replayed "1"), announces and confirms it.
--
-- KEYS[1]  item hash            {s<n>}:item:<id>
-- KEYS[2]  closing sorted set   {s<n>}:closing
-- KEYS[3]  outbox stream        {s<n>}:outbox
-- KEYS[4..12]  the shard's listing sets (see item_index.lua; always the last nine KEYS)
-- ARGV[1]  item id
-- ARGV[2]  event id for the auction_closed event (UUIDv7, chosen by the gateway)
-- ARGV[3]  mode: "due" (the closer: only past the end time), "now" (an admin closes it early:
--          the end time becomes now), "cancel" (an admin cancels it: no winner) or "buy" (buy
--          it now: ARGV[7] wins at the item's buy_now_cents, the end time becomes now; only
--          while the auction runs and before its first bid, decided here, atomically with
--          every bid script, so exactly one of a buy and racing bids wins)
-- ARGV[4]  cancellation reason (mode "cancel")
-- ARGV[5]  announcement grace in µs: how long the closing gateway has to confirm
-- ARGV[6]  the seller asking to cancel their own auction (mode "cancel"), or "" (an admin, or
--          any other mode): then the item's seller_id must be this account and no bid may have
--          been placed yet, checked here so a bid racing the cancellation cannot slip between
--          the check and the cancel.
-- ARGV[7]  the buyer (mode "buy")
--
-- Reply: {reply_fields} or {reply_fields, event_fields}, each a flat name, value, … list
-- (the shape every gateway script answers in, decoded by store/script_reply.rs):
--   outcome "closed", with event_fields: the auction_closed event exactly as appended to the
--           outbox (type, event_id, item_id, seq, ts_us, winner_id ("" if none),
--           final_price_cents ("" if none), reserve_met, round, cancelled ("1"/"0"), reason,
--           seller_id);
--           with replayed "1" when this call did not close it but found its announcement
--           unconfirmed past the grace (mode "due" only; it is not appended again)
--   outcome "not_due", end_us   (a late bid moved the end; the closing score is corrected)
--   outcome "gone"              (already closed, cancelled, or no such item)
--   outcome "ended"             (mode "cancel" after the end: the result stands)
--   outcome "not_seller"        (ARGV[6] given, and the item is not that account's)
--   outcome "has_bids"          (ARGV[6] given, or mode "buy", and the auction has a bid)
--   outcome "not_started"       (mode "buy" before the start)
--   outcome "no_buy_now"        (mode "buy" on an item without a buy-it-now price)
--   outcome "seller"            (mode "buy" by the item's seller)
-- A buy's close is a close like any other from here on: the same event (with buy_now "1"),
-- the same close_event / confirm_close announcement and closing-set handling.

local function int(n) return string.format('%d', n) end

local item, closing, outbox = KEYS[1], KEYS[2], KEYS[3]
local item_id, event_id, mode, reason = ARGV[1], ARGV[2], ARGV[3] or 'due', ARGV[4] or ''
local grace = tonumber(ARGV[5]) or 0
local requester = ARGV[6] or ''
local buyer = ARGV[7] or ''
local buying = mode == 'buy'

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local f = redis.call('HMGET', item, 'status', 'end_us', 'current_cents', 'highest_bidder',
  'bid_count', 'seq', 'reserve_cents', 'round', 'close_event', 'seller_id', 'start_us',
  'buy_now_cents')
local seller = f[10] or ''
-- Whose auction it is comes first: nobody else learns its state from the answer.
if f[1] and requester ~= '' and seller ~= requester then
  return {{'outcome', 'not_seller'}}
end
if not f[1] or f[1] ~= 'active' then
  local pending = f[9]
  if not pending then
    redis.call('ZREM', closing, item_id)
    return {{'outcome', 'gone'}}
  end
  -- Closed, announcement not confirmed. Past the grace, a closer pass announces it again;
  -- before it (or for an admin), the gateway that closed it is still expected to.
  local score = tonumber(redis.call('ZSCORE', closing, item_id))
  if mode == 'due' and score and score <= now then
    redis.call('ZADD', closing, now + grace, item_id)
    return {{'outcome', 'closed', 'replayed', '1'}, cjson.decode(pending)}
  end
  return {{'outcome', 'gone'}}
end

local end_us = tonumber(f[2])
if mode == 'due' and now < end_us then
  redis.call('ZADD', closing, end_us, item_id)
  return {{'outcome', 'not_due', 'end_us', int(end_us)}}
end
if (mode == 'cancel' or buying) and now >= end_us then
  return {{'outcome', 'ended'}}
end
local buy_now = tonumber(f[12]) or 0
if buying then
  if now < (tonumber(f[11]) or 0) then return {{'outcome', 'not_started'}} end
  if buyer == seller and seller ~= '' then return {{'outcome', 'seller'}} end
  if buy_now <= 0 then return {{'outcome', 'no_buy_now'}} end
  if tonumber(f[5]) > 0 then return {{'outcome', 'has_bids'}} end
end
if requester ~= '' and tonumber(f[5]) > 0 then
  return {{'outcome', 'has_bids'}}
end
-- An early end (admin) moves the end time to now: every view of the auction agrees it is over.
if now < end_us then
  end_us = now
end

local current, bid_count = tonumber(f[3]), tonumber(f[5])
local reserve = tonumber(f[7]) or 0
local cancelled = mode == 'cancel'
local reserve_met = not cancelled and (reserve == 0 or (bid_count > 0 and current >= reserve))
local winner, price = '', ''
if bid_count > 0 and reserve_met then
  winner = f[4]
  price = int(current)
end
if buying then
  -- The buyer wins at the buy-it-now price, at least the reserve (checked at creation).
  reserve_met, winner, price = true, buyer, int(buy_now)
  redis.call('HSET', item, 'current_cents', price, 'highest_bidder', buyer)
end
-- A maximum has nothing left to bid for; it is not kept past the round.
redis.call('HDEL', item, 'leader_max_cents')
local seq = tonumber(f[6]) + 1
local round = f[8] or '1'

local event = {'type', 'auction_closed', 'event_id', event_id, 'item_id', item_id,
  'seq', int(seq), 'ts_us', int(now), 'winner_id', winner, 'final_price_cents', price,
  'reserve_met', reserve_met and '1' or '0', 'round', round,
  'cancelled', cancelled and '1' or '0', 'reason', reason, 'seller_id', seller,
  'buy_now', buying and '1' or '0'}
redis.call('HSET', item, 'status', cancelled and 'cancelled' or 'closed', 'seq', int(seq),
  'winner_id', winner, 'closed_us', int(now), 'end_us', int(end_us), 'cancel_reason', reason,
  'close_event', cjson.encode(event))
-- Listing index (item_index.lua, prepended): the item's listing sets follow this change.
index_item(item, item_id, now)
redis.call('ZADD', closing, now + grace, item_id)
redis.call('XADD', outbox, '*', unpack(event))

return {{'outcome', 'closed'}, event}
