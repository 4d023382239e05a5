-- A worker's mc.run() could return idle while a port whose partner had
-- closed (in another thread) still had messages and its close event to
-- dispatch: the news of them had not reached the worker's hub yet, and the
-- closed port no longer counted as waiting for another thread.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: mc.run() in a worker #threads", function()
  it("dispatches a closed partner's last messages and close before idle", function()
    local results = {}
    for _ = 1, 20 do
      local ch = mc.MessageChannel()
      -- the receiver first: once the sender has closed port1, port2
      -- could no longer be transferred
      local r = mc.Worker([[
        local mc = require "messagechannel"
        local port, n, closed = mc.workerData, 0, false
        port.onmessage = function() n = n + 1 end
        port.onclose = function() closed = true end
        mc.run()
        mc.parentPort:postMessage(n .. (closed and " closed" or " open"))
      ]], { eval = true, data = ch.port2, transfer = { ch.port2 } })
      mc.Worker([[
        local mc = require "messagechannel"
        local port = mc.workerData
        for i = 1, 100 do port:postMessage(i) end
        port:close()
      ]], { eval = true, data = ch.port1, transfer = { ch.port1 } })
      r.onmessage = function(e) results[#results + 1] = e.data end
      assert.is_true(mc.run(helper.WAIT))
    end
    assert.equal(20, #results)
    for i = 1, 20 do assert.equal("100 closed", results[i]) end
  end)
end)
