-- One fraud label at the merchant of its transaction: from labelled_at on, the merchant's
-- fraud-rate windows count it. Both keys share the {merchant:<id>} hash tag.
-- store.py prepends MERCHANT_RETENTION and MERCHANT_TTL.
--
-- KEYS[1] hours ZSET (see merchant.lua), KEYS[2] fraud ZSET score = labelled_at, member = tx_id
-- ARGV    labelled_at, tx_id
-- Returns 1 when recorded, 0 when it changes nothing.

local labelled_at = tonumber(ARGV[1])
-- Known already, at this time or earlier: a redelivery changes nothing.
local known = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[2]))
if known and known <= labelled_at then return 0 end
-- Older than any window of a transaction within the partition skew can reach.
local last = redis.call('ZRANGE', KEYS[1], -1, -1)[1]
local horizon = last and tonumber(string.match(last, '^%d+|%d+|([^|]+)')) - MERCHANT_RETENTION
if horizon and labelled_at < horizon then return 0 end

redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
if horizon then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.17g', horizon)) end
redis.call('EXPIRE', KEYS[2], MERCHANT_TTL)
return 1
