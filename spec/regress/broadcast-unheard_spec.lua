-- Regression: a BroadcastChannel whose only listeners were for messageerror
-- (or error) kept every message that arrived, without bound, and handed
-- them all to a message listener added later. HTML's BroadcastChannel
-- dispatches a message when it arrives: with no message listener it is
-- gone. (API.md 11.)

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: BroadcastChannel without a message listener", function()
  it("drops what arrives, even with a messageerror listener", function()
    local a, b = mc.BroadcastChannel("regress.unheard"),
                 mc.BroadcastChannel("regress.unheard")
    b.onmessageerror = function() end
    a:postMessage("old")
    helper.run()  -- idle: "old" has arrived
    local got = {}
    b.onmessage = function(e)
      got[#got + 1] = e.data
      b:close()
    end
    a:postMessage("new")
    helper.run()
    a:close()
    assert.same({ "new" }, got)
  end)

  it("keeps no memory for messages nobody hears", function()
    local a, b = mc.BroadcastChannel("regress.unheard.2"),
                 mc.BroadcastChannel("regress.unheard.2")
    b:addEventListener("messageerror", function() end)
    collectgarbage()
    local before = collectgarbage("count")
    local big = string.rep("x", 1000)
    for _ = 1, 2000 do a:postMessage(big) end
    helper.run()  -- idle: all 2,000 have arrived
    collectgarbage()
    collectgarbage()
    -- 2,000 kept messages would be 2 MB and more
    assert.is_true(collectgarbage("count") - before < 500)
    a:close()
    b:close()
  end)
end)
