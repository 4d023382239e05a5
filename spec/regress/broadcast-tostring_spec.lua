-- tostring of a BroadcastChannel ended its name at the first zero byte:
-- a name is any string (API.md 11), and channels named "a\0b" and "a\0c"
-- printed alike.

local mc = require "messagechannel"

describe("regress: tostring of a BroadcastChannel", function()
  it("shows the whole name, zero bytes included", function()
    local bc = mc.BroadcastChannel("a\0b")
    assert.equal("BroadcastChannel (a\0b)", tostring(bc))
    bc:close()
    assert.equal("BroadcastChannel (a\0b, closed)", tostring(bc))
  end)

  it("of an empty name", function()
    local bc = mc.BroadcastChannel("")
    assert.equal("BroadcastChannel ()", tostring(bc))
    bc:close()
  end)
end)
