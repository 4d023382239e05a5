-- mc.run(timeout) ignored its timeout once it was idle and waited for
-- remote links to drain (a connect under way, a close not yet read by
-- the peer): with a peer that took nothing (stopped, or never answering),
-- mc.run(0.3) returned true, as if idle, after three heartbeats (15 s by
-- default). API.md 6.1: mc.run(timeout) returns false when the timeout
-- passes.

local mc = require "messagechannel"
local R = require "spec.remote.helper"

describe("regress: mc.run(timeout) keeps its timeout while links drain", function()
  local errors, made = R.specs(5, before_each, after_each)

  -- A listening peer, stopped: its kernel takes the connection, nobody
  -- answers.
  local function stopped_peer()
    local peer, address = R.listening_peer(R.unix_address())
    assert.is_true(peer:stop())
    return peer, address
  end

  it("a connect the peer never answers", function()
    local peer, address = stopped_peer()
    local p = mc.connect(address)
    made[#made + 1] = p
    p:postMessage("x")
    assert.is_false(mc.run(0.3))
    peer:signal("CONT")
    assert.same({}, errors)
  end)

  it("mc.run(0) of an idle state is true while the network thread runs", function()
    -- idle first: the link of the spec before may still drain (its peer
    -- killed after it), which mc.run(0) rightly does not wait for
    assert.is_true(mc.run(30))
    local l = mc.listen(R.unix_address())
    made[#made + 1] = l
    l:unref()
    for _ = 1, 20 do assert.is_true(mc.run(0)) end
    assert.same({}, errors)
  end)

  it("a close the peer never reads", function()
    local peer, address = stopped_peer()
    local p = mc.connect(address)
    p:postMessage("x")
    p:close()
    assert.is_false(mc.run(0.3))
    peer:signal("CONT")
    assert.same({}, errors)
  end)
end)
