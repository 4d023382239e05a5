-- dispatchEvent of an event that dispatchEvent was still dispatching (a
-- listener passing its own event on) ran it again: the inner dispatch
-- reset the outer one's stopImmediatePropagation, so listeners after a
-- stop ran, and a dispatch at another target changed event.target for
-- the outer listeners still to come. The DOM raises InvalidStateError
-- there (dispatchEvent, step 1); so does dispatchEvent now, and the outer
-- dispatch goes on unchanged. The same held for an event the scheduler
-- was dispatching (a message, close, messageerror or a Worker's event):
-- a listener that passed it to dispatchEvent ran other listeners with it,
-- changed its target for the listeners still to come at its own port, and
-- undid their stopImmediatePropagation.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: dispatchEvent of an event being dispatched", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  it("raises InvalidStateError, and the outer stop holds", function()
    local p = mc.MessageChannel().port2
    local log = {}
    p:addEventListener("x", function(e)
      e:stopImmediatePropagation()
      local ok, err = pcall(p.dispatchEvent, p, e)
      log[#log + 1] = ok
      log[#log + 1] = tostring(err):match("InvalidStateError: [^\n]*")
    end)
    p:addEventListener("x", function() log[#log + 1] = "second ran" end)
    assert.is_true(p:dispatchEvent({ type = "x" }))
    assert.same({ false, "InvalidStateError: the event is already being dispatched" }, log)
    assert.same({}, errors)
  end)

  it("at another target too, which leaves event.target as it was", function()
    local a, b = mc.MessageChannel(), mc.MessageChannel()
    local targets = {}
    a.port1:addEventListener("x", function(e)
      local ok = pcall(b.port1.dispatchEvent, b.port1, e)
      targets[#targets + 1] = ok
    end)
    a.port1:addEventListener("x", function(e) targets[#targets + 1] = e.target end)
    b.port1:addEventListener("x", function() targets[#targets + 1] = "b ran" end)
    a.port1:dispatchEvent({ type = "x" })
    assert.same({ false, a.port1 }, targets)
  end)

  it("and after an error came out of a dispatch, the table can be dispatched again", function()
    local p = mc.MessageChannel().port2
    local n = 0
    p:addEventListener("x", function()
      n = n + 1
      if n == 1 then error("listener fails", 0) end
    end)
    mc.onerror = function(err) error(err, 0) end  -- raised out of dispatchEvent
    local ev = { type = "x" }
    assert.is_false(pcall(p.dispatchEvent, p, ev))
    catch()
    assert.is_true(p:dispatchEvent(ev))
    assert.equal(2, n)
  end)

  it("and once the dispatch is over, the same table can be dispatched again", function()
    local p = mc.MessageChannel().port2
    local n = 0
    p:addEventListener("x", function() n = n + 1 end)
    local ev = { type = "x" }
    p:dispatchEvent(ev)
    p:dispatchEvent(ev)
    assert.equal(2, n)
  end)

  -- What a listener of the scheduler's event got from dispatchEvent(e) at
  -- another port, and what the listener after it saw.
  local function redispatched(setup)
    local pair = mc.MessageChannel()
    local other = pair.port1
    local ran_other = false
    other:addEventListener("message", function() ran_other = true end)
    other:addEventListener("close", function() ran_other = true end)
    other:addEventListener("messageerror", function() ran_other = true end)
    local log = {}
    local target, post
    target, post = setup(function(e)
      local ok, err = pcall(other.dispatchEvent, other, e)
      log[#log + 1] = ok
      log[#log + 1] = tostring(err):match("InvalidStateError: [^\n]*")
    end, function(e)
      log[#log + 1] = e.target == target and "target kept" or "target changed"
    end)
    post()
    helper.run()
    assert.is_false(ran_other)
    pair.port1:close()
    return log
  end

  local REFUSED = { false, "InvalidStateError: the event is already being dispatched",
                    "target kept" }

  it("refuses a message event the scheduler dispatches, two listeners", function()
    assert.same(REFUSED, redispatched(function(first, second)
      local ch = mc.MessageChannel()
      ch.port2:addEventListener("message", first)
      ch.port2:addEventListener("message", second)
      ch.port2:start()
      return ch.port2, function() ch.port1:postMessage(1) ch.port1:close() end
    end))
  end)

  it("and with one plain listener (the direct call), for each of a run of messages", function()
    local ch = mc.MessageChannel()
    local other = mc.MessageChannel().port1
    local log = {}
    ch.port2.onmessage = function(e)
      log[#log + 1] = pcall(other.dispatchEvent, other, e)
    end
    for i = 1, 3 do ch.port1:postMessage(i) end
    helper.run()
    assert.same({ false, false, false }, log)
    ch.port1:close()
  end)

  it("refuses a close event", function()
    assert.same(REFUSED, redispatched(function(first, second)
      local ch = mc.MessageChannel()
      ch.port2:addEventListener("close", first)
      ch.port2:addEventListener("close", second)
      return ch.port2, function() ch.port1:close() end
    end))
  end)

  it("refuses a messageerror event", function()
    assert.same(REFUSED, redispatched(function(first, second)
      local ch = mc.MessageChannel()
      ch.port2.onmessage = function() error("fails", 0) end
      ch.port2:addEventListener("messageerror", first)
      ch.port2:addEventListener("messageerror", second)
      return ch.port2, function() ch.port1:postMessage(1) ch.port1:close() end
    end))
  end)

  it("refuses a BroadcastChannel's message event", function()
    local a, b = mc.BroadcastChannel("redispatch"), mc.BroadcastChannel("redispatch")
    local log = {}
    b:addEventListener("message", function(e)
      log[#log + 1] = pcall(a.dispatchEvent, a, e)
    end)
    b:addEventListener("message", function(e) log[#log + 1] = e.target == b end)
    a:postMessage(1)
    for _ = 1, 10 do mc.step() end  -- BroadcastChannels keep mc.run() going
    a:close()
    b:close()
    assert.same({ false, true }, log)
  end)

  it("refuses a Worker's event (one the scheduler queues itself) #threads", function()
    local w = mc.Worker("", { eval = true })
    local other = mc.MessageChannel()
    local log = {}
    w:addEventListener("exit", function(e)
      log[#log + 1] = pcall(other.port1.dispatchEvent, other.port1, e)
    end)
    w:addEventListener("exit", function(e) log[#log + 1] = e.target == w end)
    helper.run()
    assert.same({ false, true }, log)
    other.port1:close()
  end)

  it("refuses it while its listener waits in receive", function()
    local ch, gate = mc.MessageChannel(), mc.MessageChannel()
    local other = mc.MessageChannel().port1
    local log = {}
    ch.port2.onmessage = function(e)
      gate.port2:receive()
      log[#log + 1] = pcall(other.dispatchEvent, other, e)
    end
    ch.port1:postMessage(1)
    mc.spawn(function() gate.port1:postMessage("go") end)
    helper.run()
    assert.same({ false }, log)
    ch.port1:close()
    gate.port1:close()
  end)

  it("and once its dispatch is over, it may be dispatched again, at another target", function()
    local ch = mc.MessageChannel()
    local other = mc.MessageChannel().port1
    local saved
    ch.port2.onmessage = function(e) saved = e end
    ch.port1:postMessage(1)
    helper.run()
    local seen
    other:addEventListener("message", function(e) seen = e.target end)
    assert.is_true(other:dispatchEvent(saved))
    assert.equal(other, seen)
    ch.port1:close()
  end)
end)
