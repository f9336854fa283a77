-- One label at the merchant of its transaction: from labelled_at on, the merchant's label
-- counts (and, for a fraud, its fraud counts) include it. Every key shares the
-- {merchant:<id>} hash tag. store.py prepends MERCHANT_RETENTION and MERCHANT_TTL.
--
-- KEYS[1] hours ZSET (see merchant.lua), KEYS[2] fraud ZSET, KEYS[3] labels ZSET: score the
--         earliest labelled_at of a fraud label (fraud) or of any label (labels), member tx_id
-- ARGV    labelled_at, tx_id, '1' for a fraud label or '0'
-- Returns 1 when recorded, 0 when it changes nothing.

local labelled_at = tonumber(ARGV[1])
-- Older than any window of a transaction within the partition skew can reach.
local last = redis.call('ZRANGE', KEYS[1], '-1', '-1')[1]
local horizon = last and tonumber(string.match(last, '^%d+|%d+|([^|]+)')) - MERCHANT_RETENTION
if horizon and labelled_at < horizon then return 0 end

local changed = 0
local function keep(k)
  -- LT: a transaction counts once, from its earliest label; a redelivery changes nothing
  if redis.call('ZADD', k, 'LT', 'CH', ARGV[1], ARGV[2]) == 0 then return end
  changed = 1
  if horizon then redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. string.format('%.17g', horizon)) end
  redis.call('EXPIRE', k, MERCHANT_TTL)
end
keep(KEYS[3])
if ARGV[3] == '1' then keep(KEYS[2]) end
return changed
