-- One transaction at one merchant: read the merchant's hourly counts and known labels,
-- compute the merchant features, then count the transaction. Every key shares the
-- {merchant:<id>} hash tag. store.py prepends the constants: MERCHANT_AGGREGATIONS and
-- MERCHANT_WINDOWS (the merchant entries of definitions.FEATURES, in order), AGE_CAP,
-- MERCHANT_RETENTION and the TTLs.
--
-- Merchants are busy, so they are kept as hourly prefix sums, not one entry per
-- transaction: at most ~900 members whatever the volume, and a window count is two
-- O(log n) look-ups. A late transaction bumps the few hours after its own.
--
-- M.hours  ZSET   score = UTC hour, member = hour|transactions in all hours up to and
--                 including this one|newest ts in this hour, and '|pruned' on the oldest
--                 member once older hours were dropped (its total then counts them)
-- M.fraud  ZSET   score = labelled_at of the earliest fraud label, member = tx_id
-- M.labels ZSET   score = labelled_at of the earliest label, member = tx_id (label.lua
--                 writes and prunes both)
-- M.vector STRING age|values, merchant features in MERCHANT_AGGREGATIONS order
-- Returns the vector.

local function parse_hour(member)
  local h, total, newest, pruned = string.match(member, '^(%d+)|(%d+)|([^|]+)(.*)$')
  return tonumber(h), tonumber(total), newest, pruned == '|pruned'
end
local function hour_member(h, total, newest) return string.format('%d|%d|%s', h, total, newest) end
-- Arguments go to Redis as text: a number would be formatted with %.17g on every call.
local function int(x) return string.format('%d', x) end

-- Transactions in all hours before h, and the newest ts among them (nil when none). Every
-- partition updates a merchant, so a transaction of a lagging partition may ask for hours
-- already dropped: it then gets the oldest total kept, which undercounts by what those
-- hours held, instead of zero, which would count the merchant's whole life.
local function before(M, h)
  local r = redis.call('ZREVRANGEBYSCORE', M.hours, '(' .. int(h), '-inf', 'LIMIT', '0', '1')
  if #r == 0 then
    local oldest = redis.call('ZRANGE', M.hours, '0', '0')[1]
    if oldest then
      local _, total, newest, pruned = parse_hour(oldest)
      if pruned then return total, tonumber(newest) end
    end
    return 0, nil
  end
  local _, total, newest = parse_hour(r[1])
  return total, tonumber(newest)
end

local function apply_merchant(M, ts_text)
  -- The stored vector doubles as the apply-once marker (see card.lua).
  local stored = redis.call('GET', M.vector)
  if stored then return stored end
  local ts = tonumber(ts_text)
  local hour = math.floor(ts / 3600)
  local total_before, newest = before(M, hour)

  -- [hour - w, hour): whole hours only, so the transaction's own hour never counts
  local counts = {}
  local function count(w)
    if not counts[w] then counts[w] = total_before - before(M, hour - w / 3600) end
    return counts[w]
  end

  -- labels known at ts: the rate's frauds labelled in (ts - w, ts]; the shares' frauds and
  -- labels in the whole hours [hour - w, hour). One ZCOUNT per key and window.
  local frauds, hourly_frauds, labels = {}, {}, {}
  local function known(cache, k, w)
    if not cache[w] then cache[w] = redis.call('ZCOUNT', k, '(' .. fmt(ts - w), ts_text) end
    return cache[w]
  end
  local function known_hours(cache, k, w)
    if not cache[w] then cache[w] = redis.call('ZCOUNT', k, int(hour * 3600 - w), '(' .. int(hour * 3600)) end
    return cache[w]
  end

  -- One branch per aggregation in definitions.MERCHANT_AGGREGATIONS (reference.py mirrors them).
  local function feature(aggregation, w)
    if aggregation == 'count' then return count(w) end
    if aggregation == 'fraud_rate' then
      local n = count(w)
      if n == 0 then return 0 end
      return known(frauds, M.fraud, w) / n
    end
    if aggregation == 'fraud_share' then
      local n = known_hours(labels, M.labels, w)
      if n == 0 then return 0 end
      return known_hours(hourly_frauds, M.fraud, w) / n
    end
    if aggregation == 'label_count' then return known_hours(labels, M.labels, w) end
    error('no merchant aggregation ' .. aggregation)
  end

  local out = {}
  for i = 1, #MERCHANT_AGGREGATIONS do out[i] = fmt(feature(MERCHANT_AGGREGATIONS[i], MERCHANT_WINDOWS[i])) end
  local age = AGE_CAP
  if newest then age = math.min(ts - newest, AGE_CAP) end
  local vector = fmt(age) .. '|' .. table.concat(out, ',')

  -- Count the transaction in its own hour and, when it is late, in every later hour's
  -- running total too.
  local own = false
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', M.hours, int(hour), '+inf')) do
    local h, total, last, pruned = parse_hour(m)
    if h == hour then
      own = true
      if tonumber(last) < ts then last = ts_text end
    elseif pruned then
      own = true -- older than every hour kept: the base's total counts it
    end
    redis.call('ZREM', M.hours, m)
    redis.call('ZADD', M.hours, int(h), hour_member(h, total + 1, last) .. (pruned and '|pruned' or ''))
  end

  -- Housekeeping once per merchant and hour, when the hour first appears: drop the hours
  -- no window of a transaction within the partition skew can reach, but keep the newest
  -- of them, marked, as the base later differences start from; refresh the TTL.
  if not own then
    redis.call('ZADD', M.hours, int(hour), hour_member(hour, total_before + 1, ts_text))
    local oldest = redis.call('ZRANGE', M.hours, '0', '1')
    local keep_from = math.floor((ts - MERCHANT_RETENTION) / 3600)
    if #oldest == 2 and parse_hour(oldest[2]) < keep_from then
      local base = redis.call('ZREVRANGEBYSCORE', M.hours, '(' .. int(keep_from), '-inf', 'LIMIT', '0', '1')[1]
      local h, total, last = parse_hour(base)
      redis.call('ZREMRANGEBYSCORE', M.hours, '-inf', int(h))
      redis.call('ZADD', M.hours, int(h), hour_member(h, total, last) .. '|pruned')
    end
    redis.call('EXPIRE', M.hours, MERCHANT_TTL)
  end
  redis.call('SET', M.vector, vector, 'EX', VECTOR_TTL)
  return vector
end
