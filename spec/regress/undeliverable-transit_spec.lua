-- A port in transit inside a message that can never be delivered kept its
-- partner open: no close, postMessage kept returning true, and a listener
-- on the partner kept mc.run() from going idle. A message queued at an end
-- whose holder is gone for good (its port collected, its worker ended, or
-- the message that carried that end freed unread) is now freed with it,
-- and the ports it carries close at their partners. A partner in transit
-- inside this state's own queues does not keep mc.run() going: only this
-- state's tasks could deliver it.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: undeliverable messages release the ports they carry", function()
  it("closes the partner of a port sent to a worker terminated before it reads #threads",
     function()
    for _, body in ipairs({
      "while true do end",                                            -- never opens parentPort
      -- opens it, never reads
      "local p = require('messagechannel').parentPort; while true do end",
    }) do
      local x = mc.MessageChannel()
      local closed = false
      x.port2.onmessage = helper.noop
      x.port2.onclose = function() closed = true end
      local w = mc.Worker(body, { eval = true })
      local exited = false
      w.onexit = function() exited = true end
      assert.is_true(w:postMessage("here", { x.port1 }))
      w:terminate()
      assert.is_true(mc.run(60))
      assert.is_true(exited)
      assert.is_true(closed, body)
      local ok, why = x.port2:postMessage("after")
      assert.is_false(ok)
      assert.equal("closed", why)
      assert.truthy(w.threadId)  -- the Worker object is still alive
    end
  end)

  it("goes idle while a partner waits, unread, in a port of this state not started", function()
    local c, x = mc.MessageChannel(), mc.MessageChannel()
    local got = {}
    x.port2.onmessage = function(e) got[#got + 1] = e.data end
    assert.is_true(c.port1:postMessage(nil, { x.port1 }))
    assert.is_true(mc.run(60))
    -- the message is still there for whoever starts the port later
    local moved
    c.port2.onmessage = function(e) moved = e.ports[1] end
    helper.run()
    assert.truthy(moved)
    moved:postMessage("hello")
    helper.run()
    assert.same({ "hello" }, got)
  end)

  it("closes the partner when the port holding the message is collected unread", function()
    local x = mc.MessageChannel()
    local closed = false
    x.port2.onmessage = helper.noop
    x.port2.onclose = function() closed = true end
    do
      local c = mc.MessageChannel()
      c.port2:addEventListener("message", helper.noop)  -- never started
      c.port1:postMessage(nil, { x.port1 })
    end
    helper.collect()
    assert.is_true(closed)
    assert.is_false((x.port2:postMessage(1)))
  end)

  it("closes the ports carried in the queue of a port that dies in transit", function()
    local z = mc.MessageChannel()
    local closed = false
    z.port2.onclose = function() closed = true end
    z.port2.onmessage = helper.noop
    do
      local x, c = mc.MessageChannel(), mc.MessageChannel()
      x.port2:postMessage(nil, { z.port1 })   -- waits at x.port1's end
      c.port1:postMessage(nil, { x.port1 })   -- which travels, unread
    end
    helper.collect()
    assert.is_true(closed)
  end)

  it("frees a chain of 100,000 ports inside ports without deep recursion", function()
    local z = mc.MessageChannel()
    local closed = false
    z.port2.onclose = function() closed = true end
    z.port2.onmessage = helper.noop
    do
      local inner, senders = z.port1, {}
      for i = 1, 100000 do
        local ch = mc.MessageChannel()
        ch.port2:postMessage(nil, { inner })  -- queued at ch.port1's end
        senders[i] = ch.port2  -- (a sender collected would close its pair)
        assert(senders[i])
        inner = ch.port1
      end
    end
    helper.collect()
    assert.is_true(closed)
  end)
end)
