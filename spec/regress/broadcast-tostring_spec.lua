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

-- After its __gc had run, a BroadcastChannel that a finalizer reached
-- again read its name's old length from freed memory (tostring and
-- bc.name), found under ASan.
describe("regress: a BroadcastChannel seen by a finalizer after its own", function()
  it("has the name \"\", read from no freed memory", function()
    local seen
    do
      local bc
      local function look() seen = { tostring(bc), bc.name } end
      -- marked for finalization before bc, so finalized after it (a
      -- userdata on 5.1 and LuaJIT, whose tables have no __gc)
      local newproxy = rawget(_G, "newproxy")
      if newproxy then
        getmetatable(newproxy(true)).__gc = look
      else
        setmetatable({}, { __gc = look })
      end
      bc = mc.BroadcastChannel(("n"):rep(100))
    end
    for _ = 1, 4 do collectgarbage() end
    assert.same({ "BroadcastChannel (, closed)", "" }, seen)
  end)
end)
