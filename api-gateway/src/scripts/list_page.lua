-- list_page.lua: one shard's next stretch of one listing set after a cursor (reads only).
--
-- KEYS[1]  a listing set        {s<n>}:list:<status>:<order>
-- ARGV[1]  "asc" (the ending order: lowest score first) or "desc" (newest: highest first)
-- ARGV[2]  the cursor's score ("" = from the start)
-- ARGV[3]  the cursor's item id
-- ARGV[4]  how many entries at most
-- ARGV[5]  a floor ("" = none; "asc" only): skip scores at or below it, so the active
--          listing passes over auctions past their end that the closer has not closed yet
--
-- Reply: a flat id, score, id, score, ... list in the page's order.
--
-- Members with one score are ordered by their bytes (Redis's own order), so (score, id) is a
-- total order and a cursor names a position in it, even after its item left the set or moved.
-- The position is found by rank: the members below the score (ZCOUNT), then a binary search
-- among the members with exactly that score (ZRANGE by rank is O(log n)). A call costs
-- O(log^2 n + count) however many items share a score (20,000 auctions ending together).
-- Ids are compared byte by byte: Lua's `<` on strings follows the server's locale.

local key, dir, score, id = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local count, floor = tonumber(ARGV[4]), ARGV[5]
if count < 1 then return {} end

local function bytes_less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The first rank in [lo, hi) (all members with the cursor's score) whose member `past` says
-- comes after the cursor.
local function first_past(lo, hi, past)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if past(redis.call('ZRANGE', key, mid, mid)[1]) then hi = mid else lo = mid + 1 end
  end
  return lo
end

-- The rank of the first member after the cursor in ascending order (`strict`: members equal
-- to the cursor's id count as before it), or the member count without a cursor.
local function rank_after(strict)
  if score == '' then
    if dir == 'asc' then return 0 end
    return redis.call('ZCARD', key)
  end
  local lo = redis.call('ZCOUNT', key, '-inf', '(' .. score)
  local same = redis.call('ZCOUNT', key, score, score)
  return first_past(lo, lo + same, function(member)
    if strict then return bytes_less(id, member) end
    return not bytes_less(member, id)
  end)
end

local range
if dir == 'asc' then
  local first = rank_after(true)
  if floor ~= '' then
    first = math.max(first, redis.call('ZCOUNT', key, '-inf', floor))
  end
  range = redis.call('ZRANGE', key, first, first + count - 1, 'WITHSCORES')
else
  -- Descending: the members before the cursor's position, read backwards.
  local last = rank_after(false) - 1
  if last < 0 then return {} end
  local ascending = redis.call('ZRANGE', key, math.max(0, last - count + 1), last, 'WITHSCORES')
  range = {}
  for i = #ascending - 1, 1, -2 do
    range[#range + 1] = ascending[i]
    range[#range + 1] = ascending[i + 1]
  end
end
return range
