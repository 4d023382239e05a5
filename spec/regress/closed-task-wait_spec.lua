-- Lua 5.4's coroutine.close on a task (the coroutine mc.spawn returns)
-- while it waited left its wait behind: the next message was handed to
-- the dead task and lost (API.md 3.2: nothing is dropped), and mc.onerror
-- got "cannot resume dead coroutine"; a closed sleep kept mc.run() going
-- until its time; a closed bounded post was still sent once there was
-- room. And a task or listener that raised never closed its
-- to-be-closed variables (`local x <close>`), as the error would have on
-- its way out of a pcall or a coroutine.wrap. Then a listener's coroutine
-- closed while it waited in receive or mc.receive with no timeout, at a
-- port nothing posts to: the dispatch it was in still held its port's
-- close (API.md 3.4), nothing woke the dead coroutine to end that
-- listener, and mc.run() returned idle with the port's messageerror (the
-- closed listener, as an error) and close undelivered. The next turn now
-- ends such a wait, of any kind, and the listener with it. The same held
-- for a dispatchEvent listener's own coroutine (its wait was its task's:
-- the task hung in dispatchEvent, took the next message for the dead
-- listener, sent its post), a runner closed while it waited in the pool
-- (resumed later: mc.onerror got an error nothing raised), and a close
-- made by a task, which the loop then slept on until other news came.

local helper = require "spec.helper"
local mc = require "messagechannel"

local function skip(why) pending(helper.skipped("closed-task-wait", why)) end

describe("regress: a task closed while it waits, and to-be-closed variables", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  local close = rawget(coroutine, "close")
  if not close then
    it("needs Lua 5.4", function() skip("coroutine.close is Lua 5.4's") end)
    return
  end

  -- Spawns fn as a task, runs it into its wait, and closes it.
  local function closed_in_wait(fn)
    local co = mc.spawn(fn)
    mc.step()
    assert.equal("suspended", coroutine.status(co))
    assert.is_true(close(co))
  end

  it("a closed receive takes no message", function()
    local ch = mc.MessageChannel()
    for _ = 1, 3 do closed_in_wait(function() ch.port2:receive() end) end
    for i = 1, 5 do ch.port1:postMessage(i) end
    helper.run()
    local left = {}
    for _ = 1, 5 do left[#left + 1] = ch.port2:receive(0).data end
    assert.same({ 1, 2, 3, 4, 5 }, left)
    assert.same({}, errors)
    ch.port1:close()
  end)

  it("nor does a closed mc.receive, and a live receive after it gets the message", function()
    local a, b = mc.MessageChannel(), mc.MessageChannel()
    closed_in_wait(function() mc.receive({ a.port2, b.port2 }) end)
    local got
    mc.spawn(function() got = a.port2:receive().data end)
    mc.step()
    a.port1:postMessage("m")
    helper.run()
    assert.equal("m", got)
    assert.same({}, errors)
    a.port1:close()
    b.port1:close()
  end)

  it("a started port's listener gets the message a closed receive waited for", function()
    local ch = mc.MessageChannel()
    closed_in_wait(function() ch.port2:receive() end)
    local got = {}
    ch.port2.onmessage = function(e) got[#got + 1] = e.data end
    ch.port1:postMessage(1)
    helper.run()
    assert.same({ 1 }, got)
    assert.same({}, errors)
    ch.port1:close()
  end)

  it("a closed sleep does not keep mc.run() going", function()
    closed_in_wait(function() mc.sleep(3600) end)
    assert.is_nil(mc.timeout())
    assert.is_true(mc.run(helper.WAIT))
    assert.same({}, errors)
  end)

  it("a closed post waiting for room is not sent", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    ch.port1:postMessage(1)
    closed_in_wait(function() ch.port1:postMessage(2) end)
    assert.equal(1, ch.port2:receive(0).data)
    helper.run()
    assert.equal("timeout", select(2, ch.port2:receive(0)))
    assert.same({}, errors)
    ch.port1:close()
  end)

  -- Given up only once room came, such a post kept its transfer list lent
  -- and its place ahead of later posts while the reader took nothing.
  it("a closed post waiting for room is given up at the next turn, room or not", function()
    local ch, o = mc.MessageChannel({ capacity = 1 }), mc.MessageChannel()
    ch.port1:postMessage(0)
    local buf = mc.Buffer("abc")
    closed_in_wait(function()
      ch.port1:postMessage("x", { transfer = { buf, o.port2 } })
    end)
    mc.step()
    assert.equal(buf, buf:write(1, "q"))  -- not lent any more
    assert.is_false(buf.detached)
    assert.is_true(o.port2:postMessage("own port"))  -- nor the port
    assert.equal("own port", o.port1:receive(0).data)
    assert.equal(0, ch.port2:receive(0).data)
    -- room, and no post waits ahead: one that may not wait goes at once
    assert.is_true(ch.port1:postMessage("n", { timeout = 0 }))
    assert.equal("n", ch.port2:receive(0).data)
    assert.equal("timeout", select(2, ch.port2:receive(0)))
    assert.same({}, errors)
    ch.port1:close()
    o.port1:close()
  end)

  it("a task that raises closes its to-be-closed variables, then its error is reported", function()
    local log = {}
    local chunk = assert(load([[
      local mc, log = ...
      mc.spawn(function()
        local r <close> = setmetatable({}, { __close = function(_, e)
          log[#log + 1] = "closed: " .. tostring(e)
        end })
        error("fails", 0)
      end)
    ]]))
    mc.onerror = function(err) log[#log + 1] = "reported: " .. tostring(err) end
    chunk(mc, log)
    helper.run()
    assert.same({ "closed: fails", "reported: fails" }, log)
  end)

  it("so does a listener, whose error is the port's messageerror", function()
    local ch = mc.MessageChannel()
    local log = {}
    local listener = assert(load([[
      local log = ...
      return function()
        local r <close> = setmetatable({}, { __close = function()
          log[#log + 1] = "closed"
        end })
        error("fails", 0)
      end
    ]]))(log)
    ch.port2.onmessage = listener
    ch.port2.onmessageerror = function(e) log[#log + 1] = "messageerror: " .. e.error end
    ch.port1:postMessage(1)
    helper.run()
    assert.same({ "closed", "messageerror: fails" }, log)
    ch.port1:close()
  end)

  it("a listener's own coroutine closed by the program ends that listener, not its port", function()
    local ch, gate = mc.MessageChannel(), mc.MessageChannel()
    local log, listener_co = {}, nil
    ch.port2.onmessage = function()
      listener_co = coroutine.running()
      gate.port2:receive()
      log[#log + 1] = "after receive"
    end
    ch.port2.onclose = function() log[#log + 1] = "close" end
    ch.port1:postMessage(1)
    mc.step()
    mc.step()
    assert.is_true(close(listener_co))
    ch.port1:close()
    gate.port1:postMessage("go")
    helper.run()
    assert.same({ "close" }, log)
    assert.equal(1, #errors)  -- its end: cannot resume dead coroutine
    assert.equal("go", gate.port2:receive(0).data)  -- not handed to it
    gate.port1:close()
  end)

  it("a closed timed receive does not keep mc.run() going for a port abroad #threads", function()
    local ch = mc.MessageChannel()
    local w = mc.Worker([[
      local mc = require "messagechannel"
      local keep = mc.parentPort:receive().data
      mc.parentPort:postMessage("holding")
      mc.parentPort:receive()
    ]], { eval = true })
    w:postMessage(ch.port1, { ch.port1 })
    local got
    w.onmessage = function(e) got = e.data end
    while not got do mc.sleep(0.01) end
    assert.equal("holding", got)
    w:unref()
    closed_in_wait(function() ch.port2:receive(3600) end)
    assert.is_true(mc.run(60))
    w:terminate()
    assert.same({}, errors)
  end)

  -- ch.port2's listener waits, at its first message, as wait(other)
  -- does; its coroutine is closed there. Returns what port2 saw by the
  -- time mc.run() returned, and whether other.port2 still has the message
  -- posted to it afterwards.
  local function closed_listener(wait)
    local ch, other = mc.MessageChannel(), mc.MessageChannel()
    local seen, lco = {}, nil
    ch.port2.onmessage = function(e)
      if e.data == "first" then
        lco = coroutine.running()
        wait(other.port2)
        seen[#seen + 1] = "woke"  -- never: the coroutine is closed
      else
        seen[#seen + 1] = "got " .. e.data
      end
    end
    ch.port2.onmessageerror = function(e)
      seen[#seen + 1] = "messageerror " .. tostring(e.error)
    end
    ch.port2.onclose = function() seen[#seen + 1] = "close" end
    ch.port1:postMessage("first")
    mc.step()
    assert.equal("suspended", coroutine.status(lco))
    assert.is_true(close(lco))
    ch.port1:postMessage("second")
    ch.port1:close()
    assert.is_true(mc.run())
    local by_run = seen
    seen = {}
    other.port1:postMessage("x")  -- not taken by the closed wait
    local kept = other.port2:receive(0)
    other.port1:close()
    mc.run()
    return by_run, kept and kept.data, seen
  end

  local WAITS = {
    ["port:receive()"] = function(p) p:receive() end,
    ["mc.receive"] = function(p) mc.receive({ p }) end,
    ["port:receive with a timeout"] = function(p) p:receive(3600) end,
    ["mc.sleep(math.huge)"] = function() mc.sleep(math.huge) end,
  }

  for name, wait in pairs(WAITS) do
    it(name .. ": its messageerror and the port's close come in that run", function()
      local by_run, kept, later = closed_listener(wait)
      assert.same({ "got second", "messageerror cannot resume dead coroutine",
                    "close" }, by_run)
      assert.equal("x", kept)
      assert.same({}, later)
      assert.same({}, errors)
    end)
  end

  it("a closed wait no longer keeps the timers going", function()
    local by_run = closed_listener(function() mc.sleep(3600) end)
    assert.equal("close", by_run[#by_run])
    assert.is_nil(mc.timeout())
  end)

  it("a dispatchEvent listener's own coroutine: dispatchEvent returns, nothing is taken", function()
    local ch, a = mc.MessageChannel(), mc.MessageChannel()
    local lco, returned, second = nil, nil, false
    ch.port2:addEventListener("custom", function()
      lco = coroutine.running()
      a.port2:receive()
    end)
    ch.port2:addEventListener("custom", function() second = true end)
    local task = mc.spawn(function()
      returned = ch.port2:dispatchEvent({ type = "custom" })
    end)
    mc.step()
    assert.equal("suspended", coroutine.status(lco))
    assert.is_true(close(lco))
    assert.is_true(mc.run())
    assert.is_true(returned)
    assert.is_true(second)
    assert.equal("dead", coroutine.status(task))
    assert.equal(1, #errors)
    assert.truthy(tostring(errors[1].err):find("cannot resume dead coroutine", 1, true))
    a.port1:postMessage("a1")
    assert.equal("a1", a.port2:receive(0).data)
    a.port1:close()
    ch.port1:close()
  end)

  it("nor is its post sent, and its Buffer is its own again", function()
    local ch, b = mc.MessageChannel(), mc.MessageChannel({ capacity = 1 })
    b.port1:postMessage("B1")
    local buf, lco = mc.Buffer("abc"), nil
    ch.port2:addEventListener("custom", function()
      lco = coroutine.running()
      b.port1:postMessage("B2", { buf })
    end)
    mc.spawn(function() ch.port2:dispatchEvent({ type = "custom" }) end)
    mc.step()
    assert.is_true(close(lco))
    assert.is_true(mc.run())
    assert.equal("B1", b.port2:receive(0).data)
    assert.same({ nil, "timeout" }, { b.port2:receive(0) })
    assert.is_false(buf.detached)
    assert.equal("abc", buf:sub())
    assert.equal(1, #errors)
    b.port1:close()
    ch.port1:close()
  end)

  it("a runner closed while it waits in the pool raises nothing", function()
    local ch, runner = mc.MessageChannel(), nil
    local got = {}
    ch.port2.onmessage = function(e)
      runner = runner or coroutine.running()
      got[#got + 1] = e.data
    end
    ch.port1:postMessage(1)
    mc.run()
    assert.is_true(close(runner))
    ch.port1:postMessage(2)
    ch.port1:postMessage(3)
    mc.run()
    assert.same({ 1, 2, 3 }, got)
    assert.same({}, errors)
    ch.port1:close()
  end)

  it("a listener closed by a task is ended at the end of that turn", function()
    local ch, other = mc.MessageChannel(), mc.MessageChannel()
    local lco
    ch.port2.onmessage = function()
      lco = coroutine.running()
      other.port2:receive()
    end
    ch.port1:postMessage(1)
    mc.step()
    mc.spawn(function() close(lco) end)
    mc.step()  -- the task closes it; the loop would then sleep
    assert.equal("dead", coroutine.status(lco))
    assert.equal(0, mc.timeout())  -- work is ready: nothing to sleep on
    mc.run()
    assert.equal(1, #errors)
    ch.port1:close()
    other.port1:close()
  end)
end)
