-- A DataCloneError names where the bad value was found (API.md 4.1), keys
-- as `[3]` or `[1.5]`. Number keys were written as Lua's tostring writes
-- them, in 14 digits: the key 1e15 + 1 read `[1e+15]`, another key, and
-- 1/3 read `[0.33333333333333]`. They are now written in the fewest digits
-- that read back as the key. A float key with an integer value was
-- `[1e+15]` on Lua 5.1, 5.2 and LuaJIT, where 5.3 and 5.4, which make it
-- an integer key, wrote `[1000000000000000]`: it is in digits on every
-- version now.

local mc = require "messagechannel"

-- The key named in the error of `f` on {[k] = {print}}.
local function named(f, k)
  local ok, err = pcall(f, { [k] = { print } })
  assert.is_false(ok)
  return (assert(err:match("%(at %[(.-)%]%[1%]%)$"), err))
end

local KEYS = { 1e15 + 1, -1e15 - 1, 1 / 3, 0.1, 2 ^ 53, 123456789012345,
               1e300, 5e-324, 0.5 }  -- and inf, which tonumber refuses

describe("regress: number keys in a DataCloneError's path", function()
  for _, case in ipairs({ { "structuredClone", mc.structuredClone },
                          { "serialize", mc.serialize } }) do
    local name, f = case[1], case[2]
    it("read back as the key in " .. name, function()
      for _, k in ipairs(KEYS) do
        local s = named(f, k)
        assert.are.equal(k, tonumber(s), s)
      end
    end)

    it("are as short as that in " .. name, function()
      assert.are.equal("1000000000000001", named(f, 1e15 + 1))
      assert.are.equal("0.3333333333333333", named(f, 1 / 3))
      assert.are.equal("0.1", named(f, 0.1))
      assert.are.equal("1.5", named(f, 1.5))
      assert.are.equal("inf", named(f, math.huge))
      assert.are.equal("-inf", named(f, -math.huge))
    end)

    it("are in digits when integral, on every version, in " .. name, function()
      assert.are.equal("1000000000000000", named(f, 1e15))
      assert.are.equal("-1000000000000000", named(f, -1e15))
      assert.are.equal("9007199254740992", named(f, 2 ^ 53))
      assert.are.equal("4611686018427387904", named(f, 2 ^ 62))
      assert.are.equal("-9223372036854775808", named(f, -2 ^ 63))
      assert.are.equal("0", named(f, -0.0))
      assert.are.equal("1e+20", named(f, 1e20))  -- past 2^63: as a float
    end)
  end

  it("reach postMessage's error as well", function()
    local ch = mc.MessageChannel()
    local ok, err = pcall(ch.port1.postMessage, ch.port1,
                          { [1 / 3] = { print } })
    assert.is_false(ok)
    assert.truthy(err:find("[0.3333333333333333][1]", 1, true), err)
    ch.port1:close()
    mc.run()
  end)
end)
