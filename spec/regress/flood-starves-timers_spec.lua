-- A worker that posts faster than the main state's listener takes its
-- messages made each scheduler turn longer than the one before: a turn
-- took every message that had arrived when it began, which was what
-- arrived during the turn before, so turns grew about as fast as the
-- producer outpaced the listener. Sleeping tasks and timers waited behind
-- them (a 0.1 s sleep woke after 0.27 s, then 1.1 s, then 5.7 s) and
-- mc.run(timeout) returned seconds late, though API.md 3.1 has a chain of
-- messages never starve sleeping tasks or timers (the fault Node fixed in
-- nodejs/node#29315 and Bun in oven-sh/bun#36314); and a host loop's
-- mc.step() (luv, cqueues, select) took ever longer, so the loop's own
-- timers and I/O waited too. Now a turn ends early once a timer falls
-- due, the deadline passes or, in mc.step(), after 50 ms, and the timers
-- run first in the next turn. A task that received in a loop never
-- yielded while each receive found a message queued: it now pauses
-- there too (where Lua tells that it can).
-- Each message's listener here takes 1 ms (a clock wait), and the worker
-- posts one about every 0.2 ms, so the backlog grows whatever the
-- machine's speed; the bound is generous (helper.WAIT), which the old
-- turns, growing about five times from one to the next, far exceed.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: a flood from a worker does not starve timers", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  -- to the port given as the worker's data, or to its parent
  local FLOOD = [[
    local mc = require "messagechannel"
    local to = mc.workerData or mc.parentPort
    while true do
      to:postMessage("m")
      mc.sleep(0.0002)
    end]]

  -- a listener that takes about 1 ms a message until done() says stop
  local function slow_listener(done)
    local n = 0
    return function()
      n = n + 1
      if done() then return end
      local t = mc.now()
      repeat until mc.now() - t >= 0.001
    end, function() return n end
  end

  it("sleeping tasks wake while messages keep coming", function()
    local w = mc.Worker(FLOOD, { eval = true })
    local finished = false
    local listener, count = slow_listener(function() return finished end)
    w.onmessage = listener
    local woke = {}
    mc.spawn(function()
      for i = 1, 10 do
        mc.sleep(0.05)
        woke[i] = count()
      end
      finished = true
      w:terminate()
    end)
    assert.is_true(mc.run(helper.WAIT))
    assert.are.equal(10, #woke)
    assert.is_true(woke[10] > 0)  -- the listener ran meanwhile
    assert.same({}, errors)
  end)

  it("mc.step() returns, so that a host loop's own timers run", function()
    local w = mc.Worker(FLOOD, { eval = true })
    local finished = false
    w.onmessage = slow_listener(function() return finished end)
    -- a host loop with a timer of its own every 0.05 s, which only sees
    -- the clock between steps
    local started, ticks = mc.now(), 0
    local due = started + 0.05
    while ticks < 10 and mc.now() - started < helper.WAIT do
      mc.step()
      if mc.now() >= due then
        ticks = ticks + 1
        due = mc.now() + 0.05
      end
    end
    finished = true
    w:terminate()
    assert.is_true(mc.run(helper.WAIT))
    assert.are.equal(10, ticks)
    assert.same({}, errors)
  end)

  it("a task that receives in a loop lets timers run", function()
    if not rawget(coroutine, "isyieldable") then
      return pending("Lua 5.1 and 5.2 cannot tell whether a task can pause")
    end
    local ch = mc.MessageChannel()
    local w = mc.Worker(FLOOD, { eval = true, data = ch.port2,
                                 transfer = { ch.port2 } })
    -- each message takes the task 1 ms: the queue never empties, so every
    -- receive finds one at once
    local receiving, got = true, 0
    mc.spawn(function()
      local started = mc.now()
      while receiving and mc.now() - started < helper.WAIT do
        if ch.port1:receive(1) then got = got + 1 end
        local t = mc.now()
        repeat until mc.now() - t >= 0.001
      end
      receiving = false
    end)
    local during = 0
    mc.spawn(function()
      for _ = 1, 10 do
        mc.sleep(0.05)
        if receiving then during = during + 1 end
      end
      receiving = false
      w:terminate()
      ch.port1:close()
    end)
    assert.is_true(mc.run(helper.WAIT * 2))
    assert.are.equal(10, during)  -- each wake-up came while it received
    assert.is_true(got > 0)
    assert.same({}, errors)
  end)

  it("mc.run(timeout) returns at its deadline", function()
    local w = mc.Worker(FLOOD, { eval = true })
    local stop = false
    w.onmessage = slow_listener(function() return stop end)
    local started = mc.now()
    local r = mc.run(2)
    local took = mc.now() - started
    stop = true
    w:terminate()
    assert.is_true(mc.run(helper.WAIT))
    assert.is_false(r)
    -- a turn ends once the deadline passed: at most a few messages late
    -- (the old turns went on for several times the timeout)
    assert.is_true(took < 2 + 4, took)
    assert.same({}, errors)
  end)
end)
