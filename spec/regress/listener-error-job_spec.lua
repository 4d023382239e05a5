-- A listener that raised could send the runner's next steps to the wrong
-- place. With one plain listener, the event was delivered without setting
-- the dispatch job's target, port and listener list, and the job kept
-- those of the last event with several listeners: when the listener then
-- raised, the rest of that other port's listeners were called with this
-- event, and the messageerror went to that other port. And the job's
-- target was read back from the event after the listener ran, so a
-- listener that changed event.target (as a Worker's listeners see it)
-- made the runner fail again and again, and mc.run() never returned. A
-- one-listener job now records its own target before the call, and a
-- runner error other than out of memory ends the job once reported.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: a raising listener's job", function()
  local save, restore = helper.onerror_keeper()
  before_each(save)
  after_each(restore)

  it("gives the messageerror to its own port, after another port's several listeners", function()
    local a, b = mc.MessageChannel(), mc.MessageChannel()
    local A, B = a.port2, b.port2
    local log = {}
    A:addEventListener("message", function(e) log[#log + 1] = "A1 " .. e.data end)
    A:addEventListener("message", function(e) log[#log + 1] = "A2 " .. e.data end)
    A:addEventListener("messageerror", function(e)
      log[#log + 1] = "A messageerror " .. tostring(e.data)
    end)
    A:start()
    B.onmessage = function(e)
      log[#log + 1] = "B " .. e.data
      error("boom", 0)
    end
    B.onmessageerror = function(e)
      log[#log + 1] = "B messageerror " .. e.data .. " " .. e.error
        .. " " .. tostring(e.target == B)
    end
    mc.onerror = function(err) log[#log + 1] = "onerror " .. tostring(err) end
    a.port1:postMessage("for A")
    b.port1:postMessage("for B")
    assert.is_true(mc.run(helper.WAIT))
    assert.same({ "A1 for A", "A2 for A", "B for B",
                  "B messageerror for B boom true" }, log)
  end)

  it("ends when the listener changed event.target before it raised", function()
    local ch = mc.MessageChannel()
    local got, errors, reports = 0, {}, 0
    mc.onerror = function() reports = reports + 1 end
    ch.port2.onmessage = function(e)
      got = got + 1
      e.target = "elsewhere"
      error("boom " .. e.data, 0)
    end
    ch.port2.onmessageerror = function(e) errors[#errors + 1] = e.error end
    ch.port1:postMessage(1)
    ch.port1:postMessage(2)
    assert.is_true(mc.run(helper.WAIT))
    assert.equal(2, got)
    assert.same({ "boom 1", "boom 2" }, errors)
    assert.equal(0, reports)
  end)

  it("gives a Worker's messageerror to the Worker and goes on #threads", function()
    local w = mc.Worker([[
      local mc = require "messagechannel"
      mc.parentPort:postMessage(1)
      mc.parentPort:postMessage(2)
    ]], { eval = true })
    local log = {}
    mc.onerror = function(err) log[#log + 1] = "onerror " .. tostring(err) end
    w.onmessage = function(e)
      log[#log + 1] = "message " .. e.data
      error("boom " .. e.data, 0)
    end
    w.onmessageerror = function(e)
      log[#log + 1] = "messageerror " .. e.error .. " " .. tostring(e.target == w)
    end
    w.onexit = function(e) log[#log + 1] = "exit " .. e.code end
    assert.is_true(mc.run(helper.WAIT))
    assert.same({ "message 1", "messageerror boom 1 true", "message 2",
                  "messageerror boom 2 true", "exit 0" }, log)
  end)
end)
