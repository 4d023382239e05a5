-- hasRef() tells whether an object keeps mc.run() going (API.md 2, 6.2).
-- It read only the ref()/unref() flag, so a closed port, a closed
-- BroadcastChannel and a worker that had exited all said true, though none
-- keeps anything going; Node.js says false for each.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WAIT = helper.WAIT  -- seconds: the bound of every run

describe("regress: hasRef once closed", function()
  it("is false for both ports once either closed, ref() or not", function()
    local ch = mc.MessageChannel()
    assert.is_true(ch.port1:hasRef())
    ch.port2:close()
    assert.is_false(ch.port1:hasRef())
    assert.is_false(ch.port2:hasRef())
    ch.port1:ref()
    assert.is_false(ch.port1:hasRef())
    assert.is_true(mc.run(WAIT))
    assert.is_false(ch.port1:hasRef())
  end)

  it("is false for a port whose partner was collected", function()
    local p = mc.MessageChannel().port1
    local closed = false
    p.onclose = function() closed = true end
    helper.collect()
    assert.is_true(closed)
    assert.is_false(p:hasRef())
  end)

  it("is false for a port moved away", function()
    local ch, o = mc.MessageChannel(), mc.MessageChannel()
    local moved = o.port1
    assert.is_true(ch.port1:postMessage(nil, { moved }))
    assert.is_false(moved:hasRef())
    ch.port1:close()
    o.port2:close()
    assert.is_true(mc.run(WAIT))
  end)

  it("is false for a closed BroadcastChannel", function()
    local b = mc.BroadcastChannel("spec-hasref-closed")
    assert.is_true(b:hasRef())
    b:close()
    assert.is_false(b:hasRef())
    b:ref()
    assert.is_false(b:hasRef())
  end)

  it("is false for a worker that exited #threads", function()
    local w = mc.Worker("return", { eval = true })
    assert.is_true(w:hasRef())
    local code
    w.onexit = function(e) code = e.code end
    assert.is_true(mc.run(WAIT))
    assert.are.equal(0, code)
    assert.is_false(w:hasRef())
    w:ref()
    assert.is_false(w:hasRef())
  end)
end)
