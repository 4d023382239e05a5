-- A task's postMessage waiting for room at a full bounded partner,
-- resumed by code other than the scheduler (coroutine.resume of the
-- coroutine mc.spawn returned; a luv-style helper), returned what that
-- code passed ("junk") while its post still waited and was sent later:
-- the task took a post for failed, or for done, that was neither. And a
-- wait for room that started under such a resume (the task yields to
-- that code, not to the scheduler) was undone: the post was dropped and
-- postMessage said "timeout" though it had none. API.md 11 (postMessage
-- waits for room and returns true, or false and "timeout" or "closed"),
-- 10 (a task is never resumed with wrong values). Such a resume now
-- finds the wait not over, and the task yields again at once, as a
-- receive's does (spec/regress/foreign-resume). postMessage sees that
-- when resumed only where Lua has continuations (5.2 and later).

local mc = require "messagechannel"

local continuations = _VERSION ~= "Lua 5.1"

describe("regress: a task's postMessage waiting for room, resumed by other code", function()
  after_each(function() mc.run(5) end)

  if not continuations then
    it("(" .. _VERSION .. (rawget(_G, "jit") and " (LuaJIT)" or "")
       .. " has no continuations: such a resume ends the wait)", function()
      pending("postMessage cannot see, when resumed, whether its wait is over")
    end)
    return
  end

  -- A capacity-1 channel whose queue port1 -> port2 is full.
  local function full()
    local ch = mc.MessageChannel({ capacity = 1 })
    assert.is_true(ch.port1:postMessage("first"))
    return ch
  end

  local function drain(port)
    local got = {}
    while port:pending() > 0 do
      got[#got + 1] = port:receive(0).data
    end
    return got
  end

  it("goes on waiting, and its post is sent once, in order", function()
    local ch, res = full(), nil
    local task = mc.spawn(function()
      res = { ch.port1:postMessage("second") }
    end)
    mc.step()
    assert.is_nil(res)
    assert.is_true((coroutine.resume(task, false, "junk")))
    assert.is_nil(res)
    assert.are.same({ "first" }, drain(ch.port2))
    assert.is_true(mc.run(5))
    assert.are.same({ true }, res)
    assert.are.same({ "second" }, drain(ch.port2))
  end)

  it("with a timeout: the timeout still ends it, and nothing is sent", function()
    local ch, res = full(), nil
    local task = mc.spawn(function()
      res = { ch.port1:postMessage("second", { timeout = 0.01 }) }
    end)
    mc.step()
    assert.is_true((coroutine.resume(task, true)))
    assert.is_nil(res)
    assert.is_true(mc.run(5))
    assert.are.same({ false, "timeout" }, res)
    assert.are.same({ "first" }, drain(ch.port2))
  end)

  it("when the partner closes, says closed", function()
    local ch, res = full(), nil
    local task = mc.spawn(function()
      res = { ch.port1:postMessage("second") }
    end)
    mc.step()
    assert.is_true((coroutine.resume(task, true)))
    ch.port2:close()
    assert.is_true(mc.run(5))
    assert.are.same({ false, "closed" }, res)
  end)

  it("when the wait starts under it: the wait stands and the post is sent", function()
    local ch, res = full(), nil
    local task = mc.spawn(function()
      coroutine.yield()  -- a helper's bare yield, as sleep(0)
      res = { ch.port1:postMessage("second") }
    end)
    mc.step()
    assert.is_true((coroutine.resume(task)))  -- the helper's callback
    assert.is_nil(res)
    mc.spawn(function()
      mc.sleep(0.01)
      assert.are.same({ "first" }, drain(ch.port2))
    end)
    assert.is_true(mc.run(5))
    assert.are.same({ true }, res)
    assert.are.same({ "second" }, drain(ch.port2))
  end)

  it("in a dispatchEvent listener inside the task too", function()
    local ch, res = full(), nil
    ch.port1:addEventListener("go", function()
      res = { ch.port1:postMessage("second") }
    end)
    local task = mc.spawn(function() ch.port1:dispatchEvent({ type = "go" }) end)
    mc.step()
    assert.is_true((coroutine.resume(task, "junk")))
    assert.is_nil(res)
    assert.are.same({ "first" }, drain(ch.port2))
    assert.is_true(mc.run(5))
    assert.are.same({ true }, res)
    assert.are.same({ "second" }, drain(ch.port2))
  end)
end)
