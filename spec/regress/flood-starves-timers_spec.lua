-- A worker that posts faster than the main state's listener takes its
-- messages made each scheduler turn longer than the one before: a turn
-- took every message that had arrived when it began, which was what
-- arrived during the turn before, so turns grew about as fast as the
-- producer outpaced the listener. Sleeping tasks and timers waited behind
-- them (a 0.1 s sleep woke after 0.27 s, then 1.1 s, then 5.7 s) and
-- mc.run(timeout) returned seconds late, though API.md 3.1 has a chain of
-- messages never starve sleeping tasks or timers (the fault Node fixed in
-- nodejs/node#29315 and Bun in oven-sh/bun#36314); and the luv and
-- cqueues adapters' steps took ever longer, so the host loop's own timers
-- and I/O waited too. Now a turn ends early once a timer falls due or the
-- deadline passes, and an adapter's step after 50 ms; the timers run
-- first in the next turn. A task that received in a loop never yielded
-- while each receive found a message queued: it now pauses there too
-- (where Lua tells that it can).
-- Each message takes its listener (or receiving task) 1 ms, a clock wait,
-- and the worker posts one about every 0.2 ms, so the backlog grows
-- whatever the machine's speed; the bounds are generous (helper.WAIT),
-- which the old turns, growing about five times from one to the next,
-- far exceed.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: a flood from a worker does not starve timers", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  -- to the port given as the worker's data, or to its parent
  local FLOOD = [[
    local mc = require "messagechannel"
    local to = mc.workerData or mc.parentPort
    while true do
      to:postMessage("m")
      mc.sleep(0.0002)
    end]]

  -- `seconds` of the clock, spent here
  local function busy(seconds)
    local t = mc.now()
    repeat until mc.now() - t >= seconds
  end

  -- 1 ms of the clock, unless done() says stop
  local function slow(done)
    if not done() then busy(0.001) end
  end

  it("sleeping tasks wake while messages keep coming", function()
    local w = start(FLOOD)
    local finished, got = false, 0
    w.onmessage = function()
      got = got + 1
      slow(function() return finished end)
    end
    local woke = {}
    mc.spawn(function()
      for i = 1, 10 do
        mc.sleep(0.05)
        woke[i] = got
      end
      finished = true
      w:terminate()
    end)
    assert.is_true(mc.run(helper.WAIT))
    assert.are.equal(10, #woke)
    assert.is_true(woke[10] > 0)  -- the listener ran meanwhile
    assert.same({}, errors)
  end)

  it("a task that receives in a loop lets timers run", function()
    if not rawget(coroutine, "isyieldable") then
      return pending("Lua 5.1 and 5.2 cannot tell whether a task can pause")
    end
    local ch = mc.MessageChannel()
    local w = start(FLOOD, { data = ch.port2, transfer = { ch.port2 } })
    local receiving, got = true, 0
    mc.spawn(function()
      local started = mc.now()
      while receiving and mc.now() - started < helper.WAIT do
        if ch.port1:receive(1) then got = got + 1 end
        slow(function() return false end)
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

  it("a receiving task that pauses still gets its messages before listeners", function()
    if not rawget(coroutine, "isyieldable") then
      return pending("Lua 5.1 and 5.2 cannot tell whether a task can pause")
    end
    local ch = mc.MessageChannel()
    for i = 1, 400 do ch.port1:postMessage(i) end
    local listened, got = 0, {}
    mc.spawn(function()  -- timers that fall due while it receives
      for _ = 1, 5 do mc.sleep(0.02) end
    end)
    mc.spawn(function()
      for _ = 1, 400 do
        got[#got + 1] = ch.port2:receive(helper.WAIT).data
        busy(0.0005)
      end
    end)
    ch.port2.onmessage = function() listened = listened + 1 end
    assert.is_true(mc.run(helper.WAIT))
    assert.are.equal(0, listened)
    assert.are.equal(400, #got)
    for i = 1, 400 do assert.are.equal(i, got[i]) end
    ch.port1:close()
    assert.same({}, errors)
  end)

  -- what a turn that ends early must keep (found by the reviews of the
  -- change): each case has timers fall due while a task is busy

  it("a receive that waits while a message is queued still gets it", function()
    local ch = mc.MessageChannel()
    for i = 1, 5 do ch.port1:postMessage(i) end
    local log = {}
    mc.spawn(function() mc.sleep(0.001) end)
    mc.spawn(function()
      busy(0.003)
      for _ = 1, 5 do
        local ev, why = ch.port2:receive(0.001)
        log[#log + 1] = ev and ev.data or why
      end
    end)
    mc.spawn(function()
      for _ = 1, 5 do
        busy(0.002)
        coroutine.yield()
      end
    end)
    assert.is_true(mc.run(helper.WAIT))
    assert.same({ 1, 2, 3, 4, 5 }, log)
    ch.port1:close()
    assert.same({}, errors)
  end)

  it("mc.receive in a loop still takes the oldest message first", function()
    local b, c = mc.MessageChannel(), mc.MessageChannel()
    local want = {}
    for i = 1, 30 do
      b.port1:postMessage("b" .. i)
      c.port1:postMessage("c" .. i)
      want[#want + 1], want[#want + 2] = "b" .. i, "c" .. i
    end
    b.port1:close()
    c.port1:close()
    local got, fin = {}, nil
    mc.spawn(function()
      for _ = 1, 10 do mc.sleep(0.003) end
    end)
    mc.spawn(function()
      while true do
        local ev, why = mc.receive({ b.port2, c.port2 })
        if not ev then
          fin = why
          break
        end
        got[#got + 1] = ev.data
        busy(0.001)
      end
    end)
    assert.is_true(mc.run(helper.WAIT))
    assert.same(want, got)
    assert.are.equal("closed", fin)
    assert.same({}, errors)
  end)

  it("sleep(0) still comes after the tasks that were ready before it", function()
    local log = {}
    mc.spawn(function() mc.sleep(0.001) end)
    mc.spawn(function()
      busy(0.003)
      mc.spawn(function() log[#log + 1] = "b" end)
      log[#log + 1] = "a1"
      mc.sleep(0)
      log[#log + 1] = "a2"
    end)
    assert.is_true(mc.run(helper.WAIT))
    assert.same({ "a1", "b", "a2" }, log)
    assert.same({}, errors)
  end)

  it("sleep(0) tasks woken after a turn that ended early keep their order", function()
    local log = {}
    mc.spawn(function() mc.sleep(0.001) end)
    for i = 1, 3 do
      mc.spawn(function()
        mc.sleep(0)
        log[#log + 1] = i
      end)
    end
    mc.spawn(function() busy(0.003) end)
    assert.is_true(mc.run(helper.WAIT))
    assert.same({ 1, 2, 3 }, log)
    assert.same({}, errors)
  end)

  it("the luv adapter's steps end, so that luv's own timers run", function()
    local ok, uv = pcall(require, "luv")
    if not ok then return pending("luv is not installed for " .. _VERSION) end
    local adapter = require "messagechannel.luv"
    local w = start(FLOOD)
    local finished = false
    w.onmessage = function() slow(function() return finished end) end
    local timer, ticks, started = uv.new_timer(), 0, mc.now()
    timer:start(50, 50, function()
      ticks = ticks + 1
      if ticks == 10 or mc.now() - started > helper.WAIT then
        timer:close()
        finished = true
        w:terminate()
      end
    end)
    adapter.start()
    uv.run()
    adapter.stop()
    assert.are.equal(10, ticks)
    assert.same({}, errors)
  end)

  it("the cqueues adapter's steps end, so that other cqueues tasks run", function()
    local ok, cqueues = pcall(require, "cqueues")
    if not ok then
      return pending("cqueues is not installed for " .. _VERSION)
    end
    local adapter = require "messagechannel.cqueues"
    local w = start(FLOOD)
    local finished = false
    w.onmessage = function() slow(function() return finished end) end
    local cq = cqueues.new()
    adapter.attach(cq)
    local ticks, started = 0, mc.now()
    cq:wrap(function()
      while ticks < 10 and mc.now() - started < helper.WAIT do
        cqueues.sleep(0.05)
        ticks = ticks + 1
      end
      finished = true
      w:terminate()
    end)
    assert(cq:loop())
    assert.are.equal(10, ticks)
    assert.same({}, errors)
  end)

  it("mc.run(timeout) returns at its deadline", function()
    local w = start(FLOOD)
    local stop = false
    w.onmessage = function() slow(function() return stop end) end
    -- each run ends once the deadline passed: at most a few messages late
    -- (the old turns grew about five times each, and outgrew the bound
    -- by the second or third run)
    local took = {}
    for i = 1, 5 do
      local started = mc.now()
      local r = mc.run(0.3)
      took[i] = mc.now() - started
      assert.is_false(r)
    end
    stop = true
    w:terminate()
    assert.is_true(mc.run(helper.WAIT))
    for i = 1, 5 do assert.is_true(took[i] < 0.3 + 1.5, took[i]) end
    assert.same({}, errors)
  end)
end)
