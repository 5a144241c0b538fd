-- rate_debit.lua: charge one instance's batch of admissions to a shared GCRA bucket, and
-- answer how far ahead the bucket now runs (the rate limits of rate_limit/, synced in batches).
--
-- KEYS[1]  bucket      rl:<family>:<key>   hash: t = the theoretical arrival time (µs of Redis
--                      TIME), a = the arrival time when the bucket was last over its tolerance
-- ARGV[1]  debit       µs: the admissions this instance made since its last sync × the
--                      family's interval (1 s / rate); positive
-- ARGV[2]  tolerance   µs: (burst - 1) × the interval
--
-- Reply: {debt, crossed}
--   debt     µs the bucket's arrival time is ahead of Redis's now, after this debit. The
--            caller adds it to its own clock, so no two machines' clocks are ever compared.
--   crossed  1 when this debit takes the bucket over its tolerance for the first time since it
--            was last full: the start of an episode of refusals, which exactly one caller sees
--            and announces to the others. A bucket kept over its limit by a steady flood
--            extends `a` with every debit and is announced once, not once per sync.
--
-- Invariants: the arrival time never falls behind now (an idle bucket restarts at now, with
-- the full burst); `a` <= `t`; the key lives as long as its debt plus a second, so idle keys
-- vanish. Numbers are Lua doubles, exact up to 2^53 (µs timestamps are ~1.7e15); they are
-- written with %d because tostring() would use %.14g and round them.

local function int(n) return string.format('%d', n) end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local debit, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])

local state = redis.call('HMGET', KEYS[1], 't', 'a')
local tat = tonumber(state[1]) or now
if tat < now then tat = now end
local over_until = tonumber(state[2]) or 0

local after = tat - now + debit
local crossed = 0
if after > tolerance then
  if over_until < now then crossed = 1 end
  over_until = now + after
end
redis.call('HSET', KEYS[1], 't', int(now + after), 'a', int(over_until))
redis.call('PEXPIRE', KEYS[1], int(math.floor(after / 1000) + 1000))
return {after, crossed}
