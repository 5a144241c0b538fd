-- The write floor's whole bid: a compare-and-set of one item's price, nothing else (no
-- window, no outbox, no idempotency, no event). It exists only to measure what the gateway's
-- bid path costs above the least any server must do: parse the request, one EVALSHA.
--
-- KEYS[1]  the item hash (fields `current`, `starting`, `increment`, `seq`, `bidder`)
-- ARGV[1]  the bid in cents (integer string)
-- ARGV[2]  the bidder's user id
--
-- Reply: {accepted (1|0), seq, current price in cents} ({-1, 0, 0} for an unknown item).
-- Invariant: `current` only rises, and `seq` counts the accepted bids, so the harness's
-- no-lost-update check holds for the floor as for the gateway.
local item = redis.call('HMGET', KEYS[1], 'current', 'starting', 'increment', 'seq')
if not item[2] then
  return {-1, 0, 0}
end
local current = tonumber(item[1]) or 0
local seq = tonumber(item[4]) or 0
local amount = tonumber(ARGV[1])
local least = tonumber(item[2])
if current > 0 then
  least = current + tonumber(item[3])
end
if amount < least then
  return {0, seq, current}
end
seq = seq + 1
redis.call('HSET', KEYS[1], 'current', ARGV[1], 'bidder', ARGV[2], 'seq', seq)
return {1, seq, amount}
