-- A wait inside a task registers itself (a waiter, a timer, a held post),
-- then yields. Where the yield fails (in string.gsub's function or
-- table.sort's comparator on every version; inside pcall on Lua 5.1),
-- the task can catch the error, and the registration stayed: the stale
-- waiter took the next message, which was lost, and the stale timer woke
-- the task's next sleep early (or resumed a dead coroutine, an error for
-- mc.onerror); a held post was sent although postMessage raised. A wait
-- the task did not yield for is now undone before the task waits again
-- and before the scheduler goes on.
--
-- Also here: cancelled timers (a receive with a long timeout that a
-- message ended) piled up in the timer heap until their time came.

local helper = require "spec.helper"
local mc = require "messagechannel"

-- Calls f where a yield fails, and returns the error.
local function unyieldable(f)
  local ok, err = pcall(string.gsub, "a", "a", function() f() return "" end)
  assert.is_false(ok)
  return tostring(err)
end

describe("regress: a wait whose yield failed leaves nothing behind", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  it("receive: the next message is not lost", function()
    local ch, log = mc.MessageChannel(), {}
    mc.spawn(function()
      local err = unyieldable(function() ch.port1:receive() end)
      log[#log + 1] = err:find("yield", 1, true) ~= nil
      ch.port2:postMessage("important")
      local ev, why = ch.port1:receive(10)
      log[#log + 1] = ev and ev.data or why
      ch.port1:close()
    end)
    helper.run()
    assert.same({ true, "important" }, log)
    assert.same({}, errors)
  end)

  it("receive with a timeout: its timer does not fire into a later wait", function()
    local ch, log = mc.MessageChannel(), {}
    mc.spawn(function()
      unyieldable(function() ch.port1:receive(0.001) end)
      local other = mc.MessageChannel()
      mc.spawn(function() mc.sleep(0.05); other.port2:postMessage("later") end)
      local ev, why = other.port1:receive(10)
      log[#log + 1] = ev and ev.data or why
      other.port1:close()
      ch.port1:close()
    end)
    helper.run()
    assert.same({ "later" }, log)
    assert.same({}, errors)
  end)

  it("sleep: a later sleep, or receive, is not woken by the stale timer", function()
    local ch, log = mc.MessageChannel(), {}
    mc.spawn(function()
      local ok = pcall(table.sort, { 3, 2, 1 }, function(a, b)
        mc.sleep(0.001)
        return a < b
      end)
      log[#log + 1] = ok
      mc.spawn(function() mc.sleep(0.05); ch.port2:postMessage("woken by this") end)
      local ev, why = ch.port1:receive()
      log[#log + 1] = ev and ev.data or why
      ch.port1:close()
    end)
    helper.run()
    assert.same({ false, "woken by this" }, log)
    assert.same({}, errors)
  end)

  it("mc.receive: the next message is not lost", function()
    local a, b, log = mc.MessageChannel(), mc.MessageChannel(), {}
    mc.spawn(function()
      unyieldable(function() mc.receive({ a.port1, b.port1 }) end)
      b.port2:postMessage("to b")
      local ev, port = mc.receive({ a.port1, b.port1 }, 10)
      log[#log + 1] = ev and ev.data
      log[#log + 1] = port == b.port1
      a.port1:close()
      b.port1:close()
    end)
    helper.run()
    assert.same({ "to b", true }, log)
    assert.same({}, errors)
  end)

  it("postMessage at a full bounded partner: the post that raised is not sent", function()
    local ch, log = mc.MessageChannel({ capacity = 1 }), {}
    mc.spawn(function()
      assert.is_true(ch.port1:postMessage("first"))
      unyieldable(function() ch.port1:postMessage("raised") end)
      log[#log + 1] = ch.port2:receive(0).data
      mc.spawn(function() mc.sleep(0.02); ch.port1:close() end)
      local ev, why = ch.port2:receive()
      log[#log + 1] = ev and ev.data or why
    end)
    helper.run()
    assert.same({ "first", "closed" }, log)
    assert.same({}, errors)
  end)

  it("a listener's failed wait does not take the next message in the same turn", function()
    -- b's token is queued in this turn before the listener of a runs; the
    -- listener takes b's message, fails to wait at b, and posts to b: the
    -- runner's next token delivers that post at b
    local a, b, log = mc.MessageChannel(), mc.MessageChannel(), {}
    a.port1.onmessage = function()
      log[#log + 1] = b.port1:receive(0).data
      unyieldable(function() b.port1:receive() end)
      b.port2:postMessage("important")
    end
    b.port1.onmessage = function(e) log[#log + 1] = e.data end
    a.port2:postMessage(1)
    b.port2:postMessage("first")
    mc.spawn(function()
      mc.sleep(0.01)
      a.port1:close()
      b.port1:close()
    end)
    helper.run()
    assert.same({ "first", "important" }, log)
    assert.same({}, errors)
  end)

  it("a dispatchEvent listener's failed wait, inside a task that cannot yield", function()
    -- the listener's own coroutine can yield, the task passing it on cannot
    local ch, log = mc.MessageChannel(), {}
    local a, b = ch.port1, ch.port2
    a:addEventListener("ping", function() a:receive() end)
    mc.spawn(function()
      log[#log + 1] = pcall(table.sort, { 3, 2, 1 }, function(x, y)
        a:dispatchEvent({ type = "ping" })
        return x < y
      end)
      mc.spawn(function() b:postMessage("m1") end)
      local ev, why = a:receive(10)
      log[#log + 1] = ev and ev.data or why
      a:close()
    end)
    helper.run()
    assert.same({ false, "m1" }, log)
    assert.same({}, errors)
  end)

  it("a dispatchEvent listener's post waiting for room, inside such a task", function()
    local ch, log = mc.MessageChannel({ capacity = 1 }), {}
    local target = mc.MessageChannel().port1
    assert.is_true(ch.port1:postMessage("first"))
    target:addEventListener("go", function() ch.port1:postMessage("raised") end)
    mc.spawn(function()
      log[#log + 1] = pcall(table.sort, { 2, 1 }, function(x, y)
        target:dispatchEvent({ type = "go" })
        return x < y
      end)
      log[#log + 1] = ch.port2:receive(0).data
      mc.spawn(function() ch.port1:close() end)
      local ev, why = ch.port2:receive(10)
      log[#log + 1] = ev and ev.data or why
    end)
    helper.run()
    assert.same({ false, "first", "closed" }, log)
  end)

  it("after many failed waits the task still waits as it should", function()
    local ch, got = mc.MessageChannel(), nil
    mc.spawn(function()
      for _ = 1, 1000 do
        unyieldable(function() ch.port1:receive() end)
        unyieldable(function() mc.sleep(0.001) end)
      end
      mc.spawn(function() ch.port2:postMessage("one") end)
      got = ch.port1:receive(10)
      ch.port1:close()
    end)
    helper.run()
    assert.equal("one", got and got.data)
    assert.same({}, errors)
  end)

  if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then  -- no yield across pcall
    it("inside pcall", function()
      local ch, log = mc.MessageChannel(), {}
      mc.spawn(function()
        log[#log + 1] = pcall(ch.port1.receive, ch.port1)
        ch.port2:postMessage("kept")
        log[#log + 1] = ch.port1:receive(10).data
        ch.port1:close()
      end)
      helper.run()
      assert.same({ false, "kept" }, log)
      assert.same({}, errors)
    end)
  end
end)

describe("regress: cancelled timers do not pile up", function()
  it("a loop of long receives that messages end keeps the heap small", function()
    local ch, N, got = mc.MessageChannel(), 200000, 0
    collectgarbage()
    collectgarbage()
    local before = collectgarbage("count")
    mc.spawn(function()
      for _ = 1, N do
        if ch.port1:receive(3600) then got = got + 1 end
      end
      ch.port1:close()
    end)
    mc.spawn(function()
      for i = 1, N do
        ch.port2:postMessage(i)
        mc.sleep(0)
      end
    end)
    assert.is_true(mc.run(60))
    collectgarbage()
    collectgarbage()
    assert.equal(N, got)
    -- each of the 200,000 cancelled timers took 20 bytes or more
    assert.is_true(collectgarbage("count") - before < 1024)
  end)
end)
