-- Under messagechannel.luv, a scheduler that always had work ready (a
-- message chain that posts back, a task looping on mc.sleep(0) or a bare
-- coroutine.yield()) starved libuv's own loop: the adapter ran each
-- step from a 0 ms timer started in that timer's own callback, which
-- libuv runs again in the same pass, so no other timer, I/O or check
-- callback ran and the loop's clock stood still (API.md 10: tasks work as
-- under mc.run(); 3.1: a chain never starves timers). Each case stops its
-- chain from a luv callback; the old adapter ran it until the bound below.

local mc = require "messagechannel"
local helper = require "spec.helper"

local BOUND = 100000  -- turns: far more than any loop iteration needs

local has_luv, uv = pcall(require, "luv")

describe("regress: messagechannel.luv with a scheduler that is always busy", function()
  if not has_luv then
    pending(helper.skipped("luv-busy-loop", "luv is not installed for " .. _VERSION))
    return
  end
  local adapter = require "messagechannel.luv"

  local errors, handle = helper.luv_specs(uv, adapter, 5, before_each, after_each)

  -- A check handle counts libuv's loop iterations while it runs.
  local function iterations()
    local n = { 0 }
    local check = handle(uv.new_check())
    check:start(function() n[1] = n[1] + 1 end)
    check:unref()
    return n
  end

  it("runs libuv's check callbacks between the turns of a task looping on sleep(0)", function()
    adapter.start()
    local loops, turns = iterations(), 0
    mc.spawn(function()
      while loops[1] < 3 and turns < BOUND do
        turns = turns + 1
        mc.sleep(0)
      end
    end)
    uv.run()
    assert.is_true(turns < BOUND, "libuv's loop did not run between turns")
    assert.same({}, errors)
  end)

  it("fires a libuv timer while a message chain posts back", function()
    adapter.start()
    local fired, hops = false, 0
    local timer = handle(uv.new_timer())
    timer:start(1, 0, function() fired = true end)
    local ch = mc.MessageChannel()
    ch.port2.onmessage = function()
      hops = hops + 1
      if fired or hops >= BOUND then ch.port2:close() return end
      ch.port1:postMessage(hops)
    end
    ch.port1:postMessage(0)
    uv.run()
    assert.is_true(fired)
    assert.is_true(hops < BOUND, "the libuv timer did not fire during the chain")
    assert.same({}, errors)
  end)

  it("lets a bare coroutine.yield() loop end from a libuv timer", function()
    adapter.start()
    local stop, turns = false, 0
    local timer = handle(uv.new_timer())
    timer:start(1, 0, function() stop = true end)
    mc.spawn(function()
      while not stop and turns < BOUND do
        turns = turns + 1
        coroutine.yield()
      end
    end)
    uv.run()
    assert.is_true(stop)
    assert.is_true(turns < BOUND, "the libuv timer did not fire during the loop")
    assert.same({}, errors)
  end)
end)
