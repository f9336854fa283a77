-- Claim every tx_id of a batch. KEYS[i]: the id's key; ARGV[1]: TTL seconds;
-- ARGV[i + 1]: the claiming record's origin. Returns 1 where that origin owns the id
-- (first sight, or a redelivery of the very record that claimed it), else 0.
local ttl = ARGV[1]
local owned = {}
for i, k in ipairs(KEYS) do
  local origin = ARGV[i + 1]
  if redis.call('SET', k, origin, 'NX', 'EX', ttl) then
    owned[i] = 1
  elseif redis.call('GET', k) == origin then
    owned[i] = 1
  else
    owned[i] = 0
  end
end
return owned
