-- A Worker's exit event never waits for a listener (API.md 7): not for
-- one to be added, and not for a listener of an earlier event of the
-- worker that is still running (waiting in sleep or receive). A listener
-- may wait for the worker's end: holding exit behind it, as a port's
-- close is held, left such a listener waiting forever.

local mc = require "messagechannel"
local helper = require "spec.helper"

local BOUND = 20000  -- ticks of 1 ms: far more than any worker needs

describe("regress: a Worker's exit is not held by its running listeners #threads", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  it("reaches onexit while a message listener waits for it", function()
    local w = start([[require("messagechannel").parentPort:postMessage("last")]])
    local exited, ticks, log = false, 0, {}
    w.onmessage = function(e)
      log[#log + 1] = e.data
      while not exited and ticks < BOUND do
        ticks = ticks + 1
        mc.sleep(0.001)
      end
      log[#log + 1] = "listener saw the end"
    end
    w.onexit = function(e)
      exited = true
      log[#log + 1] = "exit " .. e.code
    end
    helper.run()
    assert.is_true(ticks < BOUND, "the exit event waited for the listener")
    assert.same({ "last", "exit 0", "listener saw the end" }, log)
    assert.same({}, errors)
  end)

  it("reaches onexit while an error listener waits for it", function()
    local w = start([[error("boom", 0)]])
    local exited, ticks, log = false, 0, {}
    w.onerror = function(e)
      log[#log + 1] = "error " .. e.error
      while not exited and ticks < BOUND do
        ticks = ticks + 1
        mc.sleep(0.001)
      end
    end
    w:addEventListener("exit", function(e)
      exited = true
      log[#log + 1] = "exit " .. e.code
    end)
    helper.run()
    assert.is_true(ticks < BOUND, "the exit event waited for the listener")
    assert.same({ "error boom", "exit 1" }, log)
    assert.same({}, errors)
  end)
end)
