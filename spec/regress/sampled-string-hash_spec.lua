-- Lua 5.1 to 5.3 hash a string from at most 32 of its bytes, taken in
-- steps from its end; 5.2 and 5.3 add a seed, which does not change which
-- bytes are read. Two faults of the decoder's count of string interning
-- (docs/FORMAT.md, "What the decoder checks"):
-- - Lua 5.1 refused ordinary messages: 700 strings of 1,000 bytes that
--   differ in a counter at their start, which the hash does not read,
--   were "too many colliding strings" (a posted one became a
--   messageerror), though Lua compares such strings only up to the
--   counter and interns them in milliseconds. The count charged the
--   whole length for each string of the same hash.
-- - Lua 5.2 and 5.3 counted nothing, so 80,000 strings of 40 bytes that
--   differ only in bytes the hash skips took 8 to 11 s to decode
--   (quadratic; API.md 4.4: deserialize never hangs).
-- The decoder now counts what Lua does on 5.1 to 5.3: the bytes that
-- agree, for strings of the same sampled bytes and length.

local mc = require "messagechannel"
local helper = require "spec.helper"

local floor = math.floor
local LUAJIT = rawget(_G, "jit") ~= nil
local SAMPLED = not LUAJIT and (_VERSION == "Lua 5.1" or _VERSION == "Lua 5.2"
                                or _VERSION == "Lua 5.3")

local u32 = helper.u32

-- A message (format 1) of an array of n distinct strings of len bytes
-- (40 by default; 32 to 63) that Lua 5.1 to 5.3 hash alike: their hash
-- reads every second byte from the end, all "a" here; the others count
-- i in base 26 (or of a table of them as keys, each to true). Made
-- from single bytes, so that this file never makes those strings itself.
local function colliding(n, keys, len)
  len = len or 40
  local t = { "\1\6", u32(keys and 0 or n), u32(keys and n or 0) }
  for i = 1, n do
    local x = i
    t[#t + 1] = "\5" .. string.char(len)
    for k = 0, len - 1 do
      if k % 2 == 1 then
        t[#t + 1] = "a"
      else
        t[#t + 1] = string.char(97 + x % 26)
        x = floor(x / 26)
      end
    end
    if keys then t[#t + 1] = "\2" end  -- the value: true
  end
  return table.concat(t)
end

-- Decodes bytes: on Lua 5.1 to 5.3 it must be refused as too many
-- colliding `what` ("strings", "keys", or "%a+" for either: 5.1 interns
-- keys too, and may count that first); elsewhere it is decoded, and
-- the value is returned.
local function refused_where_sampled(bytes, what)
  local ok, r = pcall(mc.deserialize, bytes)
  if SAMPLED then
    assert.is_false(ok)
    assert.truthy(tostring(r):find(
      "^DataCloneError: too many colliding " .. what .. " at byte %d+$"), r)
    return nil
  end
  assert.is_true(ok, r)
  return r
end

describe("regress: strings a sampled string hash puts together", function()
  it("1,000 strings of 1,000 bytes, a counter first, travel on every version", function()
    local t = {}
    for i = 1, 1000 do t[i] = ("%06d"):format(i) .. ("x"):rep(994) end
    local r = mc.deserialize(mc.serialize(t))
    assert.equal(1000, #r)
    assert.equal(t[1000], r[1000])
    local ch, got = mc.MessageChannel(), nil
    ch.port2.onmessage = function(ev) got = ev.data end
    ch.port2.onmessageerror = function(ev) got = tostring(ev.error) end
    assert.is_true(ch.port1:postMessage(t))
    assert.is_true(mc.run(5))
    assert.equal("table", type(got), got)
    assert.equal(t[500], got[500])
    ch.port1:close()
  end)

  it("80,000 made to collide are refused on Lua 5.1 to 5.3, decoded elsewhere", function()
    local r = refused_where_sampled(colliding(80000), "strings")
    if r then assert.equal(80000, #r) end
  end)

  it("20,000 of them as keys are refused on Lua 5.1 to 5.3, decoded elsewhere", function()
    local r = refused_where_sampled(colliding(20000, true), "%a+")
    if r then
      local n = 0
      for _ in pairs(r) do n = n + 1 end
      assert.equal(20000, n)
    end
  end)

  it("20,000 of 48 bytes as keys (not interned there) are refused on Lua 5.1 to 5.3", function()
    refused_where_sampled(colliding(20000, true, 48), "%a+")
  end)

  -- Cheap array values raise the message's budget; a probe among string
  -- keys counted one in 16 however long the chain let 100,000 keys of one
  -- chain through after 5,000,000 of them: 27 s to decode on 5.2 and 5.3.
  -- Past 512 keys of a chain each probe counts in full.
  it("a long chain of string keys after many cheap values is refused on Lua 5.1 to 5.3", function()
    local n, pad, x = 100000, 5000000, ("x"):rep(42)
    local t = { "\1\6", u32(pad), u32(n), ("\3\2"):rep(pad) }
    for k = 1, n do  -- bytes 43, 45, 47 are not read by the hash
      t[#t + 1] = "\5\48"
      t[#t + 1] = x
      t[#t + 1] = string.char(k % 256) .. "x" .. string.char(floor(k / 256) % 256)
        .. "x" .. string.char(floor(k / 65536)) .. "x\2"
    end
    refused_where_sampled(table.concat(t), "%a+")
  end)

  -- Keys that read alike by the hundred are real: timestamps of one day,
  -- 32 bytes, read alike in groups of 240 and 600 on 5.2 and 5.3, which
  -- fill such a table in a tenth of a second. They travel on every
  -- version.
  it("a day of timestamps as keys travels on every version", function()
    local t = {}
    for s = 0, 86399 do
      t[("2024-01-15T%02d:%02d:%02d.000000+00:00"):format(floor(s / 3600),
        floor(s / 60) % 60, s % 60)] = s
    end
    local back = mc.deserialize(mc.serialize(t))
    assert.equal(43200, back["2024-01-15T12:00:00.000000+00:00"])
    local copy = mc.structuredClone(t)
    assert.equal(86399, copy["2024-01-15T23:59:59.000000+00:00"])
  end)

  it("a few hundred of them decode on every version", function()
    local r = mc.deserialize(colliding(500))
    assert.equal(500, #r)
    local seen = {}
    for i = 1, 500 do
      assert.equal(40, #r[i])
      assert.is_nil(seen[r[i]])
      seen[r[i]] = true
    end
  end)
end)
