-- Colliding keys benchmark: how long mc.deserialize takes on a message whose
-- table keys all share one main position in Lua's hash, and mc.serialize
-- and mc.structuredClone on a table of such keys, against a message or a
-- table of the same size whose keys spread. Lua 5.4 hashes an integer
-- modulo 2^k - 1 and Lua 5.3 masks it, so i * 65535 collide on 5.4 and
-- i * 65536 on 5.3 (each spreads on the other); on Lua 5.1, 5.2 and
-- LuaJIT, floats are crafted to collide. The codec refuses such input
-- (docs/FORMAT.md); the target is that it takes at most 10x as long as the
-- normal input, raising or not.
--
--   lua5.4 bench/collisions.lua
--
-- The paths below are derived from this file's location, so the bench runs
-- the checkout it lives in (lua/ and build/<version>/) from any directory.

local arg = arg
local VERSION = _VERSION
local jit = rawget(_G, "jit")
local math_type = rawget(math, "type")
local format, char = string.format, string.char
local concat, floor = table.concat, math.floor
local ipairs, pcall, require, type = ipairs, pcall, require, type
local print, tostring, clock = print, tostring, os.clock
local exit = os.exit

local root = ((arg and arg[0] or ""):match("^(.*[/\\])") or "") .. "../"
local build = type(jit) == "table" and "luajit" or VERSION:match("%d+%.%d+")
package.path = root .. "?.lua;" .. root .. "lua/?.lua;" .. root
  .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/" .. build .. "/?.so;" .. package.cpath

local common = require "bench.common"

local DECODE_KEYS = 65536  -- the size of the reported message (457 KB)
local ENCODE_KEYS = 16384  -- Lua itself takes ~0.3 s to build such a table
local TARGET_RATIO = 10

local ok_mc, mc = pcall(require, "messagechannel")
if not ok_mc then
  print("messagechannel not loadable (build it first): "
    .. (tostring(mc):gsub("\n.*", "")))
  exit(1)
end

-- Bytes of the format (docs/FORMAT.md): one table of pairs key -> true.
local function u32(v)
  return char(v % 256, floor(v / 256) % 256, floor(v / 65536) % 256,
              floor(v / 16777216) % 256)
end

local function varint(v)
  local t = {}
  while v >= 128 do
    t[#t + 1] = char(v % 128 + 128)
    v = floor(v / 128)
  end
  t[#t + 1] = char(v)
  return concat(t)
end

local function int_bytes(v)
  return "\3" .. varint(v >= 0 and 2 * v or -2 * v - 1)
end

local function float_bytes(hi, lo)
  return "\4" .. u32(lo) .. u32(hi)
end

local function message(n, key)
  local t = { "\1\6", u32(0), u32(n) }
  for i = 1, n do t[#t + 1] = key(i) .. "\2" end
  return concat(t)
end

-- Keys of a table of n pairs (a hash part of s nodes) that share one main
-- position here, as bytes; nil on 5.3 and 5.4, whose inputs are the
-- integers above.
local function crafted(s)
  if math_type then return nil end
  if jit then
    local bit = require "bit"
    local hi = 0x7FE00000  -- the high half of 1.0, shifted left by one
    local a, b = bit.rol(hi, 14), bit.rol(hi, 19)
    return function(i)
      local m = i + bit.band(bit.bxor(b, i), s - 1) * 2 ^ 19
      return float_bytes(0x3FF00000, bit.bxor((m + a) % 2 ^ 32, hi) % 2 ^ 32)
    end
  end
  return function(i) return float_bytes(0x3FF00000, 2 * i * (s - 1)) end
end

-- The inputs: for each, the colliding keys and keys of the same size that
-- spread (the low 16 bits changed, all apart).
local inputs = {
  { name = "i * 65535 (collide on 5.4)",
    key = function(i, s) return i * (s - 1) end },
  { name = "i * 65536 (collide on 5.3)",
    key = function(i, s) return i * s end },
}
local function spread(key)
  return function(i, s) return key(i, s) + i * 40503 % 65536 end
end

local workloads = {}
local outcome = {}
local function add(name, run, once)
  local ok, err = pcall(once)
  outcome[name] = ok and "ok" or (tostring(err):match("DataCloneError:.*")
                                  or tostring(err))
  workloads[#workloads + 1] = { name = name, run = run }
end

local function add_decode(name, bytes)
  add(name, function(n)
    for _ = 1, n do pcall(mc.deserialize, bytes) end
  end, function() return mc.deserialize(bytes) end)
  return #bytes
end

local function add_encode(name, t)
  add("serialize " .. name, function(n)
    for _ = 1, n do pcall(mc.serialize, t) end
  end, function() return mc.serialize(t) end)
  add("structuredClone " .. name, function(n)
    for _ = 1, n do pcall(mc.structuredClone, t) end
  end, function() return mc.structuredClone(t) end)
end

local pairs_to_compare = {}  -- {colliding workload, normal workload}
local sizes = {}

local function scale(n)  -- the hash part a table of n pairs gets
  local s = 1
  while s < n do s = s * 2 end
  return s
end

-- Decoding the reported messages.
do
  local s = scale(DECODE_KEYS)
  local cases = {}
  for _, input in ipairs(inputs) do
    cases[#cases + 1] = { input.name, function(i) return int_bytes(input.key(i, s)) end,
      function(i) return int_bytes(spread(input.key)(i, s)) end }
  end
  local c = crafted(s)
  if c then
    cases[#cases + 1] = { "floats crafted for " .. VERSION, c,
      function(i) return float_bytes(0x3FF00000, i * 40503 % 2 ^ 32) end }
  end
  for _, case in ipairs(cases) do
    local bad, good = "decode " .. case[1], "decode, spread: " .. case[1]
    sizes[bad] = add_decode(bad, message(DECODE_KEYS, case[2]))
    sizes[good] = add_decode(good, message(DECODE_KEYS, case[3]))
    pairs_to_compare[#pairs_to_compare + 1] = { bad, good }
  end
end

-- Encoding a table of keys that collide here, built once (quadratic, as
-- Lua builds it), against one whose keys spread.
do
  local s = scale(ENCODE_KEYS)
  local keys = {}
  local c = crafted(s)
  if c then
    keys = mc.deserialize("\1\6" .. u32(ENCODE_KEYS) .. u32(0)
      .. concat((function()
        local t = {}
        for i = 1, ENCODE_KEYS do t[i] = c(i) end
        return t
      end)()))
  else
    local key = VERSION == "Lua 5.3" and inputs[2].key or inputs[1].key
    for i = 1, ENCODE_KEYS do keys[i] = key(i, s) end
  end
  local bad, good = {}, {}
  local t0 = clock()
  for i = 1, ENCODE_KEYS do bad[keys[i]] = true end
  local built = clock() - t0
  for i = 1, ENCODE_KEYS do good[i * 40503 + 1000003] = true end
  add_encode("colliding", bad)
  add_encode("spread", good)
  pairs_to_compare[#pairs_to_compare + 1] =
    { "serialize colliding", "serialize spread" }
  pairs_to_compare[#pairs_to_compare + 1] =
    { "structuredClone colliding", "structuredClone spread" }
  outcome.built = built
end

print(format("colliding keys bench: %s, messagechannel %s", common.version(),
  tostring(mc.version)))
print(format("decode: one table of %d integer keys -> true; encode: a table "
  .. "of %d keys (Lua took %.2f s to build the colliding one)",
  DECODE_KEYS, ENCODE_KEYS, outcome.built))
print(format("%d rounds interleaved, ~%.3f s per batch, CPU time (os.clock)",
  common.ROUNDS, common.TARGET))
print("")

local results = common.run_interleaved(workloads)
local lines = common.table(results)
common.print_lines(lines)
print("")

local by = results.by_name
local met = true
for _, p in ipairs(pairs_to_compare) do
  local bad, good = by[p[1]], by[p[2]]
  local x = bad.median / good.median
  if x > TARGET_RATIO then met = false end
  local size = sizes[p[1]]
    and format(" (%d vs %d bytes)", sizes[p[1]], sizes[p[2]]) or ""
  print(format("%s: %.1fx the time of the spread input%s, %s", p[1], x, size,
    outcome[p[1]] == "ok" and "decoded" or "raised " .. outcome[p[1]]))
end
print(format("target: colliding input within %dx of the spread input: %s",
  TARGET_RATIO, met and "met" or "NOT met"))
