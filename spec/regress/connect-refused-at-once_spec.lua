-- mc.connect to a Unix socket nobody listens at returned a port that was
-- already closed: connect(2) refuses such a socket at once, and the pair
-- was closed before mc.connect returned, so the first postMessage gave
-- false, "closed" (API.md 12: connect "returns a port at once; what is
-- posted before the connection is up waits in its queue"). A TCP connect
-- is refused later, by the network thread, so the same code behaved
-- differently by transport. Now a refusal at once is seen at the
-- connecting state's next poll: the port returned is entangled, posts
-- until then return true, and the close with reason "refused" follows.

local mc = require "messagechannel"
local R = require "spec.remote.helper"

describe("regress: a connect refused at once", function()
  local errors, made = R.specs(5, before_each, after_each)

  it("returns an entangled port; posts are queued, then the close", function()
    local p = mc.connect(R.unix_address())
    made[#made + 1] = p
    assert.is_nil(tostring(p):find("closed", 1, true))
    local reasons = {}
    p.onclose = function(e) reasons[#reasons + 1] = e.reason or "nil" end
    assert.is_true(p:postMessage("first"))
    assert.is_true(p:postMessage({ 2 }))
    assert.is_true(mc.run(5 * R.SLOW))
    assert.same({ "refused" }, reasons)
    assert.same({ false, "closed" }, { p:postMessage("late") })
    assert.same({}, errors)
  end)

  it("ends a receive with closed, and the close has its reason", function()
    local p = mc.connect(R.unix_address())
    made[#made + 1] = p
    local reason
    p:addEventListener("close", function(e) reason = e.reason end)
    assert.same({ nil, "closed" }, { p:receive(5 * R.SLOW) })
    assert.is_true(mc.run(5 * R.SLOW))
    assert.equal("refused", reason)
  end)

  it("reaches the port where it was moved before the turn", function()
    local p = mc.connect(R.unix_address())
    local ch = mc.MessageChannel()
    made[#made + 1] = ch.port1
    made[#made + 1] = ch.port2
    local reason, moved
    ch.port2.onmessage = function(e)
      moved = e.data
      moved.onclose = function(c) reason = c.reason end
    end
    assert.is_true(ch.port1:postMessage(p, { p }))
    assert.is_true(mc.run(5 * R.SLOW))
    assert.is_not_nil(moved)
    assert.equal("refused", reason)
  end)

  it("reaches a worker the port was given to", function()
    local p = mc.connect(R.unix_address())
    local w = mc.Worker([[
      local mc = require "messagechannel"
      mc.workerData.onclose = function(e)
        mc.parentPort:postMessage(e.reason or "nil")
      end
    ]], { eval = true, data = p, transfer = { p } })
    local said
    w.onmessage = function(e) said = e.data; w:terminate() end
    assert.is_true(mc.run(10 * R.SLOW))
    assert.equal("refused", said)
  end)

  it("lets the pair go when the port is closed first", function()
    local p = mc.connect(R.unix_address())
    local events = 0
    p.onclose = function() events = events + 1 end
    p:close()
    assert.is_true(mc.run(5 * R.SLOW))
    assert.equal(1, events)
    assert.same({}, errors)
  end)
end)
