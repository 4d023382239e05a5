-- A Worker's exit event is the last event it sees (API.md 7), and its
-- error event comes before exit. Both were dispatched while a listener of
-- an earlier event of the worker was still running (it waited in sleep or
-- receive): the rest of that event's listeners, and the messageerror of a
-- listener that raised after its wait, came after exit. Each listener
-- below waits until the parent has seen the worker end (on_exit ran: the
-- Worker prints as exited), then turns the scheduler a few times, so the
-- old code dispatched exit inside the wait every time.

local mc = require "messagechannel"
local helper = require "spec.helper"

-- Waits, inside a listener, until the parent saw the worker end, then
-- lets the turns that would dispatch its queued events run.
local function wait_for_end(w)
  repeat mc.sleep(0.001) until tostring(w) == "Worker (exited)"
  for _ = 1, 5 do mc.sleep(0) end
end

describe("regress: a Worker's exit is its last event #threads", function()
  local errors, catch, release = helper.error_hooks(5)
  local workers = {}
  before_each(catch)
  after_each(function()
    helper.terminate_all(workers)
    release()
  end)

  local function start(source)
    local w = mc.Worker(source, { eval = true })
    workers[#workers + 1] = w
    return w
  end

  it("waits for a message listener that sleeps, and for the listeners after it",
     function()
    local w = start([[require("messagechannel").parentPort:postMessage("last")]])
    local log = {}
    w:addEventListener("message", function(e)
      log[#log + 1] = "first " .. e.data
      wait_for_end(w)
      log[#log + 1] = "first done"
    end)
    w:addEventListener("message", function() log[#log + 1] = "second" end)
    w.onexit = function(e) log[#log + 1] = "exit " .. e.code end
    helper.run()
    assert.same({ "first last", "first done", "second", "exit 0" }, log)
    assert.same({}, errors)
  end)

  it("comes after the messageerror of a listener that raised after its wait",
     function()
    local w = start([[require("messagechannel").parentPort:postMessage(1)]])
    local log = {}
    w.onmessage = function()
      wait_for_end(w)
      error("late", 0)
    end
    w.onmessageerror = function(e) log[#log + 1] = "messageerror " .. e.error end
    w.onexit = function() log[#log + 1] = "exit" end
    helper.run()
    assert.same({ "messageerror late", "exit" }, log)
    assert.same({}, errors)
  end)

  it("holds the error event too: message listeners, then error, then exit",
     function()
    local w = start([[
      require("messagechannel").parentPort:postMessage("m")
      error("boom", 0)]])
    local log = {}
    w.onmessage = function()
      wait_for_end(w)
      log[#log + 1] = "message done"
    end
    w.onerror = function(e) log[#log + 1] = "error " .. e.error end
    w.onexit = function(e) log[#log + 1] = "exit " .. e.code end
    helper.run()
    assert.same({ "message done", "error boom", "exit 1" }, log)
    assert.same({}, errors)
  end)

  it("waits for an error listener that sleeps, and for the listeners after it",
     function()
    local w = start([[error("boom", 0)]])
    local log = {}
    w:addEventListener("error", function(e)
      wait_for_end(w)
      log[#log + 1] = "first " .. e.error
    end)
    w:addEventListener("error", function() log[#log + 1] = "second" end)
    w:addEventListener("exit", function(e) log[#log + 1] = "exit " .. e.code end)
    helper.run()
    assert.same({ "first boom", "second", "exit 1" }, log)
    assert.same({}, errors)
  end)

  it("waits for a listener that waits in receive on a port the worker held",
     function()
    local ch = mc.MessageChannel()
    local w = mc.Worker([[
      local mc = require "messagechannel"
      held = mc.workerData
      mc.parentPort:postMessage("m")]],
      { eval = true, data = ch.port2, transfer = { ch.port2 } })
    workers[#workers + 1] = w
    local log = {}
    w.onmessage = function()
      local v, why = ch.port1:receive()  -- closed when the worker's thread ends
      log[#log + 1] = tostring(v) .. " " .. why
      wait_for_end(w)
      log[#log + 1] = "message done"
    end
    w.onexit = function() log[#log + 1] = "exit" end
    helper.run()
    assert.same({ "nil closed", "message done", "exit" }, log)
    assert.same({}, errors)
  end)

  it("is not held by a listener of another worker that waits", function()
    local a = start([[require("messagechannel").parentPort:postMessage("a")]])
    local b = start([[require("messagechannel").parentPort:postMessage("b")]])
    local log = {}
    a.onmessage = function()
      repeat mc.sleep(0.001) until log[1] == "b exit"
      log[#log + 1] = "a done"
    end
    b.onexit = function() log[#log + 1] = "b exit" end
    a.onexit = function() log[#log + 1] = "a exit" end
    helper.run()
    assert.same({ "b exit", "a done", "a exit" }, log)
    assert.same({}, errors)
  end)
end)
