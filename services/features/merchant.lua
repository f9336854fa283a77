-- One transaction at one merchant: read the merchant's hourly counts and known fraud
-- labels, compute the merchant features, then count the transaction. Every key shares the
-- {merchant:<id>} hash tag. store.py prepends the constants: AGGREGATIONS and WINDOWS (the
-- merchant entries of definitions.FEATURES, in order), AGE_CAP, RETENTION and the TTLs.
--
-- Merchants are busy, so they are kept as hourly prefix sums, not one entry per
-- transaction: at most ~720 members whatever the volume, and a window count is two
-- O(log n) look-ups. A late transaction bumps the few hours after its own.
--
-- KEYS[1] hours  ZSET score = UTC hour, member = hour|transactions in all hours up to and
--                including this one|newest ts in this hour
-- KEYS[2] fraud  ZSET score = labelled_at, member = tx_id (label.lua writes and prunes it)
-- KEYS[3] vector STRING age|values, merchant features in AGGREGATIONS order, comma-separated
-- ARGV    ts, and 'late' when the transaction is behind the lateness bound (see card.lua)
-- Returns the vector.

-- The stored vector doubles as the apply-once marker (see card.lua).
local stored = redis.call('GET', KEYS[3])
if stored then return stored end
if ARGV[2] == 'late' then return false end

local function fmt(x) return string.format('%.17g', x) end
local ts = tonumber(ARGV[1])
local hour = math.floor(ts / 3600)
local function parse(member)
  local h, total, newest = string.match(member, '^(%d+)|(%d+)|(.+)$')
  return tonumber(h), tonumber(total), newest
end
local function member(h, total, newest) return string.format('%d|%d|%s', h, total, newest) end

-- Transactions in all hours before h, and the newest ts among them (nil when none).
local function before(h)
  local r = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. h, '-inf', 'LIMIT', 0, 1)
  if #r == 0 then return 0, nil end
  local _, total, newest = parse(r[1])
  return total, tonumber(newest)
end
local total_before, newest = before(hour)

-- [hour - w, hour): whole hours only, so the transaction's own hour never counts
local counts = {}
local function count(w)
  if not counts[w] then counts[w] = total_before - before(hour - w / 3600) end
  return counts[w]
end

-- One branch per aggregation in definitions.MERCHANT_AGGREGATIONS (reference.py mirrors them).
local function feature(aggregation, w)
  local n = count(w)
  if aggregation == 'count' then return n end
  if aggregation == 'fraud_rate' then
    if n == 0 then return 0 end
    return redis.call('ZCOUNT', KEYS[2], '(' .. fmt(ts - w), ARGV[1]) / n
  end
  error('no merchant aggregation ' .. aggregation)
end

local out = {}
for i = 1, #AGGREGATIONS do out[i] = fmt(feature(AGGREGATIONS[i], WINDOWS[i])) end
local age = AGE_CAP
if newest then age = math.min(ts - newest, AGE_CAP) end
local vector = fmt(age) .. '|' .. table.concat(out, ',')

-- Count the transaction in its own hour and, when it is late, in every later hour's
-- running total too.
local own = false
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], hour, '+inf')) do
  local h, total, last = parse(m)
  if h == hour then
    own = true
    if tonumber(last) < ts then last = ARGV[1] end
  end
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZADD', KEYS[1], h, member(h, total + 1, last))
end

-- Housekeeping once per merchant and hour, when the hour first appears: drop the hours
-- no window of a transaction within the lateness bound can reach, but keep the newest of
-- them (its running total is the base later differences start from); refresh the TTL.
if not own then
  redis.call('ZADD', KEYS[1], hour, member(hour, total_before + 1, ARGV[1]))
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 1)
  local keep_from = math.floor((ts - RETENTION) / 3600)
  if #oldest == 2 and parse(oldest[2]) < keep_from then
    local base = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. keep_from, '-inf', 'LIMIT', 0, 1)[1]
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. parse(base))
  end
  redis.call('EXPIRE', KEYS[1], HISTORY_TTL)
end
redis.call('SET', KEYS[3], vector, 'EX', VECTOR_TTL)
return vector
