-- A task waiting in receive, mc.receive or sleep, resumed by code other
-- than the scheduler (coroutine.resume of the coroutine mc.spawn
-- returned; a luv-style helper whose timer callback resumes a coroutine
-- it yielded from before), returned that code's values from the wait and
-- left its waiter or timer behind: receive returned "junk", the next
-- message went to the stale waiter and was lost, and a later sleep
-- returned at once, woken by it. API.md 6.3 (receive returns an event,
-- or nil and "timeout" or "closed"), 3.2 (nothing is dropped), 10 (a
-- task is never resumed with wrong values). Such a resume now finds the
-- wait not ended: the task yields again and goes on waiting.

local mc = require "messagechannel"

describe("regress: a waiting task resumed by other code goes on waiting", function()
  after_each(function() mc.run(5) end)

  it("in receive: the wait returns the message, and none is lost", function()
    local ch = mc.MessageChannel()
    local got = {}
    local task = mc.spawn(function()
      for _ = 1, 2 do
        local ev, why = ch.port2:receive()
        got[#got + 1] = ev and ev.data or why
      end
    end)
    mc.step()
    assert.is_true((coroutine.resume(task, "junk")))
    assert.are.same({}, got)
    ch.port1:postMessage("one")
    ch.port1:postMessage("two")
    assert.is_true(mc.run(5))
    assert.are.same({ "one", "two" }, got)
    assert.are.equal(0, ch.port2:pending())
  end)

  it("in receive with a timeout: the timeout still ends it", function()
    local ch = mc.MessageChannel()
    local res
    local task = mc.spawn(function()
      res = { ch.port2:receive(0.01) }
    end)
    mc.step()
    assert.is_true((coroutine.resume(task, "junk", "more")))
    assert.is_nil(res)
    assert.is_true(mc.run(5))
    assert.are.same({ nil, "timeout" }, res)
  end)

  it("in mc.receive: the wait returns the message and its port", function()
    local a, b = mc.MessageChannel(), mc.MessageChannel()
    local res
    local task = mc.spawn(function()
      res = { mc.receive({ a.port2, b.port2 }) }
    end)
    mc.step()
    assert.is_true((coroutine.resume(task, "junk")))
    assert.is_nil(res)
    b.port1:postMessage("x")
    assert.is_true(mc.run(5))
    assert.are.equal("x", res[1].data)
    assert.are.equal(b.port2, res[2])
  end)

  it("in sleep: the sleep does not end early, and a later receive is not cut short", function()
    local ch = mc.MessageChannel()
    local steps = {}
    local task = mc.spawn(function()
      mc.sleep(0.02)
      steps[#steps + 1] = "slept"
      local ev = ch.port2:receive()
      steps[#steps + 1] = ev and ev.data or "nothing"
    end)
    mc.step()
    assert.is_true((coroutine.resume(task)))
    assert.is_true((coroutine.resume(task, 1, 2)))
    assert.are.same({}, steps)
    mc.spawn(function()
      while #steps == 0 do mc.sleep(0.005) end
      mc.sleep(0.02)  -- a stale wake-up of the sleep has had its turn
      ch.port1:postMessage("late")
    end)
    assert.is_true(mc.run(5))
    assert.are.same({ "slept", "late" }, steps)
  end)

  -- A wait that starts under such a resume yields to that code, not to
  -- the scheduler. Where Lua cannot tell beforehand that a yield will
  -- go through (5.1, 5.2; a dispatchEvent listener's coroutine on every
  -- version), the scheduler took the wait it never saw yield for one
  -- whose yield failed, and undid it: receive returned nil, nil and the
  -- message stayed queued, a sleep ended at once.
  it("when the wait starts under it: the wait stands", function()
    local ch = mc.MessageChannel()
    local got = {}
    local task = mc.spawn(function()
      coroutine.yield()  -- a helper's bare yield, as sleep(0)
      for _ = 1, 2 do
        local ev, why = ch.port2:receive()
        got[#got + 1] = ev and ev.data or tostring(why)
      end
    end)
    mc.step()
    assert.is_true((coroutine.resume(task)))  -- the helper's callback
    mc.spawn(function()
      mc.sleep(0.01)
      ch.port1:postMessage("m1")
      ch.port1:postMessage("m2")
    end)
    assert.is_true(mc.run(5))
    assert.are.same({ "m1", "m2" }, got)
    assert.are.equal(0, ch.port2:pending())
  end)

  it("when a dispatchEvent listener's wait starts under it: the wait stands", function()
    local ch = mc.MessageChannel()
    local got = {}
    ch.port1:addEventListener("go", function()
      local ev, why = ch.port2:receive()
      got[#got + 1] = ev and ev.data or tostring(why)
    end)
    local task = mc.spawn(function() ch.port1:dispatchEvent({ type = "go" }) end)
    assert.is_true((coroutine.resume(task)))
    assert.are.same({}, got)
    mc.spawn(function()
      mc.sleep(0.01)
      ch.port1:postMessage("m")
    end)
    assert.is_true(mc.run(5))
    assert.are.same({ "m" }, got)
    assert.are.equal(0, ch.port2:pending())
  end)

  -- The wait that stands is one suspended in its own yield: one whose
  -- yield failed (caught by pcall) is undone, though its task is
  -- suspended elsewhere when the scheduler looks.
  it("a wait whose yield failed is undone, though its task yields to that code after", function()
    local ch = mc.MessageChannel()
    local log = {}
    local task = mc.spawn(function()
      coroutine.yield()
      local ok = pcall(table.sort, { 1, 2, 3 }, function(a, b)
        ch.port2:receive()
        return a < b
      end)
      log[#log + 1] = ok and "sorted" or "failed"
      local v = coroutine.yield()  -- to the code that resumed it
      log[#log + 1] = tostring(v)
      local ev, why = ch.port2:receive()
      log[#log + 1] = ev and ev.data or why
    end)
    mc.step()
    assert.is_true((coroutine.resume(task)))
    mc.spawn(function()
      mc.sleep(0.01)
      ch.port1:postMessage("m1")
      mc.sleep(0.01)
      coroutine.resume(task)
      mc.sleep(0.01)
      ch.port1:postMessage("m2")
    end)
    assert.is_true(mc.run(5))
    assert.are.same({ "failed", "nil", "m1" }, log)
    assert.are.equal(1, ch.port2:pending())
  end)

  it("resumed from another task: that task goes on, the waiting one still waits", function()
    local ch = mc.MessageChannel()
    local other = {}
    local waiting = mc.spawn(function()
      local ev = ch.port2:receive()
      other.got = ev.data
    end)
    mc.spawn(function()
      other.resumed = coroutine.resume(waiting, "junk")
      ch.port1:postMessage("real")
    end)
    assert.is_true(mc.run(5))
    assert.is_true(other.resumed)
    assert.are.equal("real", other.got)
  end)
end)
