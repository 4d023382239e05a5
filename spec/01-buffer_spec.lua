local mc = require "messagechannel"
local helper = require "spec.helper"

local error_of, pack = helper.error_of, helper.pack

-- The bytes the read tests use: a NUL and a high byte among plain letters.
local SAMPLE = "ab\0\255e"

-- string.byte is the oracle. LuaJIT 2.1.0-beta3 miscompiles it for some
-- out-of-range negative positions once a loop is traced (byte(-6, -7) of a
-- 5-byte string returns 5 values), so the oracle runs interpreted.
local function string_byte(...)
  return SAMPLE:byte(...)
end
local jit = rawget(_G, "jit")
if jit then jit.off(string_byte) end

local function bad_argument(fn, ...)
  local err = error_of(fn, ...)
  assert.truthy(err:find("bad argument", 1, true), err)
end

describe("Buffer", function()
  describe("mc.Buffer(n)", function()
    it("makes a buffer of n zero bytes", function()
      local buf = mc.Buffer(5)
      assert.equal(5, #buf)
      assert.equal(("\0"):rep(5), buf:sub())
    end)

    it("makes an empty buffer for n = 0", function()
      local buf = mc.Buffer(0)
      assert.equal(0, #buf)
      assert.equal("", buf:sub())
    end)

    it("makes a large buffer of zero bytes", function()
      local buf = mc.Buffer(100000)
      assert.equal(100000, #buf)
      assert.equal(("\0"):rep(100000), buf:sub())
    end)

    it("accepts a float with an integral value", function()
      assert.equal(3, #mc.Buffer(3.0))
    end)

    it("rejects a negative n with a bad argument error", function()
      bad_argument(mc.Buffer, -1)
    end)

    it("rejects a non-integer n with a bad argument error", function()
      bad_argument(mc.Buffer, 1.5)
      bad_argument(mc.Buffer, math.huge)
      bad_argument(mc.Buffer, -math.huge)
      bad_argument(mc.Buffer, helper.nan)
    end)
  end)

  describe("mc.Buffer(s)", function()
    it("copies the bytes of s, NUL and every byte value included", function()
      local buf = mc.Buffer(helper.all_bytes)
      assert.equal(256, #buf)
      assert.equal(helper.all_bytes, buf:sub())
    end)

    it("makes an empty buffer from an empty string", function()
      local buf = mc.Buffer("")
      assert.equal(0, #buf)
      assert.equal("", buf:sub())
    end)

    it("does not share memory with s", function()
      local s = ("hel"):rep(2) .. "lo" -- built at run time, not a constant
      local buf = mc.Buffer(s)
      buf:write(1, "J")
      assert.equal(104, s:byte(1)) -- still "h"
      assert.equal("helhello", s)
      assert.equal("Jelhello", buf:sub())
    end)

    it("gives independent buffers for the same string", function()
      local s = "same bytes"
      local a, b = mc.Buffer(s), mc.Buffer(s)
      a:write(1, "S")
      assert.equal("Same bytes", a:sub())
      assert.equal("same bytes", b:sub())
    end)

    it("rejects a table with a bad argument error", function()
      bad_argument(mc.Buffer, {})
    end)

    it("rejects a boolean with a bad argument error", function()
      bad_argument(mc.Buffer, true)
    end)
  end)

  describe("#buf", function()
    it("is the number of bytes", function()
      assert.equal(#SAMPLE, #mc.Buffer(SAMPLE))
      assert.equal(1, #mc.Buffer("\0"))
    end)
  end)

  describe("buf:sub", function()
    it("reads like string.sub for every i and j in -7..7", function()
      local buf = mc.Buffer(SAMPLE)
      for i = -7, 7 do
        for j = -7, 7 do
          assert.equal(SAMPLE:sub(i, j), buf:sub(i, j),
            ("sub(%d, %d)"):format(i, j))
        end
      end
    end)

    it("reads like string.sub with j omitted", function()
      local buf = mc.Buffer(SAMPLE)
      for i = -7, 7 do
        assert.equal(SAMPLE:sub(i), buf:sub(i), ("sub(%d)"):format(i))
      end
    end)

    it("returns every byte with no arguments", function()
      assert.equal(SAMPLE, mc.Buffer(SAMPLE):sub())
    end)

    it("reads an empty buffer like an empty string", function()
      local buf = mc.Buffer(0)
      for i = -2, 2 do
        for j = -2, 2 do
          assert.equal((""):sub(i, j), buf:sub(i, j))
        end
      end
    end)
  end)

  describe("buf:byte", function()
    local function same_bytes(expected, got, what)
      assert.equal(expected.n, got.n, what .. ": number of results")
      for k = 1, expected.n do
        assert.equal(expected[k], got[k], what .. ": result " .. k)
      end
    end

    it("reads like string.byte for every i and j in -7..7", function()
      local buf = mc.Buffer(SAMPLE)
      for i = -7, 7 do
        for j = -7, 7 do
          same_bytes(pack(string_byte(i, j)), pack(buf:byte(i, j)),
            ("byte(%d, %d)"):format(i, j))
        end
      end
    end)

    it("reads like string.byte with j omitted", function()
      local buf = mc.Buffer(SAMPLE)
      for i = -7, 7 do
        same_bytes(pack(string_byte(i)), pack(buf:byte(i)),
          ("byte(%d)"):format(i))
      end
    end)

    it("returns the first byte with no arguments", function()
      same_bytes(pack(SAMPLE:byte()), pack(mc.Buffer(SAMPLE):byte()), "byte()")
      same_bytes(pack((""):byte()), pack(mc.Buffer(""):byte()), "empty byte()")
    end)

    it("returns every byte value 0..255", function()
      local buf = mc.Buffer(helper.all_bytes)
      local got = pack(buf:byte(1, -1))
      assert.equal(256, got.n)
      for k = 1, 256 do assert.equal(k - 1, got[k]) end
    end)
  end)

  describe("buf:write", function()
    it("writes s at a 1-based position", function()
      local buf = mc.Buffer("hello")
      buf:write(1, "HE")
      assert.equal("HEllo", buf:sub())
      buf:write(4, "LO")
      assert.equal("HElLO", buf:sub())
    end)

    it("writes NUL and high bytes", function()
      local buf = mc.Buffer(4)
      buf:write(2, "\255\0\1")
      assert.equal("\0\255\0\1", buf:sub())
    end)

    it("fills a whole buffer in one write", function()
      local buf = mc.Buffer(256)
      buf:write(1, helper.all_bytes)
      assert.equal(helper.all_bytes, buf:sub())
    end)

    it("counts a negative position from the end", function()
      local buf = mc.Buffer("hello")
      buf:write(-1, "O")
      assert.equal("hellO", buf:sub())
      buf:write(-5, "H")
      assert.equal("HellO", buf:sub())
      buf:write(-3, "LL")
      assert.equal("HeLLO", buf:sub())
    end)

    it("allows an empty write just past the end", function()
      local buf = mc.Buffer("hello")
      buf:write(6, "")
      assert.equal("hello", buf:sub())
      local empty = mc.Buffer(0)
      empty:write(1, "")
      assert.equal(0, #empty)
    end)

    it("raises when the write would fall outside the buffer", function()
      local buf = mc.Buffer("hello")
      local outside = {
        { 0, "x" },     -- before the first byte
        { -6, "x" },    -- before the first byte, counted from the end
        { -100, "x" },
        { 6, "x" },     -- past the end
        { 5, "xy" },    -- runs past the end
        { -2, "xyz" },  -- runs past the end, counted from the end
        { 1, "hello!" },
        { 7, "" },      -- an empty write beyond the end
      }
      for _, case in ipairs(outside) do
        local ok = pcall(buf.write, buf, case[1], case[2])
        assert.is_false(ok, ("write(%d, %q)"):format(case[1], case[2]))
      end
      assert.is_false(pcall(mc.Buffer(0).write, mc.Buffer(0), 1, "x"))
    end)

    it("leaves the buffer unchanged when it raises", function()
      local buf = mc.Buffer("hello")
      pcall(buf.write, buf, 4, "XYZ")
      pcall(buf.write, buf, 0, "XY")
      pcall(buf.write, buf, -6, "XY")
      assert.equal("hello", buf:sub())
    end)

    it("rejects a non-number position or a non-string s", function()
      local buf = mc.Buffer("hello")
      bad_argument(buf.write, buf, "one", "x")
      bad_argument(buf.write, buf, 1, {})
      bad_argument(buf.write, buf, 1)
    end)
  end)

  describe("buf.detached", function()
    it("is false for a buffer that was not transferred", function()
      assert.is_false(mc.Buffer(3).detached)
      assert.is_false(mc.Buffer("abc").detached)
    end)
  end)

  describe("fields", function()
    it("cannot be assigned", function()
      local buf = mc.Buffer("abc")
      assert.is_false(pcall(function() buf.x = 1 end))
      assert.is_false(pcall(function() buf.detached = true end))
      assert.is_false(buf.detached)
      assert.equal("abc", buf:sub())
    end)
  end)

  -- Copies of 32 MiB or more are written into memory that may be given
  -- huge pages (2 MiB): every byte, those at each 2 MiB boundary and the
  -- last one too, must arrive as it was.
  describe("a large copy", function()
    local MIB = 1024 * 1024
    local SIZE = 33 * MIB + 3
    local MARKS = { 1, 2, SIZE - 1, SIZE }
    for k = 1, 16 do
      MARKS[#MARKS + 1] = 2 * k * MIB
      MARKS[#MARKS + 1] = 2 * k * MIB + 1
    end

    local function marked()
      local buf = mc.Buffer(SIZE)
      for i, at in ipairs(MARKS) do buf:write(at, string.char(i)) end
      return buf
    end

    local function check(copy, original)
      assert.truthy(helper.is_buffer(copy))
      assert.are_not.equal(original, copy)
      assert.equal(SIZE, #copy)
      for i, at in ipairs(MARKS) do assert.equal(i, copy:byte(at)) end
      assert.equal(0, copy:byte(3))
      assert.equal(0, copy:byte(5 * MIB + 7))
      assert.is_true(copy:sub() == original:sub())
    end

    it("keeps every byte through structuredClone", function()
      local buf = marked()
      check(mc.structuredClone(buf), buf)
      assert.is_false(buf.detached)
    end)

    it("keeps every byte through serialize and deserialize", function()
      local buf = marked()
      check(mc.deserialize(mc.serialize({ buf }))[1], buf)
    end)

    it("keeps every byte through a port", function()
      local buf, ch = marked(), mc.MessageChannel()
      ch.port1:postMessage({ buf, buf })
      local v = ch.port2:receive().data
      check(v[1], buf)
      assert.equal(v[1], v[2])
      ch.port1:close()
    end)
  end)

  describe("tostring", function()
    it("names the type", function()
      local s = tostring(mc.Buffer(3))
      assert.truthy(s:find("^Buffer %("), s)
    end)
  end)
end)
