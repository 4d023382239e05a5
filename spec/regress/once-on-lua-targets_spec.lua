-- A `once` listener on an event target made in Lua (a Worker's error and
-- exit events, a Listener's connect events, dispatchEvent on either) made
-- the dispatch raise "bad argument #1 to 'changed'": removing the record
-- told the C side to reread the listeners of a target it does not know.
-- None of that event's listeners ran, and a worker's error was replaced
-- by that message (API.md 2: options may be {once = true}; 7; 3.5).

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: once listeners on a Worker and a Listener", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  it("runs a once exit listener once, and the listeners after it #threads", function()
    local w = start("return")
    local log = {}
    w:addEventListener("exit", function(e) log[#log + 1] = "once " .. e.code end,
                       { once = true })
    w:addEventListener("exit", function(e) log[#log + 1] = "other " .. e.code end)
    helper.run()
    assert.same({ "once 0", "other 0" }, log)
    assert.same({}, errors)
  end)

  it("gives a worker's error to a once error listener #threads", function()
    local w = start([[error("worker failed", 0)]])
    local log = {}
    w:addEventListener("error", function(e) log[#log + 1] = e.error end,
                       { once = true })
    w.onexit = function(e) log[#log + 1] = "exit " .. e.code end
    helper.run()
    assert.same({ "worker failed", "exit 1" }, log)
    assert.same({}, errors)
  end)

  it("runs a Listener's once listeners, dispatched or connected #remote", function()
    local l = mc.listen("tcp:127.0.0.1:0")
    local log = {}
    l:addEventListener("ping", function() log[#log + 1] = "ping" end, { once = true })
    assert.is_true(l:dispatchEvent({ type = "ping" }))
    assert.is_true(l:dispatchEvent({ type = "ping" }))
    l:addEventListener("connect", function(e)
      log[#log + 1] = "connect"
      e.port:close()
    end, { once = true })
    local p = mc.connect(l.address)
    p.onclose = function()
      log[#log + 1] = "closed"
      l:close()
    end
    helper.run()
    assert.same({ "ping", "connect", "closed" }, log)
    assert.same({}, errors)
  end)
end)
