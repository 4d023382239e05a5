-- The codec takes shorter paths for what most messages hold: the encoder
-- finds the objects of a message of at most 8 by scanning them (the map
-- takes them all when a 9th comes), writes short strings in place while
-- its output has room, and asks each key's type once; the decoder reads
-- small integers and short strings, and a table's two sizes, inline; and
-- serialize and deserialize leave what they pushed below their result.
-- These specs pin what each path must keep, on both sides of where it
-- ends: shared references and cycles around the 8th, 9th and 17th objects,
-- strings of every short length at every place of the output buffer, keys
-- and values of every type, the error of a message that fails half way
-- and the calls after it, where a truncated table's sizes fail, and
-- varints of one and two bytes (read and written inline) and longer.

local mc = require "messagechannel"
local helper = require "spec.helper"

local same_graph = helper.same_graph
local REGISTERED = {}

local function ser_deser(v) return mc.deserialize(mc.serialize(v)) end
local WAYS = {
  { "serialize", ser_deser },
  { "structuredClone", mc.structuredClone },
}

-- n tables, each one met first at its own id: t[i] refers back to the
-- first, to the one before it and to itself (the first to itself twice); a Buffer is met again in
-- every one of them, and the last is reached again from the top.
local function objects(n)
  local buf = mc.Buffer("shared bytes")
  local t = { buf = buf }
  for i = 1, n do
    local sub = { i = i, prev = t[i - 1], buf = buf }
    sub.self = sub
    sub.first = t[1] or sub
    t[i] = sub
  end
  t.last = t[n]
  t.top = t
  return t
end

local function check_objects(c, n)
  assert.equal(n, #c)
  assert.equal(c, c.top)
  assert.equal(c[n], c.last)
  for i = 1, n do
    assert.equal(i, c[i].i)
    assert.equal(c[i], c[i].self)
    assert.equal(c[1], c[i].first)
    assert.equal(c[i - 1], c[i].prev)
    assert.equal(c.buf, c[i].buf)
  end
  assert.equal("shared bytes", c.buf:sub())
end

describe("regress: the codec's paths for small messages", function()
  for _, way in ipairs(WAYS) do
    local name, copy = way[1], way[2]

    it(name .. ": references around the 8th, 9th and 17th objects",
       function()
      for _, n in ipairs({ 1, 6, 7, 8, 9, 10, 15, 16, 17, 40 }) do
        local v = objects(n)
        local c = copy(v)
        check_objects(c, n)
        assert.is_true(same_graph(v, c))
      end
    end)

    it(name .. ": tables as keys around the 9th object", function()
      for _, n in ipairs({ 3, 8, 9, 12 }) do
        local v, keys = {}, {}
        for i = 1, n do
          keys[i] = { i = i }
          v[keys[i]] = i
        end
        v.keys = keys
        local c, count = copy(v), 0
        for _ in pairs(c) do count = count + 1 end
        assert.equal(n + 1, count)
        for i = 1, n do
          assert.equal(i, c[c.keys[i]])
          assert.equal(i, c.keys[i].i)
          assert.are_not.equal(keys[i], c.keys[i])
        end
      end
    end)

    it(name .. ": strings of every short length, at every place", function()
      local v, keys = {}, {}
      for i = 1, 300 do
        local s = string.rep(string.char(65 + i % 26), (i * 7) % 41)
        v[i] = s
        keys["k" .. s] = i
      end
      v.keys = keys
      local c = copy(v)
      for i = 1, 300 do assert.equal(v[i], c[i]) end
      for k, i in pairs(keys) do assert.equal(i, c.keys[k]) end
      assert.is_true(same_graph(v, c))
    end)

    it(name .. ": keys and values of every type", function()
      local mt = REGISTERED
      mc.register("regress small paths", mt)  -- again for the second way
      local key = {}
      local v = {
        10, 20, 30, [5] = 50, [-1] = "minus", [0] = "zero", [2.5] = "half",
        [true] = false, [false] = true, [key] = key, [""] = "",
        int = 127, big = 128, neg = -2, huge = 2 ^ 53, f = 1.5,
        s31 = string.rep("x", 31), s32 = string.rep("y", 32),
        reg = setmetatable({ a = 1 }, mt), plain = setmetatable({}, {}),
      }
      local c = copy(v)
      assert.is_true(same_graph(v, c))
      assert.equal(mt, getmetatable(c.reg))
      assert.is_nil(getmetatable(c.plain))
      for k, x in pairs(v) do
        if type(k) ~= "table" and type(x) ~= "table" then
          assert.is_true(helper.same_number(x, c[k]) or x == c[k])
        end
      end
      if helper.math_type then
        assert.equal("float", helper.math_type(c.huge))
        assert.equal("integer", helper.math_type(c.int))
      end
    end)

    it(name .. ": an error half way, then calls right", function()
      local v = objects(12)
      v[10].f = print
      local ok, err = pcall(copy, v)
      assert.is_false(ok)
      assert.equal("DataCloneError: function is not cloneable (at [10].f)",
                   err)
      v[10].f = nil
      for _ = 1, 3 do
        check_objects(copy(v), 12)
        check_objects(copy(objects(3)), 3)
      end
    end)
  end

  it("deserialize: where truncated table sizes fail", function()
    local cases = {
      { "\1\6", 2 }, { "\1\6\0\0", 2 }, { "\1\6\1\0\0\0", 6 },
      { "\1\6\1\0\0\0\0\0\0", 6 }, { "\1\6\1\0\0\0\0\0\0\0", 10 },
      { "\1\37ab", 2 }, { "\1\6\1\0\0\0\0\0\0\0\37a", 11 },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(mc.deserialize, case[1])
      assert.is_false(ok)
      assert.equal("DataCloneError: truncated input at byte " .. case[2], err)
    end
    assert.same({ 1 }, mc.deserialize("\1\6\1\0\0\0\0\0\0\0\129"))
  end)

  it("varints of one, two and three bytes, both ways", function()
    -- integers, zigzag (0 to 127 are SMALLINTs): -64 takes one byte, 128,
    -- 8191 and -8192 two
    local ints = {
      { -1, "\3\1" }, { 128, "\3\128\2" }, { -64, "\3\127" },
      { -65, "\3\129\1" }, { 8191, "\3\254\127" },
      { 8192, "\3\128\128\1" }, { -8192, "\3\255\127" },
      { -8193, "\3\129\128\1" },
    }
    for _, case in ipairs(ints) do
      assert.equal("\1" .. case[2], mc.serialize(case[1]))
      assert.equal(case[1], mc.deserialize("\1" .. case[2]))
    end
    -- lengths around 127 and 16383
    for _, n in ipairs({ 32, 127, 128, 16383, 16384 }) do
      local str = ("x"):rep(n)
      assert.equal(str, ser_deser(str))
    end
    assert.equal(("y"):rep(128), mc.deserialize("\1\5\128\1" .. ("y"):rep(128)))
    -- ids past 127 and past 16383: the shared key of 200 and of 17,000
    -- records, made after them
    for _, n in ipairs({ 200, 17000 }) do
      local t = {}
      for i = 1, n do t[i] = { name = i } end
      local copy = ser_deser(t)
      assert.equal(n, #copy)
      assert.equal(1, copy[1].name)
      assert.equal(n, copy[n].name)
    end
    -- where a varint of two bytes fails, and what is read right
    local cases = {
      { "\1\5\200", "truncated input at byte 3" },
      { "\1\5\200\0", "overlong varint at byte 3" },
      { "\1\5\128\1", "length beyond the end of input at byte 2" },
      { "\1\3\200", "truncated input at byte 3" },
      { "\1\3\128\128", "truncated input at byte 4" },
      { "\1\8\200", "truncated input at byte 3" },
      { "\1\9\200", "truncated input at byte 3" },
      { "\1\6\0\0\0\0\1\0\0\0\8\128\1\1",
        "reference to an unknown object at byte 10" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(mc.deserialize, case[1])
      assert.is_false(ok)
      assert.equal("DataCloneError: " .. case[2], err)
    end
  end)

  it("serialize and deserialize return one value", function()
    local s = mc.serialize({ 1, { 2 } }, "more", "arguments")
    assert.equal(1, select("#", mc.serialize({ 1 }, 2, 3)))
    assert.equal(1, select("#", mc.deserialize(s, 2, 3)))
    assert.equal(2, mc.deserialize(s)[2][1])
  end)
end)
