-- messagechannel.cqueues ended its task as soon as messagechannel was
-- idle, even while other tasks kept cq:loop() running; nothing watched
-- mc.pollfd() then. A close caused by garbage collection (a partner
-- collected) was not dispatched until some later step, and messages from
-- another thread to an unref'd port were not dispatched at all, where
-- mc.run() and the luv adapter dispatch both (API.md 10: the same rules
-- as mc.run(); 6.2: an unref'd port still gets its messages while
-- anything else keeps the scheduler running). The task now waits while
-- other tasks of the controller run.
--
-- Each cq:loop() runs under a bound (WAIT) only so that a bug fails the
-- spec instead of hanging it.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WAIT = helper.WAIT   -- seconds: the bound of every loop

local has_cqueues, cqueues = pcall(require, "cqueues")

describe("regress: messagechannel.cqueues while other tasks run #threads", function()
  if not has_cqueues then
    pending(helper.skipped("cqueues-idle-wait", "cqueues is not installed for " .. _VERSION))
    return
  end
  local adapter = require "messagechannel.cqueues"
  local errors, start = helper.worker_specs(5, before_each, after_each)

  it("dispatches the close a collected partner causes, before cq:loop() returns", function()
    local log = {}
    local cq = cqueues.new()
    adapter.attach(cq)
    do
      local keep = mc.MessageChannel().port1  -- port2 is garbage
      keep.onclose = function() log[#log + 1] = "close" end
      cq:wrap(function()
        cqueues.sleep(0.01)
        collectgarbage()
        collectgarbage()
        -- until the close comes: this task keeps cq:loop() going
        local deadline = mc.now() + WAIT
        while not log[1] and mc.now() < deadline do cqueues.sleep(0.01) end
        log[#log + 1] = keep ~= nil
      end)
    end
    assert.is_true(cq:loop(WAIT))
    assert.same({ "close", true }, log)
    assert.same({}, errors)
  end)

  it("dispatches another thread's messages to an unref'd port", function()
    local ch, got = mc.MessageChannel(), {}
    local w = start [[
      local mc = require "messagechannel"
      mc.parentPort.onmessage = function(e)
        e.ports[1]:postMessage("late")
        e.ports[1]:close()
      end]]
    w:postMessage(nil, { ch.port2 })
    w:unref()
    ch.port1.onmessage = function(e) got[#got + 1] = e.data end
    ch.port1:unref()
    local cq = cqueues.new()
    adapter.attach(cq)
    cq:wrap(function()
      local deadline = mc.now() + WAIT
      while not got[1] and mc.now() < deadline do cqueues.sleep(0.01) end
    end)
    assert.is_true(cq:loop(WAIT))
    assert.same({ "late" }, got)
    assert.same({}, errors)
  end)

  it("and cq:loop() still returns once the other tasks end", function()
    local cq = cqueues.new()
    adapter.attach(cq)
    local ch = mc.MessageChannel()
    ch.port1.onmessage = function() end
    ch.port1:unref()
    cq:wrap(function() cqueues.sleep(0.01) end)
    assert.is_true(cq:loop(WAIT))
    assert.equal(0, cq:count())
    ch.port1:close()
  end)
end)
