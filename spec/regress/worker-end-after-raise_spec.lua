-- A worker's end was lost when anything cut its dispatch short. The end
-- (the error event or the unhandled error, the drain of its port, then
-- the exit event) ran as one task made when the end was seen: an error
-- raised out of the loop on purpose (a worker's error that no listener
-- and no mc.onerror takes) or an allocation that failed ended that task,
-- and the exit event never came. A worker's end now stays with the
-- scheduler until it is dispatched whole; each step runs once, and the
-- next mc.run() goes on from where the last one stopped.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: a worker's end cut short #threads", function()
  local save, restore = helper.onerror_keeper()
  before_each(save)
  after_each(restore)

  it("still dispatches the exit after the unhandled error raised out of mc.run", function()
    mc.onerror = nil
    local w = mc.Worker([[error("boom", 0)]], { eval = true })
    local exits, code = 0, nil
    w.onexit = function(ev)
      exits = exits + 1
      code = ev.code
    end
    local ok, err = pcall(mc.run, helper.WAIT)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("Error in worker %d+: boom"), tostring(err))
    assert.equal(0, exits)
    assert.is_true(mc.run(helper.WAIT))
    assert.equal(1, exits)
    assert.equal(1, code)
    assert.is_true(mc.run(1))
    assert.equal(1, exits)
  end)

  it("dispatches the error event once and then the exit, in that order", function()
    local w = mc.Worker([[error("boom", 0)]], { eval = true })
    local log = {}
    w.onerror = function(ev)
      log[#log + 1] = "error " .. tostring(ev.error)
      error("listener fails too")
    end
    w.onexit = function(ev) log[#log + 1] = "exit " .. ev.code end
    local reports = 0
    mc.onerror = function() reports = reports + 1 end
    assert.is_true(mc.run(helper.WAIT))
    assert.same({ "error boom", "exit 1" }, log)
    assert.equal(1, reports)
  end)
end)
