-- The message events of w.onmessage had the Worker's internal port as
-- target; on the web and in Node.js the target is the Worker.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: a Worker's message events #threads", function()
  it("have the Worker as target and currentTarget", function()
    local w = mc.Worker([[
      require("messagechannel").parentPort:postMessage("hi")
    ]], { eval = true })
    local target, current, data
    w.onmessage = function(e) target, current, data = e.target, e.currentTarget, e.data end
    assert.is_true(mc.run(helper.WAIT))
    assert.equal("hi", data)
    assert.equal(w, target)
    assert.equal(w, current)
  end)
end)
