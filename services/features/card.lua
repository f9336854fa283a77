-- One transaction on one card: read the card's history strictly before ts, compute the
-- card features, then record the transaction. Every key shares the {card:<id>} hash tag.
-- store.py prepends the constants: AGGREGATIONS and WINDOWS (the card entries of
-- definitions.FEATURES, in order), LONGEST, AGE_CAP, RETENTION, VERSION and the TTLs, so
-- a call carries only what varies.
--
-- KEYS[1] history   ZSET score = ts, member = definitions.history_member(tx):
--                   amount|country|channel|len(merchant_id)|merchant_id|tx_id
-- KEYS[2] merchants HASH merchant_id -> earliest ts the card used it
-- KEYS[3] vector    STRING version|ts|age|values|merchant_id, where values are the card
--                   features (AGGREGATIONS order) then the transaction's own, comma-separated
-- ARGV    ts, history member, the transaction's own feature values (comma-separated),
--         and 'late' when the transaction is behind the lateness bound
-- Returns the vector, or nil for a late transaction never applied before.

-- The stored vector doubles as the apply-once marker: a redelivered transaction gets
-- exactly what it got the first time and changes nothing.
local stored = redis.call('GET', KEYS[3])
if stored then return stored end
-- Too late to land in windows later transactions already read: refused, unless it was
-- applied on time before (a redelivery, answered above).
if ARGV[4] == 'late' then return false end

-- 17 significant digits round-trip a double; Redis would truncate a returned number.
local function fmt(x) return string.format('%.17g', x) end
-- The merchant id is cut by its length, so ids may hold any character.
local function parse(member)
  local amount, country, channel, len, at = string.match(member, '^([^|]*)|([^|]*)|([^|]*)|(%d+)|()')
  return tonumber(amount), country, channel, string.sub(member, at, at + len - 1)
end

local ts = tonumber(ARGV[1])
local amount, country, channel, merchant = parse(ARGV[2])

-- History in (ts - LONGEST, ts), oldest first: every row needs its ts and amount, only
-- the recent ones their merchant, only the newest its country and channel.
local raw = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. fmt(ts - LONGEST), '(' .. ARGV[1], 'WITHSCORES')
local rows, times, amounts = #raw / 2, {}, {}
for i = 1, rows do
  times[i] = tonumber(raw[2 * i])
  amounts[i] = tonumber(string.match(raw[2 * i - 1], '^[^|]*'))
end

-- rows first..rows are the ones in (ts - w, ts); several features share a window
local windows = {}
local function window(w)
  local cached = windows[w]
  if not cached then
    local first, sum = rows + 1, 0
    while first > 1 and times[first - 1] > ts - w do first = first - 1 end
    for i = first, rows do sum = sum + amounts[i] end
    cached = {first, rows - first + 1, sum}
    windows[w] = cached
  end
  return cached[1], cached[2], cached[3]
end

local first_seen = tonumber(redis.call('HGET', KEYS[2], merchant))

-- One branch per aggregation in definitions.CARD_AGGREGATIONS (reference.py mirrors them).
local function feature(aggregation, w)
  local first, n, sum = window(w)
  if aggregation == 'count' then return n
  elseif aggregation == 'sum' then return sum
  elseif aggregation == 'mean' then
    if n == 0 then return 0 end
    return sum / n
  elseif aggregation == 'ratio' then
    if n == 0 then return 1 end
    return amount / (sum / n)
  elseif aggregation == 'zscore' then
    if n < 2 then return 0 end
    local mean, ss = sum / n, 0
    for i = first, rows do local d = amounts[i] - mean; ss = ss + d * d end
    local std = math.sqrt(ss / (n - 1))
    -- equal amounts leave rounding dust, not spread
    if std <= 1e-9 * mean then return 0 end
    return (amount - mean) / std
  elseif aggregation == 'distinct_merchants' then
    local seen, distinct = {}, 0
    for i = first, rows do
      local _, _, _, m = parse(raw[2 * i - 1])
      if not seen[m] then seen[m] = true; distinct = distinct + 1 end
    end
    return distinct
  elseif aggregation == 'merchant_is_new' then
    if first_seen and first_seen < ts then return 0 end
    return 1
  elseif aggregation == 'seconds_since_prev' then
    if n > 0 then return ts - times[rows] end
    return w
  elseif aggregation == 'country_changed' or aggregation == 'channel_changed' then
    if n == 0 then return 0 end
    local _, c, ch = parse(raw[2 * rows - 1])
    if (aggregation == 'country_changed' and c ~= country) or (aggregation == 'channel_changed' and ch ~= channel) then
      return 1
    end
    return 0
  end
  error('no card aggregation ' .. aggregation)
end

local out = {}
for i = 1, #AGGREGATIONS do out[i] = fmt(feature(AGGREGATIONS[i], WINDOWS[i])) end
if ARGV[3] ~= '' then out[#out + 1] = ARGV[3] end
local age = AGE_CAP
if rows > 0 then age = math.min(ts - times[rows], AGE_CAP) end
local vector = table.concat({VERSION, ARGV[1], fmt(age), table.concat(out, ','), merchant}, '|')

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
-- what no window of a transaction within the lateness bound can reach
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. fmt(ts - RETENTION))
redis.call('EXPIRE', KEYS[1], HISTORY_TTL)
if not first_seen or ts < first_seen then redis.call('HSET', KEYS[2], merchant, ARGV[1]) end
redis.call('EXPIRE', KEYS[2], MERCHANTS_TTL)
redis.call('SET', KEYS[3], vector, 'EX', VECTOR_TTL)
return vector
