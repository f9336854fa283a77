-- One transaction on one card, at a cost that does not grow with the card's history:
-- compute the card features from the state before ts, then record the transaction. Every
-- key shares the {card:<id>} hash tag. store.py prepends the constants: AGGREGATIONS and
-- WINDOWS (the card entries of definitions.FEATURES, in order), RUNNING (the windows kept
-- as running sums), DISTINCT_WINDOW, MAX_LATENESS, AGE_CAP, RETENTION, VERSION and TTLs.
--
-- K.history   ZSET   score = ts, member = definitions.history_member(tx):
--                    amount|country|channel|len(merchant_id)|merchant_id|tx_id
-- K.first     HASH   merchant_id -> earliest ts the card used it
-- K.last      ZSET   score = newest ts the card used the merchant, member = merchant_id
-- K.windows   STRING cmsgpack {newest ts, per RUNNING window {edge, n, sum partials,
--                    square partials, oldest ts counted}}: the window holds the history
--                    in (edge, newest]
-- K.vector    STRING version|ts|age|values|merchant_id
-- Returns the vector, or 'late|<newest ts>' for a transaction too far behind the card's
-- newest one that was never applied before.

-- The merchant id is cut by its length, so ids may hold any character.
local function parse(member)
  local amount, country, channel, len, at = string.match(member, '^([^|]*)|([^|]*)|([^|]*)|(%d+)|()')
  return tonumber(amount), country, channel, string.sub(member, at, at + len - 1)
end
local function amount_of(member) return tonumber(string.match(member, '^[^|]*')) end

-- History members with ts in the given ZRANGEBYSCORE bounds.
local function between(k, low, high) return redis.call('ZRANGEBYSCORE', k, low, high) end

local function count_in(w, amount, sign)
  w[2] = w[2] + sign
  if w[2] == 0 then w[3], w[4] = {}, {} return end
  w[3] = exact_add(w[3], sign * amount)
  w[4] = exact_add_product(w[4], sign * amount, amount)
end

-- The running windows, rebuilt from the history when lost (first use, expiry): one
-- O(history) read, then constant cost again.
local function load_windows(K, ts)
  local packed = redis.call('GET', K.windows)
  if packed then return cmsgpack.unpack(packed) end
  local newest = redis.call('ZREVRANGE', K.history, 0, 0, 'WITHSCORES')[2]
  local state = {tonumber(newest) or -AGE_CAP}
  for i, width in ipairs(RUNNING) do state[i + 1] = {ts - width, 0, {}, {}, 0} end
  local raw = redis.call('ZRANGEBYSCORE', K.history, '(' .. fmt(ts - RUNNING_LONGEST), '+inf', 'WITHSCORES')
  for i = 1, #raw, 2 do
    local at, amount = tonumber(raw[i + 1]), amount_of(raw[i])
    for j = 2, #state do
      local w = state[j]
      if at > w[1] then
        if w[2] == 0 or at < w[5] then w[5] = at end
        count_in(w, amount, 1)
      end
    end
  end
  return state
end

-- Move a window's edge up to ts - width, subtracting what left it (usually nothing: the
-- oldest ts counted says whether anything did), and return n, rounded sum and square
-- partials over (ts - width, ts): corrected, for a transaction at or behind the newest,
-- by the few events between it and the edge or the newest.
local function window_at(K, w, width, ts, newest)
  local low = ts - width
  -- the oldest counted events, a page at a time: those at or before low leave, the
  -- first one after it is the new oldest (one read when one event leaves)
  local offset, from = 0, '(' .. fmt(w[1])
  while w[2] > 0 and w[5] <= low do
    local raw = redis.call('ZRANGEBYSCORE', K.history, from, '+inf', 'WITHSCORES', 'LIMIT', offset, 8)
    if #raw == 0 then error('card windows count events their history lacks: ' .. K.windows) end
    for i = 1, #raw, 2 do
      local at = tonumber(raw[i + 1])
      if at > low then w[5] = at; break end
      count_in(w, amount_of(raw[i]), -1)
    end
    offset = offset + 8
  end
  if low > w[1] then w[1] = low end
  if low >= w[1] and ts > newest then return w[2], w[3], w[4] end
  local view = {w[1], w[2], copy(w[3]), copy(w[4])}
  if ts <= newest then -- counted already but not strictly earlier than ts
    local from = ts > w[1] and fmt(ts) or '(' .. fmt(w[1])
    for _, m in ipairs(between(K.history, from, '+inf')) do count_in(view, amount_of(m), -1) end
  end
  if low < w[1] then -- left the running window already, still inside this one
    local to = w[1] < ts and fmt(w[1]) or '(' .. fmt(ts)
    for _, m in ipairs(between(K.history, '(' .. fmt(low), to)) do count_in(view, amount_of(m), 1) end
  end
  return view[2], view[3], view[4]
end

-- Merchants the card went to in (ts - width, ts): by last use when ts is past everything
-- recorded, else (a late or same-instant transaction) from the history itself.
local function distinct_merchants(K, ts, newest)
  local low = ts - DISTINCT_WINDOW
  if ts > newest then return redis.call('ZCOUNT', K.last, '(' .. fmt(low), '+inf') end
  local seen, distinct = {}, 0
  for _, m in ipairs(between(K.history, '(' .. fmt(low), '(' .. fmt(ts))) do
    local _, _, _, merchant = parse(m)
    if not seen[merchant] then seen[merchant] = true; distinct = distinct + 1 end
  end
  return distinct
end

local function apply_card(K, ts_text, member, tx_values)
  -- The stored vector doubles as the apply-once marker: a redelivered transaction gets
  -- exactly what it got the first time and changes nothing.
  local stored = redis.call('GET', K.vector)
  if stored then return stored end
  local ts = tonumber(ts_text)
  local state = load_windows(K, ts)
  local newest = state[1]
  -- Lateness follows the card: too far behind its own newest event to land in windows
  -- its later transactions already read. Other cards' clocks do not matter.
  if ts < newest - MAX_LATENESS then return 'late|' .. fmt(newest) end
  local amount, country, channel, merchant = parse(member)

  local views = {}
  for i, width in ipairs(RUNNING) do views[width] = {window_at(K, state[i + 1], width, ts, newest)} end
  local prev = redis.call('ZREVRANGEBYSCORE', K.history, '(' .. ts_text, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local prev_ts = tonumber(prev[2])
  local first_seen = tonumber(redis.call('HGET', K.first, merchant))

  -- One branch per aggregation in definitions.CARD_AGGREGATIONS (reference.py mirrors them).
  local function feature(aggregation, w)
    if aggregation == 'merchant_is_new' then
      if first_seen and first_seen < ts then return 0 end
      return 1
    elseif aggregation == 'distinct_merchants' then return distinct_merchants(K, ts, newest)
    elseif aggregation == 'seconds_since_prev' then
      if prev_ts and prev_ts > ts - w then return ts - prev_ts end
      return w
    elseif aggregation == 'country_changed' or aggregation == 'channel_changed' then
      if not prev_ts or prev_ts <= ts - w then return 0 end
      local _, c, ch = parse(prev[1])
      if (aggregation == 'country_changed' and c ~= country) or (aggregation == 'channel_changed' and ch ~= channel) then
        return 1
      end
      return 0
    end
    local n, sums, squares = unpack(views[w])
    local sum = exact_round(sums)
    if aggregation == 'count' then return n
    elseif aggregation == 'sum' then return sum
    elseif aggregation == 'mean' then
      if n == 0 then return 0 end
      return sum / n
    elseif aggregation == 'ratio' then
      if n == 0 then return 1 end
      return amount / math.max(sum / n, MIN_MEAN_AMOUNT)
    elseif aggregation == 'zscore' then
      if n < 2 then return 0 end
      local mean = sum / n
      local std = math.sqrt(exact_spread(n, sums, squares) / (n * (n - 1)))
      -- equal amounts leave no spread; rounding dust is not spread either
      if std <= 1e-9 * mean then return 0 end
      return (amount - mean) / std
    end
    error('no card aggregation ' .. aggregation)
  end

  local out = {}
  for i = 1, #AGGREGATIONS do out[i] = fmt(feature(AGGREGATIONS[i], WINDOWS[i])) end
  if tx_values ~= '' then out[#out + 1] = tx_values end
  local age = AGE_CAP
  if prev_ts then age = math.min(ts - prev_ts, AGE_CAP) end
  local vector = table.concat({VERSION, ts_text, fmt(age), table.concat(out, ','), merchant}, '|')

  for i = 2, #state do
    local w = state[i]
    if ts > w[1] then
      if w[2] == 0 or ts < w[5] then w[5] = ts end
      count_in(w, amount, 1)
    end
  end
  if ts > newest then state[1] = ts end
  redis.call('ZADD', K.history, ts_text, member)
  -- what no window of a transaction within the lateness bound can reach
  redis.call('ZREMRANGEBYSCORE', K.history, '-inf', '(' .. fmt(ts - RETENTION))
  redis.call('EXPIRE', K.history, HISTORY_TTL)
  redis.call('SET', K.windows, cmsgpack.pack(state), 'EX', HISTORY_TTL)
  if not first_seen or ts < first_seen then redis.call('HSET', K.first, merchant, ts_text) end
  redis.call('EXPIRE', K.first, MERCHANTS_TTL)
  redis.call('ZADD', K.last, 'GT', ts_text, merchant)
  redis.call('ZREMRANGEBYSCORE', K.last, '-inf', '(' .. fmt(ts - DISTINCT_WINDOW))
  redis.call('EXPIRE', K.last, HISTORY_TTL)
  redis.call('SET', K.vector, vector, 'EX', VECTOR_TTL)
  return vector
end
