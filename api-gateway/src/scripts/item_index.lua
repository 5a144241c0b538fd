-- item_index.lua: the listing index, prepended to every script that changes what a listing
-- shows of an item (its status, end time or listing time): create_item, place_bid (an end
-- moved by anti-sniping or the price ceiling), close_item, extend_item, relist_item, and
-- reindex_item (the backfill, the optimistic strategy) and start_listed (the closer moving
-- started items). The index thus changes in the same atomic call as the item.
--
-- The listing sets live per outbox shard inside the item's hash tag ({s<n>}:list:...), so a
-- script touches them on the item's node in Redis Cluster. The caller passes the item's
-- shard's nine listing sets as the LAST nine KEYS, in shared::redis_keys::Keyspace::
-- listing_keys order; being last, they stay put when a script gains other keys:
--   per status (active, scheduled, closed, cancelled): the ending set (scored by end time,
--   µs) and the newest set (scored by listing time: created_us, or listed_us after a relist),
--   then the scheduled items scored by start time (what start_listed.lua reads).
-- An item is in exactly one status's two sets (scheduled also in the starts set): the
-- stored status, with an `active` item whose start is still ahead listed as scheduled.

local LISTING_FIRST = #KEYS - 9
local LISTED = {
  active = {KEYS[LISTING_FIRST + 1], KEYS[LISTING_FIRST + 2]},
  scheduled = {KEYS[LISTING_FIRST + 3], KEYS[LISTING_FIRST + 4]},
  closed = {KEYS[LISTING_FIRST + 5], KEYS[LISTING_FIRST + 6]},
  cancelled = {KEYS[LISTING_FIRST + 7], KEYS[LISTING_FIRST + 8]},
}
local LISTED_STARTS = KEYS[LISTING_FIRST + 9]

-- Puts item_id in the listing sets its hash says (at Redis time `now`, µs), out of every
-- other; an item without a hash leaves them all.
local function index_item(item, item_id, now)
  local f = redis.call('HMGET', item, 'status', 'start_us', 'end_us', 'listed_us', 'created_us')
  local status, start_us = f[1], tonumber(f[2]) or 0
  if status == 'active' and start_us > now then status = 'scheduled' end
  for name, sets in pairs(LISTED) do
    if name ~= status then redis.call('ZREM', sets[1], item_id); redis.call('ZREM', sets[2], item_id) end
  end
  local sets = LISTED[status or '']
  if sets then
    local listed = tonumber(f[4]) or tonumber(f[5]) or start_us
    redis.call('ZADD', sets[1], tonumber(f[3]) or 0, item_id)
    redis.call('ZADD', sets[2], listed, item_id)
  end
  if status == 'scheduled' then
    redis.call('ZADD', LISTED_STARTS, start_us, item_id)
  else
    redis.call('ZREM', LISTED_STARTS, item_id)
  end
end
