-- 17 significant digits round-trip a double; Redis would truncate a returned number.
-- Whole numbers (counts, flags, most timestamps) take the much cheaper integer format.
local function fmt(x)
  if x == math.floor(x) and x > -9007199254740992 and x < 9007199254740992 then return string.format('%d', x) end
  return string.format('%.17g', x)
end

-- Exact running sums for card windows: a window adds each amount once and subtracts it
-- once when it leaves, so its sum must not drift with rounding. A sum is kept as a list
-- of non-overlapping doubles whose exact total is the true sum (Shewchuk's partials, as
-- in Python's math.fsum), and read rounded once; reference.py rounds the same exact
-- values with math.fsum and fractions, so the two agree to the bit.

-- Add x to the partials p, in place (and returned): exact, smallest magnitude first.
local function exact_add(p, x)
  local n, kept = #p, 0
  for i = 1, n do
    local y = p[i]
    if math.abs(x) < math.abs(y) then x, y = y, x end
    local hi = x + y
    local lo = y - (hi - x)
    if lo ~= 0 then kept = kept + 1; p[kept] = lo end
    x = hi
  end
  if x ~= 0 then kept = kept + 1; p[kept] = x end
  for i = n, kept + 1, -1 do p[i] = nil end
  return p
end

-- The same exact value in the fewest nonoverlapping parts, smallest first (Shewchuk's
-- Compress): keeps the lists, and with them the state and exact_spread's products, short.
local function compact(p)
  local m = #p
  if m < 3 then return p end
  local g, bottom, q = {}, m, p[m]
  for i = m - 1, 1, -1 do
    local s = q + p[i]
    local lo = p[i] - (s - q)
    if lo ~= 0 then g[bottom] = s; bottom = bottom - 1; q = lo else q = s end
  end
  g[bottom] = q
  local h = {}
  for i = bottom + 1, m do
    local s = g[i] + q
    local lo = q - (s - g[i])
    q = s
    if lo ~= 0 then h[#h + 1] = lo end
  end
  if q ~= 0 then h[#h + 1] = q end
  return h
end

local function copy(p)
  local out = {}
  for i = 1, #p do out[i] = p[i] end
  return out
end

-- The exact total of the partials, correctly rounded (CPython's math_fsum, final step).
local function exact_round(p)
  local n = #p
  if n == 0 then return 0 end
  local hi, lo = p[n], 0
  n = n - 1
  while n > 0 do
    local x, y = hi, p[n]
    n = n - 1
    hi = x + y
    lo = y - (hi - x)
    if lo ~= 0 then break end
  end
  -- half-even rounding across several partials
  if n > 0 and ((lo < 0 and p[n] < 0) or (lo > 0 and p[n] > 0)) then
    local y = lo * 2
    local x = hi + y
    if y == x - hi then hi = x end
  end
  return hi
end

-- a * b as hi + lo exactly (Dekker: no fused multiply-add in Lua).
local SPLITTER = 134217729 -- 2^27 + 1
local function split(a)
  local c = SPLITTER * a
  local hi = c - (c - a)
  return hi, a - hi
end
local function two_product(a, b)
  local p = a * b
  local ah, al = split(a)
  local bh, bl = split(b)
  return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl
end

-- Add a * b to the partials exactly.
local function exact_add_product(p, a, b)
  local hi, lo = two_product(a, b)
  return exact_add(exact_add(p, lo), hi)
end

-- n * sum(a^2) - sum(a)^2 from the exact sums, rounded once: n(n-1) times the sample
-- variance, 0 exactly when all amounts are equal.
local function exact_spread(n, sums, squares)
  sums, squares = compact(sums), compact(squares)
  local p = {}
  for i = 1, #squares do p = exact_add_product(p, squares[i], n) end
  for i = 1, #sums do -- the square of the sum: each cross product once, doubled (exactly)
    local a = sums[i]
    p = exact_add_product(p, -a, a)
    for j = i + 1, #sums do p = exact_add_product(p, -2 * a, sums[j]) end
  end
  return exact_round(p)
end
