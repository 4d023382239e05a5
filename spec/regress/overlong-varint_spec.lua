-- The decoder accepted varints that are not in their shortest form, which
-- docs/FORMAT.md rules out: one value had several encodings.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: overlong varints", function()
  local cases = {
    { "a string length", "\1\5\128\0" },
    { "an integer", "\1\3" .. ("\128"):rep(9) .. "\0" },
    { "a Buffer length", "\1\9\128\0" },
    { "a reference id", "\1\6\0\0\0\0\1\0\0\0\8\128\0\128" },
  }
  for _, case in ipairs(cases) do
    it("rejects an overlong varint in " .. case[1], function()
      local err = helper.error_of(mc.deserialize, case[2])
      assert.truthy(err:find("DataCloneError: overlong varint at byte %d+"), err)
    end)
  end

  it("still reads the shortest forms", function()
    assert.equal("", mc.deserialize("\1\5\0"))
    assert.equal(128, mc.deserialize("\1\3\128\2"))
    assert.equal(0, #mc.deserialize("\1\9\0"))
  end)
end)
