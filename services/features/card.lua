-- One transaction on one card, at a cost that does not grow with the card's history:
-- compute the card features from the state before ts, then record the transaction. Every
-- key shares the {card:<id>} hash tag. store.py prepends the constants: AGGREGATIONS and
-- WINDOWS (the card entries of definitions.FEATURES, in order), RUNNING (the windows kept
-- as running sums) and SQUARED (which of them keep sums of squares), DISTINCT_WINDOW, MAX_LATENESS, AGE_CAP, RETENTION, VERSION, the TTLs
-- and PRUNE_EVERY.
--
-- K.history   ZSET   score = ts, member = definitions.history_member(tx):
--                    amount|country|channel|len(merchant_id)|merchant_id|tx_id
-- K.first     HASH   merchant_id -> earliest ts the card used it
-- K.last      ZSET   score = newest ts the card used the merchant, member = merchant_id
-- K.windows   STRING cmsgpack state (below): the running windows, and what spares a
--                    command per transaction (the previous event, when the TTLs run out,
--                    how much there is to prune)
-- K.vector    STRING version|ts|age|values|merchant_id
-- Returns the vector, or 'late|<newest ts>' for a transaction too far behind the card's
-- newest one that was never applied before.
--
-- A card's state is read once per batch and written once at its end (batch.lua), with
-- the same expiry time as the history, so neither outlives the other.

-- state[1] newest ts; state[2 .. #RUNNING + 1] per RUNNING window {edge, n, sum partials,
-- square partials, oldest ts counted}: the window holds the history in (edge, newest]
local LONGEST = #RUNNING + 1
local S_PREV = #RUNNING + 2 -- the history's greatest member at the newest ts; '' none; false unknown
local S_EXPIRES = #RUNNING + 3 -- when history, last and state expire (ms, wall clock)
local S_FIRST_EXPIRES = #RUNNING + 4 -- when first expires (ms)
local S_STALE = #RUNNING + 5 -- history members outside the longest running window
local S_LAST_SIZE = #RUNNING + 6 -- members of last

-- The merchant id is cut by its length, so ids may hold any character.
local function parse(member)
  local amount, country, channel, len, at = string.match(member, '^([^|]*)|([^|]*)|([^|]*)|(%d+)|()')
  return tonumber(amount), country, channel, string.sub(member, at, at + len - 1)
end
local function amount_of(member) return tonumber(string.match(member, '^[^|]*')) end

-- History members with ts in the given ZRANGEBYSCORE bounds.
local function between(k, low, high) return redis.call('ZRANGEBYSCORE', k, low, high) end

-- Count an amount in (sign 1) or out (-1) of window i (an index of RUNNING); only the
-- windows a zscore reads keep the sum of squares. Lists are compacted when they grow.
local function count_in(w, i, amount, sign)
  w[2] = w[2] + sign
  if w[2] == 0 then w[3], w[4] = {}, {} return end
  w[3] = exact_add(w[3], sign * amount)
  if #w[3] > 3 then w[3] = compact(w[3]) end
  if SQUARED[i] then
    w[4] = exact_add_product(w[4], sign * amount, amount)
    if #w[4] > 4 then w[4] = compact(w[4]) end
  end
end

-- Wall-clock milliseconds, read once per call of the script (TTLs only: no feature reads it).
local now
local function now_ms()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end

-- The state, rebuilt from the history when lost (first use, expiry, an older layout): one
-- O(history) read, then constant cost again. A new card costs one read.
local function load_state(K, ts)
  local packed = redis.call('GET', K.windows)
  if packed then
    local state = cmsgpack.unpack(packed)
    if #state == S_LAST_SIZE then return state end
  end
  local top = redis.call('ZREVRANGE', K.history, '0', '0', 'WITHSCORES')
  local state = {tonumber(top[2]) or -AGE_CAP}
  for i, width in ipairs(RUNNING) do state[i + 1] = {ts - width, 0, {}, {}, 0} end
  state[S_PREV], state[S_EXPIRES], state[S_FIRST_EXPIRES], state[S_STALE], state[S_LAST_SIZE] = top[1] or '', 0, 0, 0, 0
  if not top[1] then return state end
  local raw = redis.call('ZRANGEBYSCORE', K.history, '(' .. fmt(ts - RUNNING_LONGEST), '+inf', 'WITHSCORES')
  for i = 1, #raw, 2 do
    local at, amount = tonumber(raw[i + 1]), amount_of(raw[i])
    for j = 2, LONGEST do
      local w = state[j]
      if at > w[1] then
        if w[2] == 0 or at < w[5] then w[5] = at end
        count_in(w, j - 1, amount, 1)
      end
    end
  end
  state[S_STALE] = redis.call('ZCARD', K.history) - state[LONGEST][2]
  state[S_LAST_SIZE] = redis.call('ZCARD', K.last)
  return state
end

-- Move window i's edge up to ts - width, subtracting what left it (usually nothing: the
-- oldest ts counted says whether anything did), and return n, rounded sum and square
-- partials over (ts - width, ts): corrected, for a transaction at or behind the newest,
-- by the few events between it and the edge or the newest.
local function window_at(K, state, i, width, ts, newest)
  local w, low = state[i], ts - width
  if w[2] > 0 and w[5] <= low and newest <= low then
    -- everything counted is at or before low: all of it leaves, nothing to read
    if i == LONGEST then state[S_STALE] = state[S_STALE] + w[2] end
    w[2], w[3], w[4] = 0, {}, {}
  end
  -- the oldest counted events, a page at a time: those at or before low leave, the
  -- first one after it is the new oldest (one read when one event leaves)
  local offset, from = 0, '(' .. fmt(w[1])
  while w[2] > 0 and w[5] <= low do
    local raw = redis.call('ZRANGEBYSCORE', K.history, from, '+inf', 'WITHSCORES', 'LIMIT', string.format('%d', offset), '8')
    if #raw == 0 then error('card windows count events their history lacks: ' .. K.windows) end
    for j = 1, #raw, 2 do
      local at = tonumber(raw[j + 1])
      if at > low then w[5] = at; break end
      count_in(w, i - 1, amount_of(raw[j]), -1)
      if i == LONGEST then state[S_STALE] = state[S_STALE] + 1 end
    end
    offset = offset + 8
  end
  if low > w[1] then w[1] = low end
  if low >= w[1] and ts > newest then return w[2], w[3], w[4] end
  local view = {w[1], w[2], copy(w[3]), copy(w[4])}
  if ts <= newest then -- counted already but not strictly earlier than ts
    local from = ts > w[1] and fmt(ts) or '(' .. fmt(w[1])
    for _, m in ipairs(between(K.history, from, '+inf')) do count_in(view, i - 1, amount_of(m), -1) end
  end
  if low < w[1] then -- left the running window already, still inside this one
    local to = w[1] < ts and fmt(w[1]) or '(' .. fmt(ts)
    for _, m in ipairs(between(K.history, '(' .. fmt(low), to)) do count_in(view, i - 1, amount_of(m), 1) end
  end
  return view[2], view[3], view[4]
end

-- Merchants the card went to in (ts - width, ts): by last use when ts is past everything
-- recorded (and, then, how many of last's members are older), else (a late or
-- same-instant transaction) from the history itself.
local function distinct_merchants(K, state, ts, newest)
  local low = ts - DISTINCT_WINDOW
  if ts > newest then
    local n = redis.call('ZCOUNT', K.last, '(' .. fmt(low), '+inf')
    return n, state[S_LAST_SIZE] - n
  end
  local seen, distinct = {}, 0
  for _, m in ipairs(between(K.history, '(' .. fmt(low), '(' .. fmt(ts))) do
    local _, _, _, merchant = parse(m)
    if not seen[merchant] then seen[merchant] = true; distinct = distinct + 1 end
  end
  return distinct, 0
end

-- Refresh a TTL only when less than its full length is left: at most once per TTL_SLACK
-- of wall clock, and never shorter than the TTL after the card's last transaction.
local function refresh_ttls(K, state)
  local t = now_ms()
  if state[S_EXPIRES] - t < HISTORY_TTL_MS then
    state[S_EXPIRES] = t + HISTORY_TTL_MS + TTL_SLACK_MS
    local at = string.format('%d', state[S_EXPIRES])
    redis.call('PEXPIREAT', K.history, at)
    redis.call('PEXPIREAT', K.last, at)
  end
  if state[S_FIRST_EXPIRES] - t < MERCHANTS_TTL_MS then
    state[S_FIRST_EXPIRES] = t + MERCHANTS_TTL_MS + TTL_SLACK_MS
    redis.call('PEXPIREAT', K.first, string.format('%d', state[S_FIRST_EXPIRES]))
  end
end

local function save_state(K, state)
  redis.call('SET', K.windows, cmsgpack.pack(state), 'PXAT', string.format('%d', state[S_EXPIRES]))
end

-- get_state(K, ts) gives the card's state (batch.lua keeps it for the batch); the caller
-- saves it once the transaction was recorded.
local function apply_card(K, ts_text, member, tx_values, get_state)
  -- The stored vector doubles as the apply-once marker: a redelivered transaction gets
  -- exactly what it got the first time and changes nothing.
  local stored = redis.call('GET', K.vector)
  if stored then return stored, false end
  local ts = tonumber(ts_text)
  local state = get_state(K, ts)
  local newest = state[1]
  -- Lateness follows the card: too far behind its own newest event to land in windows
  -- its later transactions already read. Other cards' clocks do not matter.
  if ts < newest - MAX_LATENESS then return 'late|' .. fmt(newest), false end
  local amount, country, channel, merchant = parse(member)

  local views = {}
  for i, width in ipairs(RUNNING) do views[width] = {window_at(K, state, i + 1, width, ts, newest)} end
  local prev, prev_ts = state[S_PREV], newest
  if ts <= newest or prev == false then
    local found = redis.call('ZREVRANGEBYSCORE', K.history, '(' .. ts_text, '-inf', 'WITHSCORES', 'LIMIT', '0', '1')
    prev, prev_ts = found[1], tonumber(found[2])
  elseif prev == '' then
    prev, prev_ts = nil, nil
  end
  local first_seen = tonumber(redis.call('HGET', K.first, merchant))
  local distinct, last_stale = distinct_merchants(K, state, ts, newest)

  -- One branch per aggregation in definitions.CARD_AGGREGATIONS (reference.py mirrors them).
  local function feature(aggregation, w)
    if aggregation == 'merchant_is_new' then
      if first_seen and first_seen < ts then return 0 end
      return 1
    elseif aggregation == 'distinct_merchants' then return distinct
    elseif aggregation == 'seconds_since_prev' then
      if prev_ts and prev_ts > ts - w then return ts - prev_ts end
      return w
    elseif aggregation == 'country_changed' or aggregation == 'channel_changed' then
      if not prev_ts or prev_ts <= ts - w then return 0 end
      local _, c, ch = parse(prev)
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

  for i = 2, LONGEST do
    local w = state[i]
    if ts > w[1] then
      if w[2] == 0 or ts < w[5] then w[5] = ts end
      count_in(w, i - 1, amount, 1)
    elseif i == LONGEST then
      state[S_STALE] = state[S_STALE] + 1
    end
  end
  -- among equal times the ZSET orders by member, which Lua's string order need not match
  if ts > newest then state[1], state[S_PREV] = ts, member elseif ts == newest then state[S_PREV] = false end
  redis.call('ZADD', K.history, ts_text, member)
  -- what no window of a transaction within the lateness bound can reach, a few at a time
  if state[S_STALE] >= PRUNE_EVERY then
    state[S_STALE] = state[S_STALE] - redis.call('ZREMRANGEBYSCORE', K.history, '-inf', '(' .. fmt(state[1] - RETENTION))
  end
  if not first_seen or ts < first_seen then redis.call('HSET', K.first, merchant, ts_text) end
  state[S_LAST_SIZE] = state[S_LAST_SIZE] + redis.call('ZADD', K.last, 'GT', ts_text, merchant)
  if last_stale >= PRUNE_EVERY then
    state[S_LAST_SIZE] = state[S_LAST_SIZE] - redis.call('ZREMRANGEBYSCORE', K.last, '-inf', fmt(ts - DISTINCT_WINDOW))
  end
  refresh_ttls(K, state)
  redis.call('SET', K.vector, vector, 'EX', VECTOR_TTL)
  return vector, true
end
