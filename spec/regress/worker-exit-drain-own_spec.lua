-- A worker's scheduler, before its exit, waited for the remote links of
-- the whole process to drain, not for its own: a connect under way in
-- the main state, to a peer that never answered, held back the exit of a
-- worker that had nothing to do with it, for three of that link's
-- heartbeats (API.md 7: a worker runs its scheduler until idle, then
-- exits). A worker now waits for the links of its own ports; the main
-- state still waits for every link, since the process ends with it.

local mc = require "messagechannel"
local helper = require "spec.helper"
local R = require "spec.remote.helper"

describe("regress: a worker's exit waits for its own links only", function()
  local errors, made = R.specs(5, before_each, after_each)
  local workers = {}
  after_each(function() helper.terminate_all(workers) end)

  it("a connect of the main state that nobody answers does not hold it", function()
    local peer, address = R.listening_peer(R.unix_address())
    assert.is_true(peer:stop())
    local p = mc.connect(address, { heartbeat = 60 })
    made[1] = p
    local log = {}
    p.onclose = function(e) log[#log + 1] = "close " .. tostring(e.reason) end
    local rec = helper.record_worker(workers, [[
      mc.parentPort:postMessage("ran")
    ]], nil, log)
    -- the link would time out after 3 heartbeats (180 s): held by it, the
    -- worker would not exit within the wait
    R.await("the worker's exit", function() return rec.code ~= nil end)
    peer:signal("CONT")
    assert.same({ "message ran", "exit 0" }, log)  -- no close yet
    assert.equal(0, rec.code)
    assert.same({}, errors)
  end)

  -- (A review of the change found this: a link whose port a worker got
  -- and closed at once was not counted as the worker's.)
  it("a remote port it got and closed at once still holds it until drained", function()
    local peer, address = R.listening_peer(R.unix_address(), "heartbeat=60",
                                           "behave=idle")
    local p = mc.connect(address, { heartbeat = 60 })
    peer:expect("connect")
    assert.is_true(peer:stop())
    local log = {}
    -- the worker's drain ends only once the peer, continued, reads the
    -- close (3 heartbeats, 180 s, would give up on it): not before 1 s
    mc.spawn(function()
      mc.sleep(1)
      log[#log + 1] = "1 s"
      peer:signal("CONT")
    end)
    local rec = helper.record_worker(workers, [[
      mc.workerData:close()
    ]], { data = p, transfer = { p } }, log)
    assert.is_true(mc.run(R.WAIT))
    assert.same({ "1 s", "exit 0" }, log)
    assert.equal(0, rec.code)
    assert.same({}, errors)
  end)
end)
