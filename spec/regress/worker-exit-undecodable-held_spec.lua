-- A worker's messages held for want of a message listener are dropped
-- when its exit is dispatched (API.md 7), but they were dropped by taking
-- each one, which decodes it: one the parent could not decode (a
-- metatable registered in the worker only) reached mc.onerror after exit
-- as a DataCloneError, though nothing was listening for it.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: a worker's held messages are dropped at exit unread #threads", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  -- A worker that posts a value of a metatable only it registered, and 1.
  local SOURCE = [[
    local mc = require "messagechannel"
    local Point = {}
    mc.register("Point", Point)
    mc.parentPort:postMessage(setmetatable({ x = 1 }, Point))
    mc.parentPort:postMessage(1)
  ]]

  -- Runs until worker w ended: it saw exit alone, and nothing was
  -- reported.
  local function exit_alone(w)
    local got = {}
    w.onexit = function(e) got[#got + 1] = "exit " .. e.code end
    helper.run()
    assert.same({ "exit 0" }, got)
    assert.same({}, errors)
  end

  it("one the parent cannot decode is not reported", function()
    exit_alone(start(SOURCE))
  end)

  it("nor on a port started with no listener left", function()
    local w = start(SOURCE)
    w.onmessage = function() end
    w.onmessage = nil
    exit_alone(w)
  end)

  it("a port a dropped message carried is closed: its partner gets close", function()
    local ch = mc.MessageChannel()
    local closed = false
    ch.port1.onclose = function() closed = true end
    local w = start([[
      local mc = require "messagechannel"
      local e = mc.parentPort:receive()
      mc.parentPort:postMessage(e.data, { e.data })
    ]])
    w:postMessage(ch.port2, { ch.port2 })
    local exited = false
    w.onexit = function() exited = true end
    helper.run()
    assert.is_true(exited)
    assert.is_true(closed)
    assert.same({}, errors)
  end)
end)
