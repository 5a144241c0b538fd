-- count_attempt.lua: an exact attempt counter over a fixed window (the sign-in throttle of
-- rate_limit/auth_throttle.rs: failed sign-ins per account, attempts per address).
--
-- KEYS[1]  counter   auth:<kind>:<key>   integer string with the window's TTL
-- ARGV[1]  window    ms: how long a counter lives from its first attempt
-- ARGV[2]  add       attempts to add; 0 only reads
--
-- Reply: {count, ttl}: the attempts counted in the current window after this call, and the ms
-- until the window ends (0 without a counter).
--
-- Invariant: a counter never lives without a TTL, so nothing here outlives its window.

local window, add = ARGV[1], tonumber(ARGV[2])
local count
if add > 0 then
  count = redis.call('INCRBY', KEYS[1], add)
  if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], window) end
else
  count = tonumber(redis.call('GET', KEYS[1]) or '0')
end

local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then ttl = 0 end
return {count, ttl}
