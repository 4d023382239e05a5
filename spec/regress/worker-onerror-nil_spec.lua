-- In a worker, mc.onerror = nil brought back the main thread's default
-- (write to stderr and go on) instead of the worker's (end the worker with
-- an error event at the parent).

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: mc.onerror = nil in a worker #threads", function()
  it("ends the worker with an error event, as the default does", function()
    local w = mc.Worker([[
      local mc = require "messagechannel"
      mc.onerror = function() end
      mc.onerror = nil
      mc.parentPort.onmessage = function() error("boom", 0) end
    ]], { eval = true })
    local got = {}
    w.onerror = function(e) got[#got + 1] = "error " .. tostring(e.error) end
    w.onexit = function(e) got[#got + 1] = "exit " .. e.code end
    w:postMessage("go")
    assert.is_true(mc.run(helper.WAIT))
    assert.same({ "error boom", "exit 1" }, got)
  end)
end)
