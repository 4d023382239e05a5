-- A dispatchEvent listener inside a task yields through the task: the
-- task passes the yield on. When that passing on failed (the task was
-- inside table.sort's comparator, a C call no yield crosses) and the
-- task caught the error, the listener's coroutine was left suspended, and
-- the scheduler kept taking it for the listener whose yield the task
-- passes on. A later yield with values (not the scheduler's own) of the
-- task, or of another listener, was then raised in that orphaned
-- coroutine, which never runs again: the yield that should have raised
-- returned, and its code went on. API.md 6.3: such a yield raises where
-- it was made. A wait the orphaned listener had started is undone the
-- same way, whatever yields next.

local mc = require "messagechannel"
local helper = require "spec.helper"

local run = helper.run

describe("regress: a listener whose yield the task failed to pass on", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  -- Dispatches `type` at port from inside table.sort's comparator, where
  -- the task cannot yield; logs whether the sort raised.
  local function dispatch_in_sort(port, type, log)
    local ok = pcall(table.sort, { 2, 1 }, function(a, b)
      port:dispatchEvent({ type = type })
      return a < b
    end)
    log[#log + 1] = ok and "sorted" or "sort raised"
  end

  local function assert_one_yield_error()
    helper.assert_one_yield_error(errors, "orphaned-listener-yield_spec.lua")
  end

  it("is not blamed for the task's own yield with values: that yield raises", function()
    local ch, log = mc.MessageChannel(), {}
    ch.port1:addEventListener("go", function()
      log[#log + 1] = "listener"
      coroutine.yield("foreign")
      log[#log + 1] = "listener resumed"
    end)
    mc.spawn(function()
      dispatch_in_sort(ch.port1, "go", log)
      coroutine.yield("foreign")
      log[#log + 1] = "task resumed"
    end)
    run()
    assert.same({ "listener", "sort raised" }, log)
    assert_one_yield_error()
  end)

  it("is not blamed for a later listener's yield with values: that listener's raises", function()
    local ch, log = mc.MessageChannel(), {}
    ch.port1:addEventListener("first", function()
      coroutine.yield("foreign")
      log[#log + 1] = "first resumed"
    end)
    ch.port1:addEventListener("second", function()
      log[#log + 1] = "second"
      coroutine.yield("foreign")
      log[#log + 1] = "second resumed"
    end)
    mc.spawn(function()
      dispatch_in_sort(ch.port1, "first", log)
      ch.port1:dispatchEvent({ type = "second" })
      log[#log + 1] = "task after"
    end)
    run()
    assert.same({ "sort raised", "second", "task after" }, log)
    assert_one_yield_error()
  end)

  it("leaves no wait behind: the message it waited for goes to the next receive", function()
    local ch, log = mc.MessageChannel(), {}
    ch.port1:addEventListener("go", function()
      local ev = ch.port2:receive()
      log[#log + 1] = "orphan got " .. tostring(ev and ev.data)
    end)
    ch.port1:addEventListener("wait", function()
      local ev = ch.port2:receive()
      log[#log + 1] = "listener got " .. tostring(ev and ev.data)
    end)
    mc.spawn(function()
      dispatch_in_sort(ch.port1, "go", log)
      ch.port1:dispatchEvent({ type = "wait" })
      local ev = ch.port2:receive()
      log[#log + 1] = "task got " .. tostring(ev and ev.data)
    end)
    mc.spawn(function()
      mc.sleep(0.01)
      ch.port1:postMessage("m1")
      mc.sleep(0.01)
      ch.port1:postMessage("m2")
    end)
    run()
    assert.same({ "sort raised", "listener got m1", "task got m2" }, log)
    assert.same({}, errors)
  end)

  -- The same inside a listener: the listener that dispatched from the
  -- comparator goes on, and its own waits and yields are its own.
  it("inside a listener: that listener's later wait is its own, and ends", function()
    local ch, log = mc.MessageChannel(), {}
    ch.port1:addEventListener("inner", function() coroutine.yield() end)
    ch.port1:addEventListener("outer", function()
      dispatch_in_sort(ch.port1, "inner", log)
      local ev, why = ch.port2:receive(5)
      log[#log + 1] = "outer got " .. tostring(ev and ev.data or why)
    end)
    mc.spawn(function()
      ch.port1:dispatchEvent({ type = "outer" })
      log[#log + 1] = "task after"
    end)
    mc.spawn(function()
      mc.sleep(0.01)
      ch.port1:postMessage("m1")
    end)
    run()
    assert.same({ "sort raised", "outer got m1", "task after" }, log)
    assert.equal(0, ch.port2:pending())
    assert.same({}, errors)
  end)

  it("inside a listener: that listener's yield with values raises there", function()
    local ch, log = mc.MessageChannel(), {}
    ch.port1:addEventListener("inner", function() coroutine.yield() end)
    ch.port1:addEventListener("outer", function()
      dispatch_in_sort(ch.port1, "inner", log)
      coroutine.yield("foreign")
      log[#log + 1] = "outer resumed"
    end)
    mc.spawn(function()
      ch.port1:dispatchEvent({ type = "outer" })
      log[#log + 1] = "task after"
    end)
    run()
    assert.same({ "sort raised", "task after" }, log)
    assert_one_yield_error()
  end)
end)
