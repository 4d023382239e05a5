-- Lua 5.1 interns every string it makes, comparing a new one with each
-- string of its hash, and its hash samples at most 32 bytes of a string
-- without a seed. mc.deserialize of a message of many distinct long
-- strings that differ only in bytes the hash skips was quadratic there:
-- 40,000 strings of 66 bytes (2.7 MB) took 5 s. The decoder now counts
-- the bytes those comparisons take and refuses such a message early
-- (docs/FORMAT.md, "What the decoder checks"). Other versions hash with a
-- seed (5.2 and later) or otherwise (LuaJIT), and decode it.

local mc = require "messagechannel"
local helper = require "spec.helper"

local PUC51 = _VERSION == "Lua 5.1" and not rawget(_G, "jit")

local u32 = helper.u32

-- A table of n distinct strings of 66 bytes that Lua 5.1 hashes alike:
-- its hash takes, from the end, every third byte (66, 63, ..., 3), which
-- are all "a" here; the others count i in base 26. The message is
-- concatenated from single bytes, so that this file never makes those
-- strings itself (Lua 5.1 took 20 s to intern them).
local function colliding(n)
  local t = { "\1\6", u32(n), u32(0) }
  for i = 1, n do
    local x = i
    t[#t + 1] = "\5\66"
    for k = 1, 66 do
      if (66 - k) % 3 == 0 then
        t[#t + 1] = "a"
      else
        t[#t + 1] = string.char(97 + x % 26)
        x = math.floor(x / 26)
      end
    end
  end
  return table.concat(t)
end

describe("regress: strings Lua 5.1 hashes alike", function()
  it("a message of 40,000 is refused on Lua 5.1, decoded elsewhere",
     function()
    local s = colliding(40000)
    local ok, r = pcall(mc.deserialize, s)
    if PUC51 then
      assert.is_false(ok)
      assert.truthy(tostring(r):find(
        "^DataCloneError: too many colliding strings at byte %d+$"), r)
    else
      assert.is_true(ok, r)
      assert.equal(40000, #r)
    end
  end)

  it("a few hundred of them decode on every version", function()
    local r = mc.deserialize(colliding(300))
    assert.equal(300, #r)
    local seen = {}
    for i = 1, 300 do
      assert.is_nil(seen[r[i]])
      seen[r[i]] = true
    end
  end)

  it("strings that differ in a counter decode on every version, as keys "
     .. "and values, and repeated", function()
    local t, k = {}, {}
    for i = 1, 20000 do
      t[i] = ("item-description-padded-to-length-%06d"):format(i)
    end
    for i = 1, 2000 do
      k[("user_profile_settings_attribute_%06d_x"):format(i)] = t[i]
    end
    t.k = k
    assert.same(t, mc.deserialize(mc.serialize(t)))
  end)
end)
