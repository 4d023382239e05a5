-- mc.listen("unix:/path") looks whether a socket file left at the path is
-- stale (nobody accepts there) by connecting to it. That connect blocked:
-- at a live listener whose backlog was full (its process stopped, or
-- slow to accept), mc.listen hung for as long as the backlog stayed full,
-- instead of raising "address in use" (API.md 12). The look does not
-- block now: a full backlog means someone listens.

local mc = require "messagechannel"
local R = require "spec.remote.helper"

describe("regress: mc.listen at a live Unix listener with a full backlog", function()
  local errors, made = R.specs(5, before_each, after_each)

  it("raises 'address in use' at once", function()
    local peer, address = R.listening_peer(R.unix_address())
    assert.is_true(peer:stop())
    for i = 1, 200 do made[i] = mc.connect(address) end  -- over the backlog
    mc.run(0.3)
    local second = R.peer("listen", address)
    local what = second:expect(".-(listen: address in use)", 10 * R.SLOW)
    assert.truthy(what)
    peer:signal("CONT")
    assert.same({}, errors)
  end)
end)
