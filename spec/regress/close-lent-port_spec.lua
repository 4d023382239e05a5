-- A port's close() while a call moved it with a transfer list (while a
-- post to a full bounded partner waited for room, or from a finalizer
-- that ran during a postMessage or structuredClone) closed the pair under
-- the transfer: the call returned true and the receiver got a closed port
-- (API.md 4.3). The call moves the port, so the close comes after it: it
-- does nothing once the port moved, as on any port transferred away, and
-- closes the port when the call moved nothing. The specs wait for room,
-- where the close comes at a known time; a finalizer takes the same path
-- (port.c's port_close and port_keep) whenever the collector runs it.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: close() of a port a transfer is moving", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  it("while a post waits for room and then sends: the close does nothing", function()
    local b, t = mc.MessageChannel({ capacity = 1 }), mc.MessageChannel()
    assert.is_true(b.port1:postMessage(1))
    local log = {}
    mc.spawn(function()
      t.port1:close()  -- lent to the waiting post
      log[#log + 1] = b.port2:receive(0).data
    end)
    local sent = b.port1:postMessage({ t.port1 }, { t.port1 })
    log[#log + 1] = sent
    local moved = b.port2:receive(0).data[1]
    assert.is_true(moved:postMessage("hi"))
    assert.equal("hi", t.port2:receive(0).data)
    assert.same({ 1, true }, log)
    moved:close()
    b.port1:close()
  end)

  it("while a post waits for room and then gives up: the port closes then", function()
    local b, t = mc.MessageChannel({ capacity = 1 }), mc.MessageChannel()
    assert.is_true(b.port1:postMessage(1))
    local closed = false
    t.port2.onclose = function() closed = true end
    mc.spawn(function() t.port1:close() end)
    local ok, why = b.port1:postMessage({ t.port1 }, { transfer = { t.port1 }, timeout = 0.05 })
    assert.same({ false, "timeout" }, { ok, why })
    helper.run()
    assert.is_true(closed)
    assert.is_false((t.port1:postMessage("x")))
    b.port1:close()
    assert.same({}, errors)
  end)
end)
