-- reindex_item.lua: put one item in the listing sets its hash says (item_index.lua is
-- prepended). The backfill runs it for every id of the legacy items:index set, and the
-- optimistic strategy queues it in its MULTI when a bid moved the end time.
--
-- KEYS[1]      item hash            {s<n>}:item:<id>
-- KEYS[2..10]  the shard's listing sets (see item_index.lua)
-- ARGV[1]      item id
--
-- Reply: 1 when the item exists, 0 when it does not (it left every listing set).
-- Idempotent: running it again changes nothing.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
index_item(KEYS[1], ARGV[1], now)
return redis.call('EXISTS', KEYS[1])
