-- The frames of a link between processes (src/wire.c, read as the network
-- thread reads them), through core.wire_scan: the same records however
-- the bytes arrive, a length over the bound refused from its four bytes,
-- a frame cut short waited for, each record what its frame says, and big
-- messages back to back intact. spec/fuzz/frames.lua checks the same on
-- any bytes; its seeds pass it here too (Lua 5.3 and later).

local mc = require "messagechannel"
local core = require "messagechannel.core"
local helper = require "spec.helper"

local char, floor = string.char, math.floor
local scan = core.wire_scan

local u32 = helper.u32

local function u64(n) return u32(n % 2 ^ 32) .. u32(floor(n / 2 ^ 32)) end

local function frame(t, body) return u32(#body + 1) .. t .. body end
local function hello(ms, token) return frame("H", "mcl1" .. u32(ms) .. token) end
local PING = frame("P", "")
local function close(reason) return frame("C", char(reason)) end

-- A MSG frame of the bytes of value v (mc.serialize) and the Buffers bufs
-- (strings): each "\0xfer<i>" in v becomes TRANSFER i - 1, as a port
-- writes a Buffer of its transfer list.
local function message(v, bufs)
  bufs = bufs or {}
  local bytes = mc.serialize(v)
  for i = 1, #bufs do
    local marker = "\0xfer" .. i
    local at = bytes:find(char(0x20 + #marker) .. marker, 1, true)
    assert(at, "no marker " .. i)
    repeat
      bytes = bytes:sub(1, at - 1) .. "\10" .. char(i - 1)
        .. bytes:sub(at + 1 + #marker)
      at = bytes:find(char(0x20 + #marker) .. marker, at, true)
    until not at
  end
  local lens = {}
  for i, b in ipairs(bufs) do lens[i] = u64(#b) end
  return frame("M", u32(#bufs) .. table.concat(lens) .. bytes
                    .. table.concat(bufs))
end

-- A result as plain data: a Buffer becomes {buffer = its bytes}.
local function plain(v)
  if type(v) == "userdata" then return { buffer = v:sub() } end
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[plain(k)] = plain(x) end
  return t
end

local function result(s, max, split)
  local records, consumed, invalid = scan(s, max, split)
  return { records = plain(records), consumed = consumed, invalid = invalid }
end

local NEED = { records = {}, consumed = 0, invalid = false }
local INVALID = { records = {}, consumed = 0, invalid = true }

local PLAIN = message { 1, "two", { three = 3.5 }, flag = true }
local BUFFERS = message({ a = "\0xfer1", b = "\0xfer2", list = { "\0xfer1" },
                          copy = mc.Buffer("copied") },
                        { "transferred", "" })
local STREAM = hello(5000, "secret") .. PING .. PLAIN .. BUFFERS .. close(0)

describe("wire frames (core.wire_scan)", function()
  it("reads a stream's records", function()
    local r = result(STREAM)
    assert.are.equal(#STREAM, r.consumed)
    assert.is_false(r.invalid)
    local x = r.records
    assert.are.equal(5, #x)
    assert.are.same({ type = "H", size = 19, heartbeat = 5000,
                      token = "secret" }, x[1])
    assert.are.same({ type = "P", size = 5 }, x[2])
    assert.are.same({ type = "M", size = #PLAIN, buffers = {},
                      value = { 1, "two", { three = 3.5 }, flag = true } },
                    x[3])
    local t, c = { buffer = "transferred" }, { buffer = "" }
    assert.are.same({ type = "M", size = #BUFFERS, buffers = { t, c },
                      value = { a = t, b = c, list = { t },
                                copy = { buffer = "copied" } } }, x[4])
    assert.are.same({ type = "C", size = 6, reason = 0 }, x[5])
    -- The value holds the Buffers that came with it, not copies.
    local records = scan(STREAM)
    assert.are.equal(records[4].buffers[1], records[4].value.a)
    assert.are.equal(records[4].buffers[1], records[4].value.list[1])
  end)

  it("frames a stream the same at every split", function()
    local streams = {
      STREAM,
      STREAM .. PLAIN:sub(1, 9),                -- ends in a frame cut short
      STREAM .. u32(0xFFFFFFFF) .. "M",         -- ends in a length too big
      PING .. PING .. PING .. hello(1, "") .. PING,  -- heads across pieces
    }
    for _, s in ipairs(streams) do
      for _, max in ipairs { 16 * 2 ^ 20, 64, 0 } do
        local whole = result(s, max)
        assert.is_true(whole.consumed <= #s)
        for k = 1, #s do
          assert.are.same(whole, result(s, max, k), "split " .. k)
        end
      end
    end
    assert.are.same({ consumed = #STREAM, invalid = false },
                    { consumed = result(streams[2]).consumed,
                      invalid = result(streams[2]).invalid })
    assert.are.same({ consumed = #STREAM, invalid = true },
                    { consumed = result(streams[3]).consumed,
                      invalid = result(streams[3]).invalid })
  end)

  it("waits while fewer than the four length bytes have come "
     .. "(cf. nodejs/node#55834)", function()
    for cut = 0, 3 do
      assert.are.same(NEED, result(PLAIN:sub(1, cut)))
      assert.are.same(NEED, result(PLAIN:sub(1, cut), 0))  -- even so small
      assert.are.same({ records = { { type = "P", size = 5 } }, consumed = 5,
                        invalid = false },
                      result(PING .. PLAIN:sub(1, cut)))
    end
    -- Pieces of 1 to 3 bytes: no read holds a whole length.
    local ten = string.rep(PING, 10)
    for k = 1, 3 do
      local r = result(ten, nil, k)
      assert.are.equal(10, #r.records)
      assert.are.equal(50, r.consumed)
      assert.is_false(r.invalid)
    end
  end)

  it("holds a frame cut short as need more, wherever it is cut", function()
    local whole = result(STREAM)
    local ends, at = {}, 0
    for i, r in ipairs(whole.records) do
      at = at + r.size
      ends[i] = at
    end
    local m = 0
    for cut = 0, #STREAM do
      while ends[m + 1] and ends[m + 1] <= cut do m = m + 1 end
      local want = { records = {}, consumed = ends[m] or 0, invalid = false }
      for i = 1, m do want.records[i] = whole.records[i] end
      assert.are.same(want, result(STREAM:sub(1, cut)), "cut at " .. cut)
    end
  end)

  it("refuses a length over the bound from its four bytes, and does not "
     .. "allocate it", function()
    local body = PLAIN:sub(6)
    local max = #body  -- PLAIN's body is exactly the bound: taken
    assert.are.equal(1, #result(PLAIN, max).records)
    for cut = 0, #PLAIN do  -- one byte less: refused once the length is in
      local r = result(PLAIN:sub(1, cut), max - 1)
      assert.are.same(cut < 4 and NEED or INVALID, r, "cut at " .. cut)
    end
    assert.are.same(INVALID, result(u32(0xFFFFFFFF)))
    assert.are.same(INVALID, result(u32(0xFFFFFFFF) .. "M"))
    assert.are.same(INVALID, result(u32(16 * 2 ^ 20 + 2) .. "M"))
    assert.are.same(NEED, result(u32(16 * 2 ^ 20 + 1) .. "M"))  -- the default
    assert.are.same(INVALID, result(u32(0) .. "P"))  -- not even a type
    local r = result(PING .. u32(0xFFFFFFFF) .. "M" .. string.rep("x", 100))
    assert.are.equal(5, r.consumed)
    assert.is_true(r.invalid)
    -- What a head claims costs nothing: refused or waited for.
    for _, head in ipairs { u32(0xFFFFFFFF) .. "M", u32(16 * 2 ^ 20) .. "M" } do
      collectgarbage("collect")
      collectgarbage("stop")
      local before = collectgarbage("count")
      scan(head)
      local grew = collectgarbage("count") - before
      collectgarbage("restart")
      assert.is_true(grew < 16, ("a head cost %.1f KB"):format(grew))
    end
  end)

  it("refuses what cannot be a frame", function()
    -- An unknown type, once its byte is in, whatever the length says.
    assert.are.same(NEED, result(u32(100)))
    assert.are.same(INVALID, result(u32(100) .. "X"))
    assert.are.same(INVALID, result(frame("X", "abc")))
    -- A CLOSE of other than one byte, a PING with a body: when complete.
    assert.are.same(NEED, result(frame("C", "\0\0"):sub(1, -2)))
    assert.are.same(INVALID, result(frame("C", "\0\0")))
    assert.are.same(INVALID, result(frame("C", "")))
    assert.are.same(INVALID, result(frame("P", "x")))
  end)

  it("marks a bad HELLO or MSG body, and a message that cannot be decoded",
     function()
    local bad = {
      frame("H", "mcl2" .. u32(5000)),               -- magic
      frame("H", "mcl1"),                            -- no heartbeat
      hello(0, "t"),                                 -- heartbeat 0
      hello(1, string.rep("t", 4097)),               -- token too long
      frame("M", "\0\0\0"),                          -- no count
      frame("M", u32(3) .. "\1\0"),                  -- more Buffers than bytes
      frame("M", u32(1) .. u64(2 ^ 62) .. "\1\0"),   -- a Buffer too long
      frame("M", u32(1) .. u64(2) .. "ab"),          -- no message bytes
    }
    for i, f in ipairs(bad) do
      local r = result(f)
      assert.are.same({ records = { { type = f:sub(5, 5), size = #f,
                                      bad = true } },
                        consumed = #f, invalid = false }, r, "case " .. i)
    end
    assert.are.same({ type = "H", size = 4109, heartbeat = 1,
                      token = string.rep("t", 4096) },
                    result(hello(1, string.rep("t", 4096))).records[1])
    for _, bytes in ipairs { "\3\0", "\1\10\0", "\1\0\0", "\1", "\1\64\1k" } do
      local f = frame("M", u32(0) .. bytes)
      local r = result(f).records[1]
      local ok, err = pcall(mc.deserialize, bytes)
      assert.is_false(ok)
      assert.are.same({ type = "M", size = #f, error = err }, r)
    end
    -- TRANSFER past the Buffers that came.
    local f = frame("M", u32(1) .. u64(1) .. "\1\10\1" .. "x")
    local r = result(f).records[1]
    assert.truthy(r.error:find("^DataCloneError: "), r.error)
    assert.is_nil(r.buffers)
  end)

  it("decodes 7 MB message frames back to back intact "
     .. "(cf. nodejs/node#34797)", function()
    local MB7 = 7 * 2 ^ 20
    local s7 = string.rep(helper.all_bytes, MB7 / 256)
    local r7 = s7:reverse()
    local f1 = message(s7)
    local f2 = message({ data = "\0xfer1", n = 2 }, { r7 })
    local f3 = message({ s7:sub(2) .. "z", r7 })
    local stream = f1 .. f2 .. f3
    for _, split in ipairs { false, 65536, 1000003, #f1 - 1, #f1 + 3 } do
      local records, consumed, invalid = scan(stream, nil, split or nil)
      assert.are.equal(3, #records)
      assert.are.equal(#stream, consumed)
      assert.is_false(invalid)
      assert.is_true(records[1].value == s7)
      local buf = records[2].buffers[1]
      assert.are.equal(MB7, #buf)
      assert.is_true(buf:sub() == r7)
      assert.are.equal(buf, records[2].value.data)
      assert.are.equal(2, records[2].value.n)
      assert.is_true(records[3].value[1] == s7:sub(2) .. "z")
      assert.is_true(records[3].value[2] == r7)
    end
  end)

  it("takes its arguments", function()
    assert.are.same(NEED, result(""))
    assert.are.same(NEED, result("", 0, 1))
    for _, args in ipairs { { PING, -1 }, { PING, nil, 0 }, { nil } } do
      assert.is_false(pcall(scan, args[1], args[2], args[3]))
    end
  end)

  if rawget(string, "unpack") then  -- the check's Lua: 5.3 and later
    it("passes the fuzz check on each seed of spec/fuzz/corpus/frames",
       function()
      local path = package.path
      package.path = "spec/fuzz/?.lua;" .. path
      local ok, check = pcall(dofile, "spec/fuzz/frames.lua")
      package.path = path
      assert(ok, check)
      local ls = assert(io.popen("ls spec/fuzz/corpus/frames"))
      local n = 0
      for name in ls:lines() do
        local f = assert(io.open("spec/fuzz/corpus/frames/" .. name, "rb"))
        local s = f:read("*a")
        f:close()
        local passed, err = pcall(check, s)
        assert(passed, name .. ": " .. tostring(err))
        n = n + 1
      end
      ls:close()
      assert.is_true(n >= 20)
    end)
  end
end)
