-- Keys chosen to share one main position in Lua's hash made decoding a
-- table quadratic: numbers are hashed without a seed (and strings on Lua
-- 5.1), so 65,536 integer keys i * 65535 (i * 65536 on 5.3), a 457 KB
-- message, took seconds to decode, as they did to serialize, post or
-- structuredClone once built; a worker decoding one could not be
-- terminated until it was done. The codec now counts the probes such keys
-- cost and raises "too many colliding keys" past a bound proportional to
-- the message (docs/FORMAT.md), and a long clone in a terminated worker
-- stops.

local mc = require "messagechannel"
local helper = require "spec.helper"

local char, concat, floor = string.char, table.concat, math.floor
local math_type = helper.math_type
local jit = rawget(_G, "jit")

-- Bytes of the format (docs/FORMAT.md), for keys a serializer never writes
-- from a table it could build cheaply.
local u32 = helper.u32

local function varint(v)
  local t = {}
  while v >= 128 do
    t[#t + 1] = char(v % 128 + 128)
    v = floor(v / 128)
  end
  t[#t + 1] = char(v)
  return concat(t)
end

local function int_value(v)  -- INT, zigzag
  return "\3" .. varint(v >= 0 and 2 * v or -2 * v - 1)
end

local function float_value(hi, lo)  -- FLOAT from the two halves of its bits
  return "\4" .. u32(lo) .. u32(hi)
end

-- A message of one table: pairs key -> true, or an array of the keys.
local function table_of(keys)
  local t = { "\1\6", u32(0), u32(#keys) }
  for i = 1, #keys do t[#t + 1] = keys[i] .. "\2" end
  return concat(t)
end

local function array_of(values)
  return "\1\6" .. u32(#values) .. u32(0) .. concat(values)
end

-- A table of n pairs gets a hash part of S nodes.
local N = 4000
local S = 4096

-- n keys that share one main position in a hash part of S nodes, for the
-- running Lua (compat.h has the hashes): multiples of S * (S - 1) on 5.3
-- and 5.4 (5.3 masks integers, 5.4 takes them modulo S - 1); on 5.1 and
-- 5.2, floats whose bits add up alike modulo S - 1; on LuaJIT, floats
-- whose bits its hashrot sends to node 0.
local function colliding(n)
  local keys = {}
  for i = 1, n do
    if math_type then
      keys[i] = int_value(i * S * (S - 1))
    elseif jit then
      local bit = require "bit"
      local hi = 0x7FE00000  -- the high half of 1.0, shifted left by one
      local a, b = bit.rol(hi, 14), bit.rol(hi, 19)
      -- out = (b ^ m) - rol(m, 13) is a multiple of S when the bits 19..30
      -- of m are the low 12 bits of b ^ m
      local m = i + bit.band(bit.bxor(b, i), S - 1) * 2 ^ 19
      local lo = bit.bxor((m + a) % 2 ^ 32, hi) % 2 ^ 32
      keys[i] = float_value(0x3FF00000, lo)
    else
      keys[i] = float_value(0x3FF00000, 2 * i * (S - 1))
    end
  end
  return keys
end

-- The same keys as Lua values, decoded from an array.
local function colliding_values(n)
  return mc.deserialize(array_of(colliding(n)))
end

local function count(t)
  local n = 0
  for _ in next, t do n = n + 1 end
  return n
end

local function collides(err)
  return err:find("DataCloneError: too many colliding keys", 1, true) ~= nil
end

-- Tables of keys that spread in Lua's hash, as real data does: each must
-- travel whole.
local shapes = {}
do
  local g = helper.prng(7)
  local function add(name, key)
    shapes[#shapes + 1] = { name = name, key = key }
  end
  add("random integers", function() return g.int(0, 2147483646) end)
  add("integers past the array part", function(i) return 1000000 + i end)
  add("negative integers", function(i) return -i end)
  add("floats", function(i) return i + 0.5 end)
  add("fractions", function(i) return i / 7 end)
  for _, stride in ipairs({ 2, 3, 8, 16, 32, 100, 1000, 3600 }) do
    add("multiples of " .. stride, function(i) return i * stride end)
  end
  add("timestamps", function(i) return 1700000000 + i * 60 end)
  add("integers and strings", function(i)
    return i % 2 == 0 and i * 1000 or "k" .. i
  end)
end

local function build(shape, n)
  local t = {}
  for i = 1, n do t[shape.key(i)] = i end
  return t
end

local function same_keys(a, b)
  if count(a) ~= count(b) then return false end
  for k, v in next, a do
    if b[k] ~= v then return false end
  end
  return true
end

describe("regress: keys that collide in Lua's hash", function()
  describe("mc.deserialize", function()
    it("refuses a table whose keys share one main position, naming the byte", function()
      local bytes = table_of(colliding(N))
      local err = helper.error_of(mc.deserialize, bytes)
      assert.truthy(collides(err), err)
      local at = tonumber(err:match("at byte (%d+)$"))
      assert.truthy(at and at > 10 and at < #bytes, err)
    end)

    it("decodes a few colliding keys: a small message may have them", function()
      local t = mc.deserialize(table_of(colliding(200)))
      assert.equal(200, count(t))
      for k, v in next, colliding_values(200) do
        assert.is_true(t[v], "key " .. k)
      end
    end)

    it("decodes the same number of keys spread out", function()
      local keys = {}
      for i = 1, N do keys[i] = int_value(i * 7919 + 1000003) end
      assert.equal(N, count(mc.deserialize(table_of(keys))))
    end)

    it("refuses strings of one hash on Lua 5.1 to 5.3 (sampled), decodes them elsewhere", function()
      -- 5.1 to 5.3 hash a 64-byte string from every third byte only, the
      -- same ones whatever the seed (5.2, 5.3). A probe among string keys
      -- counts one in 16 (real keys crowd by the hundred): 16,000 of them.
      -- The message is made from pieces, so that this file never makes
      -- (and Lua 5.1 never interns) those strings itself.
      local n, tail = 16000, ("x"):rep(60)
      local t = { "\1\6", u32(0), u32(n) }
      for i = 1, n do
        t[#t + 1] = "\5" .. varint(64)
        t[#t + 1] = char(i % 256)
        t[#t + 1] = char(floor(i / 256))
        t[#t + 1] = "Ay"
        t[#t + 1] = tail
        t[#t + 1] = "\2"
      end
      local bytes = concat(t)
      if not jit and (_VERSION == "Lua 5.1" or _VERSION == "Lua 5.2"
                      or _VERSION == "Lua 5.3") then
        local err = helper.error_of(mc.deserialize, bytes)
        -- 5.1 interns them too, and may count that first
        assert.truthy(err:find("DataCloneError: too many colliding %a+"), err)
      else
        assert.equal(n, count(mc.deserialize(bytes)))
      end
    end)
  end)

  describe("mc.serialize, postMessage and structuredClone", function()
    local function colliding_table()
      local t = {}
      for _, k in ipairs(colliding_values(N)) do t[k] = true end
      return t
    end

    it("refuse a table built from colliding keys, naming where it is", function()
      local t = colliding_table()
      local err = helper.error_of(mc.serialize, t)
      assert.equal("DataCloneError: too many colliding keys (at top level)",
                   err:match("DataCloneError:.*"))
      err = helper.error_of(mc.structuredClone, { a = { b = t } })
      assert.equal("DataCloneError: too many colliding keys (at .a.b)",
                   err:match("DataCloneError:.*"))
    end)

    it("postMessage refuses it, and nothing is sent", function()
      local ch = mc.MessageChannel()
      local got = 0
      ch.port2.onmessage = function() got = got + 1 end
      local err = helper.error_of(ch.port1.postMessage, ch.port1, colliding_table())
      assert.truthy(collides(err), err)
      ch.port1:postMessage("after")
      helper.run()
      assert.equal(1, got)
      ch.port1:close()
    end)
  end)

  describe("a table of keys that spread", function()
    for _, shape in ipairs(shapes) do
      it("is serialized, copied and posted whole: " .. shape.name, function()
        local t = build(shape, 20000)
        assert.is_true(same_keys(t, mc.deserialize(mc.serialize(t))))
        assert.is_true(same_keys(t, mc.structuredClone(t)))
        local ch, got = mc.MessageChannel(), nil
        ch.port2.onmessage = function(e) got = e.data end
        ch.port1:postMessage(t)
        helper.run()
        assert.is_true(same_keys(t, got))
        ch.port1:close()
      end)
    end
  end)

  describe("terminate() #threads", function()
    local errors, _, workers = helper.worker_specs(5, before_each, after_each)

    it("stops a worker decoding a large message: its exit event arrives", function()
      local big = {}
      for i = 1, 300000 do big[i] = { i, "x" .. i } end
      local rec = helper.record_worker(workers, [[
        local bytes = mc.workerData
        mc.parentPort:postMessage("started")
        while true do mc.deserialize(bytes) end
      ]], { data = mc.serialize(big) })
      local w = rec.worker
      w.onmessage = function(e)
        if e.data == "started" then w:terminate() end
      end
      helper.run()
      assert.is_number(rec.code)
      assert.are_not.equal(0, rec.code)
      assert.same({}, errors)
    end)
  end)
end)
