-- Regression: a BroadcastChannel whose only listeners were for messageerror
-- (or error) kept every message that arrived, without bound, and handed
-- them all to a message listener added later. HTML's BroadcastChannel
-- dispatches a message when it arrives: with no message listener it is
-- gone. (API.md 11.)

local mc = require "messagechannel"

describe("regress: BroadcastChannel without a message listener", function()
  it("drops what arrives, even with a messageerror listener", function()
    local a, b = mc.BroadcastChannel("regress.unheard"),
                 mc.BroadcastChannel("regress.unheard")
    b.onmessageerror = function() end
    a:postMessage("old")
    mc.run(0.2)
    local got = {}
    b.onmessage = function(e)
      got[#got + 1] = e.data
      b:close()
    end
    a:postMessage("new")
    mc.run(1)
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
    mc.run(0.5)
    collectgarbage()
    collectgarbage()
    -- 2,000 kept messages would be 2 MB and more
    assert.is_true(collectgarbage("count") - before < 500)
    a:close()
    b:close()
  end)
end)
