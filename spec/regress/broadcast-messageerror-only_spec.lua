-- API.md 11: a BroadcastChannel with a message listener stays alive (and
-- keeps mc.run() going) until closed or unref'd; other unreachable
-- channels are collected. One whose only listener was for messageerror
-- was never collected, though it kept nothing going.

local mc = require "messagechannel"

-- Whether the channel that make() returns is collected once unreachable.
local function collected(make)
  local weak = setmetatable({}, { __mode = "v" })
  weak[1] = make()
  collectgarbage()
  collectgarbage()
  mc.run(5)
  collectgarbage()
  collectgarbage()
  return weak[1] == nil
end

describe("regress: an unreachable BroadcastChannel", function()
  it("is collected with only a messageerror listener", function()
    assert.is_true(collected(function()
      local b = mc.BroadcastChannel("only-messageerror")
      b.onmessageerror = function() end
      return b
    end))
    assert.is_true(collected(function()
      local b = mc.BroadcastChannel("only-messageerror")
      b:addEventListener("messageerror", function() end)
      return b
    end))
  end)

  it("stays alive with a message listener, and is collected once closed", function()
    local weak = setmetatable({}, { __mode = "v" })
    do
      local b = mc.BroadcastChannel("with-message")
      b.onmessage = function() end
      b.onmessageerror = function() end
      weak[1] = b
    end
    collectgarbage()
    collectgarbage()
    assert.is_not_nil(weak[1])
    weak[1]:close()
    assert.is_true(mc.run(5))
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1])
  end)
end)
