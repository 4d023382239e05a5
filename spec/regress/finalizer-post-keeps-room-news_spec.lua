-- A BroadcastChannel post that finds news from another thread at the hub
-- runs a poll's merge itself (mc_recv_kick_posted_here), taking the
-- hub's ids. A finalizer can make that post between a bounded port's
-- postMessage finding its partner full (and asking to be told of room)
-- and the scheduler's waitroom marking the port as writing: the merge
-- then took the port's room news and dropped it, as the port had no
-- waiting post yet, and room is told once. The post waited for ever
-- (seen as a worker's reads stopping at a fixed count under a collector
-- made to run at every allocation, 3 runs in 30 on Lua 5.4; the count
-- hook below opens the same window every time, on every version). A
-- post's merge now keeps a bounded port's news for the next poll.
--
-- The hook runs a full collection at the first instruction of waitroom,
-- the Lua function postMessage calls once the partner is full; the
-- finalizer it runs there makes the room (receive(0) at the partner) and
-- then broadcasts to a channel of this state, whose post merges.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: a finalizer's broadcast while a post waits for room",
         function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  local name = helper.namer("regress.finalizer-post-room.")

  -- Sets a count hook on co that, at the first instruction of a Lua
  -- function of the scheduler called from C (waitroom), drops the one
  -- reference to an object whose finalizer calls fin, and collects.
  local function at_waitroom(co, fin)
    local obj = helper.on_gc(function() fin() end)
    local fired = false
    local function hook()
      local here, caller = debug.getinfo(2, "S"), debug.getinfo(3, "S")
      if fired or not (here and here.short_src:find("scheduler", 1, true)
                       and caller and caller.what == "C") then
        return
      end
      fired = true
      if co then debug.sethook(co) else debug.sethook() end
      obj = nil
      collectgarbage()
      collectgarbage()
    end
    if co then
      debug.sethook(co, hook, "", 1)
    else
      debug.sethook(hook, "", 1)
    end
    return function() return fired, obj == nil end
  end

  -- A full bounded pair, a channel of this state that hears a's posts,
  -- and the finalizer: room at port2, then a's post (which merges, the
  -- room's news waiting at the hub).
  local function setup()
    local ch = mc.MessageChannel({ capacity = 1 })
    local nm = name()
    local a, b = mc.BroadcastChannel(nm), mc.BroadcastChannel(nm)
    local heard = {}
    b.onmessage = function(e) heard[#heard + 1] = e.data end
    b:unref()  -- so that a run ends once nothing is left to do
    assert.is_true(ch.port1:postMessage(1))  -- port2 holds 1: full
    local taken = {}
    local function fin()
      local ev = ch.port2:receive(0)
      taken[#taken + 1] = ev and ev.data
      a:postMessage("from __gc")
    end
    return ch, a, b, heard, taken, fin
  end

  -- Closes what setup made; nothing went to mc.onerror.
  local function finish(ch, a, b)
    a:close()
    b:close()
    ch.port1:close()
    helper.run()
    assert.same({}, errors)
  end

  it("wakes a task's post once the room comes", function()
    local ch, a, b, heard, taken, fin = setup()
    local result, done, fired, dropped = nil, false, nil, nil
    mc.spawn(function()
      local check = at_waitroom(coroutine.running(), fin)
      result = ch.port1:postMessage(2)
      done = true
      fired, dropped = check()
    end)
    helper.run()
    assert.is_true(done)
    assert.is_true(fired)
    assert.is_true(dropped)
    assert.same({ 1 }, taken)
    assert.same({ "from __gc" }, heard)
    assert.is_true(result)
    assert.equal(1, ch.port2:pending())
    assert.equal(2, ch.port2:receive(0).data)
    finish(ch, a, b)
  end)

  it("returns a post made outside any task once the room comes",
     function()
    local ch, a, b, heard, taken, fin = setup()
    local check = at_waitroom(nil, fin)
    local ok, result = pcall(ch.port1.postMessage, ch.port1, 2)
    debug.sethook()
    local fired, dropped = check()
    assert.is_true(fired)
    assert.is_true(dropped)
    assert.is_true(ok, result)
    assert.is_true(result)
    assert.same({ 1 }, taken)
    helper.run()
    assert.same({ "from __gc" }, heard)
    assert.equal(2, ch.port2:receive(0).data)
    finish(ch, a, b)
  end)
end)
