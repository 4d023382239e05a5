-- Objects that nothing can reach and that can never dispatch again were
-- kept for good. On Lua 5.1 and LuaJIT a Worker whose onmessage was set,
-- or whose handler referred to it, was never collected: its fields sat in
-- a weak-keyed table and referred back to it (no ephemerons there). And on
-- every version a port with listeners but not started, whose partner
-- posted and then ended, stayed pinned. Now both are collected, and the
-- held messages nobody can read go with the port: what they carry closes.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: unreachable objects that cannot dispatch are collected #threads", function()
  it("collects an exited Worker whose handlers refer to it", function()
    local weak = setmetatable({}, { __mode = "v" })
    for i = 1, 20 do
      local w = mc.Worker("require('messagechannel').parentPort:postMessage('hi')",
                          { eval = true })
      w.onmessage = function() return w end
      w:addEventListener("message", function() return w.threadId end)
      w.onexit = function() return w end
      weak[i] = w
    end
    assert.is_true(mc.run(60))
    helper.collect()
    assert.is_nil(next(weak))
  end)

  it("collects a port that is not started once its partner posted and ended", function()
    local weak = setmetatable({}, { __mode = "v" })
    local z = mc.MessageChannel()
    local closed = false
    z.port2.onmessage = helper.noop
    z.port2.onclose = function() closed = true end
    do
      local c = mc.MessageChannel()
      c.port2:addEventListener("message", helper.noop)  -- not started
      c.port2:addEventListener("close", helper.noop)
      weak[1] = c.port2
      local w = mc.Worker([[
        local d = require("messagechannel").workerData
        d.p:postMessage("held", { d.z })
      ]], { eval = true, data = { p = c.port1, z = z.port1 },
            transfer = { c.port1, z.port1 } })
      w.onerror = function(e) error(e.error) end
    end
    assert.is_true(mc.run(60))
    helper.collect()
    assert.is_nil(weak[1])
    assert.is_true(closed)  -- the held message carried z.port1
  end)

  it("still delivers to a port not started that the program can reach", function()
    local c = mc.MessageChannel()
    local got = {}
    c.port2:addEventListener("message", function(e) got[#got + 1] = e.data end)
    local w = mc.Worker([[
      require("messagechannel").workerData:postMessage("held")
    ]], { eval = true, data = c.port1, transfer = { c.port1 } })
    w.onerror = function(e) error(e.error) end
    assert.is_true(mc.run(60))
    helper.collect()
    c.port2:start()
    helper.run()
    assert.same({ "held" }, got)
  end)
end)
