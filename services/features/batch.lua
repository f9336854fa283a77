-- A run of feature operations in one call, in order. store.py sends a batch as calls of at
-- most CALL_TX transactions (a long script blocks every other client), all in one pipeline,
-- and under Redis Cluster each hash slot's operations alone.
--
-- ARGV is a list of operations, KEYS their keys in the same order:
--   'card', ts, history member, the transaction's own feature values (comma-separated)
--       KEYS: history, first use per merchant, last use per merchant, windows, vector
--   'merchant', ts, the 1-based position of this transaction's card operation in this
--       call (0 when the card was applied by another call): skipped when that was late
--       KEYS: hours, fraud, labels, vector
-- Returns one reply per operation: a vector, 'late|<card newest ts>', or nil (skipped).
--
-- A card's state is read at its first operation and written once, after the last.

local cards = {} -- windows key -> {K, state, applied}
local function get_state(K, ts)
  local kept = cards[K.windows]
  if not kept then
    kept = {K, load_state(K, ts), false}
    cards[K.windows] = kept
  end
  return kept[2]
end

local replies = {}
local function run()
  local k, a = 1, 1
  while a <= #ARGV do
    local op = ARGV[a]
    if op == 'card' then
      local K = {history = KEYS[k], first = KEYS[k + 1], last = KEYS[k + 2], windows = KEYS[k + 3], vector = KEYS[k + 4]}
      local reply, applied = apply_card(K, ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], get_state)
      if applied then cards[K.windows][3] = true end
      replies[#replies + 1] = reply
      k, a = k + 5, a + 4
    elseif op == 'merchant' then
      local M = {hours = KEYS[k], fraud = KEYS[k + 1], labels = KEYS[k + 2], vector = KEYS[k + 3]}
      local card = tonumber(ARGV[a + 2])
      if card > 0 and string.sub(replies[card], 1, 5) == 'late|' then
        replies[#replies + 1] = false
      else
        replies[#replies + 1] = apply_merchant(M, ARGV[a + 1])
      end
      k, a = k + 4, a + 3
    else
      error('no feature operation ' .. tostring(op))
    end
  end
end

local ok, err = pcall(run)
if not ok then
  -- Scripts do not roll back: what was written stays, and a state held back could now
  -- lag its history. Drop the batch's states; each is rebuilt, exactly, from its history.
  for key in pairs(cards) do redis.call('DEL', key) end
  error(err)
end
for _, kept in pairs(cards) do
  if kept[3] then save_state(kept[1], kept[2]) end
end
return replies
