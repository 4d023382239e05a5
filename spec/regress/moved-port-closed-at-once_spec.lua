-- A port whose partner was moved to another thread and closed there at
-- once could lose its close event and the messages sent before it. The
-- sender's commit of the moved port ran after the message was queued: when
-- the receiving thread had already taken the port and closed the pair, the
-- commit no longer found the partner left behind (a closed pair names no
-- local peer), so it was neither kept nor pinned, and was collected with
-- its events still to dispatch. The commit now pins the partner that the
-- moved port kept.

local mc = require "messagechannel"

describe("regress: a moved port closed at once by its receiver #threads", function()
  it("leaves its partner the reply and the close", function()
    local N = 300
    for _ = 1, 5 do
      local w = mc.Worker(([[
        local mc = require "messagechannel"
        local closes, messages = 0, 0
        for _ = 1, %d do
          local ch = mc.MessageChannel()
          ch.port1.onmessage = function() messages = messages + 1 end
          ch.port1.onclose = function() closes = closes + 1 end
          mc.parentPort:postMessage(nil, { ch.port2 })
        end
        collectgarbage()
        local idle = mc.run(60)
        mc.parentPort:postMessage({ idle = idle, closes = closes, messages = messages })
      ]]):format(N), { eval = true })
      local report
      w.onmessage = function(e)
        if e.ports[1] then
          e.ports[1]:postMessage("reply")
          e.ports[1]:close()
        else
          report = e.data
        end
      end
      w.onerror = function(e) error(e.error) end
      assert.is_true(mc.run(60))
      assert.same({ idle = true, closes = N, messages = N }, report)
    end
  end)
end)
