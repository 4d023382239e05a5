-- A worker's messages that its port held for want of a message listener
-- were dropped as soon as a turn saw the worker's end, though its exit
-- event came only at a later turn: a message listener set in between (as
-- after one mc.step() of a host loop) got nothing, while an exit listener
-- set with it got its event. API.md 7: those still held are dropped when
-- exit is dispatched; the listeners present then get the messages first.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: a worker's held messages wait for its exit event #threads", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  -- Starts a worker that posts 1, 2, 3 and ends, and steps the scheduler,
  -- with no listener at the worker, until a turn has seen the end. With
  -- `started`, a message listener is set and taken away first: the port
  -- is started with no listener left.
  local function ended_worker(started)
    local w = start([[
      local mc = require "messagechannel"
      for i = 1, 3 do mc.parentPort:postMessage(i) end
    ]])
    if started then
      w.onmessage = function() end
      w.onmessage = nil
    end
    while tostring(w) ~= "Worker (exited)" do mc.step() end
    return w
  end

  it("a message listener set after the end was seen gets them before exit", function()
    local w = ended_worker()
    local got = {}
    w.onmessage = function(e) got[#got + 1] = e.data end
    w.onexit = function(e) got[#got + 1] = "exit " .. e.code end
    helper.run()
    assert.same({ 1, 2, 3, "exit 0" }, got)
    assert.same({}, errors)
  end)

  it("so does one added with addEventListener", function()
    local w = ended_worker()
    local got = {}
    w:addEventListener("message", function(e) got[#got + 1] = e.data end)
    w:addEventListener("exit", function() got[#got + 1] = "exit" end)
    helper.run()
    assert.same({ 1, 2, 3, "exit" }, got)
  end)

  -- However many turns pass before the listeners are set, they get either
  -- the messages and then exit, or nothing at all (exit was dispatched,
  -- with the messages dropped); never exit alone, which would mean the
  -- messages were dropped while exit was still to come.
  local function all_or_nothing(started)
    for turns = 0, 4 do
      local w = ended_worker(started)
      for _ = 1, turns do mc.step() end
      local got = {}
      w.onmessage = function(e) got[#got + 1] = e.data end
      w.onexit = function(e) got[#got + 1] = "exit " .. e.code end
      helper.run()
      if #got > 0 then
        assert.same({ 1, 2, 3, "exit 0" }, got, "after " .. turns .. " turns")
      end
    end
    assert.same({}, errors)
  end

  it("whatever turns pass first, never exit without the messages", function()
    all_or_nothing(false)
  end)

  it("so does a port started with no listener left (onmessage set to nil again)", function()
    all_or_nothing(true)
  end)

  -- A listener waiting across exit does not hold it back (the README), and
  -- the event it was called for still goes on to the listeners after it,
  -- and to messageerror.
  it("an event whose listener waits across exit still reaches the rest", function()
    local gate = mc.MessageChannel()
    local w = start([[ require("messagechannel").parentPort:postMessage(1) ]])
    local log = {}
    w:addEventListener("message", function(e)
      log[#log + 1] = "A" .. e.data
      gate.port2:receive()
      log[#log + 1] = "A end"
    end)
    w:addEventListener("message", function(e) log[#log + 1] = "B" .. e.data end)
    w.onexit = function()
      log[#log + 1] = "exit"
      gate.port1:postMessage("go")
    end
    helper.run()
    assert.same({ "A1", "exit", "A end", "B1" }, log)
    gate.port1:close()
  end)

  it("and an error after the wait is its messageerror, after exit", function()
    local gate = mc.MessageChannel()
    local w = start([[ require("messagechannel").parentPort:postMessage(1) ]])
    local log = {}
    w.onmessage = function()
      gate.port2:receive()
      error("after the wait", 0)
    end
    w.onmessageerror = function(e) log[#log + 1] = "messageerror " .. tostring(e.error) end
    w.onexit = function()
      log[#log + 1] = "exit"
      gate.port1:postMessage("go")
    end
    helper.run()
    assert.same({ "exit", "messageerror after the wait" }, log)
    assert.same({}, errors)
    gate.port1:close()
  end)

  it("with no message listener by then, they are dropped at exit", function()
    local w = ended_worker()
    local got = {}
    w.onexit = function()
      got[#got + 1] = "exit"
      w.onmessage = function(e) got[#got + 1] = e.data end
    end
    helper.run()
    assert.same({ "exit" }, got)
    assert.same({}, errors)
  end)
end)
