-- confirm_close.lua: the gateway announced an auction_closed event live; stop keeping it.
--
-- close_item.lua keeps every close's event in the item hash and the item in the closing set
-- until this confirmation, so a close whose reply was lost is announced by a later pass. The
-- confirmation names the close by its seq: a late one for an old round (the item was relisted
-- meanwhile, seq moved on) must not remove the new round from the closing set.
--
-- KEYS[1]  item hash            {s<n>}:item:<id>
-- KEYS[2]  closing sorted set   {s<n>}:closing
-- ARGV[1]  item id
-- ARGV[2]  seq of the announced auction_closed event
--
-- Reply: 1 when this confirmed the close, 0 when there was nothing (left) to confirm.

local item, closing = KEYS[1], KEYS[2]
local item_id, seq = ARGV[1], ARGV[2]

local f = redis.call('HMGET', item, 'status', 'seq', 'close_event')
if f[1] and f[1] ~= 'active' and f[2] == seq and f[3] then
  redis.call('HDEL', item, 'close_event')
  redis.call('ZREM', closing, item_id)
  return 1
end
return 0
