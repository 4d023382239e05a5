-- Inside a worker, an error that reaches the default mc.onerror is the
-- worker's uncaught error and ends it (API.md 7). It was raised as an
-- ordinary error out of the call that dispatched it, so a worker that
-- wrapped that call in pcall (pcall(mc.sleep, ...), pcall(mc.run)) caught
-- it and ran on; its parent got the error event only when it ended by
-- itself. It now ends the worker as os.exit(1) does.

local helper = require "spec.helper"

describe("regress: a worker's uncaught error ends it #threads", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  for _, call in ipairs { "pcall(mc.sleep, 0.01)", "pcall(mc.run)",
                          "pcall(mc.parentPort.receive, mc.parentPort, 0.01)" } do
    it("even when " .. call .. " dispatched it", function()
      local w = start(([[
        local mc = require "messagechannel"
        mc.spawn(function() error("task error", 0) end)
        for i = 1, 3 do
          %s
          mc.parentPort:postMessage("went on " .. i)
        end]]):format(call))
      local log = {}
      w.onmessage = function(e) log[#log + 1] = e.data end
      w.onerror = function(e) log[#log + 1] = "error " .. tostring(e.error) end
      w.onexit = function(e) log[#log + 1] = "exit " .. e.code end
      helper.run()
      assert.same({ "error task error", "exit 1" }, log)
      assert.same({}, errors)
    end)
  end
end)
