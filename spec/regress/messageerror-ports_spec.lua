-- A message listener that raises makes a messageerror event at the same
-- port with the message's data (API.md 3.5); an event's `ports` are the
-- ports transferred with the message (3.3). That messageerror had
-- `ports = {}`: a port sent only in the transfer list could not be reached
-- from the messageerror handler, so it was lost, and its partner closed
-- once it was collected.

local mc = require "messagechannel"

describe("regress: a messageerror from a listener's error", function()
  it("carries the ports transferred with the message", function()
    local ch, o = mc.MessageChannel(), mc.MessageChannel()
    local seen, kept = {}, nil
    ch.port2.onmessage = function(e)
      seen.message = e.ports
      error("boom", 0)
    end
    ch.port2.onmessageerror = function(e)
      seen.error, seen.data, kept = e.error, e.data, e.ports[1]
      seen.ports = e.ports
    end
    local closed = false
    o.port2.onclose = function() closed = true end
    assert.is_true(ch.port1:postMessage({ n = 1 }, { o.port1 }))
    mc.run()
    assert.are.equal("boom", seen.error)
    assert.are.same({ n = 1 }, seen.data)
    assert.are.equal(seen.message, seen.ports)  -- the same array
    assert.are.equal(1, #seen.ports)
    assert.are.equal("userdata", type(kept))
    -- the port kept from the messageerror still works, its partner open
    collectgarbage()
    collectgarbage()
    mc.run()
    assert.is_false(closed)
    local got
    o.port2.onmessage = function(e) got = e.data end
    assert.is_true(kept:postMessage("still here"))
    mc.run()
    assert.are.equal("still here", got)
    kept:close()
    mc.run()
  end)

  it("gives each raising listener's messageerror the ports", function()
    local ch, o = mc.MessageChannel(), mc.MessageChannel()
    local counts = {}
    for i = 1, 2 do  -- i: two closures (5.2 and 5.3 reuse one without)
      ch.port2:addEventListener("message", function() error(i, 0) end)
    end
    ch.port2:addEventListener("messageerror", function(e)
      counts[#counts + 1] = #e.ports
    end)
    ch.port2:start()
    assert.is_true(ch.port1:postMessage(nil, { o.port1 }))
    mc.run()
    assert.are.same({ 1, 1 }, counts)
    ch.port1:close()
    o.port2:close()
    mc.run()
  end)

  it("has empty ports when the message had none", function()
    local ch = mc.MessageChannel()
    local ports
    ch.port2.onmessage = function() error("x", 0) end
    ch.port2.onmessageerror = function(e) ports = e.ports end
    ch.port1:postMessage(1)
    mc.run()
    assert.are.same({}, ports)
    ch.port1:close()
    mc.run()
  end)
end)
