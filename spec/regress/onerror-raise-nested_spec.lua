-- An error raised by mc.onerror itself propagates out of mc.run() /
-- mc.step() (API.md 6.1). When the listener error it was called for came
-- from a dispatchEvent inside another listener's dispatchEvent, each
-- listener call (in a task, a coroutine of its own) took what onerror
-- raised for an error of its own listener: inside a task mc.onerror was
-- then called a second time with the scheduler's internal marker (a
-- table) and mc.run() returned true, the error lost; outside any task
-- mc.onerror was called again with its own error. Now the error leaves
-- through every level of dispatchEvent, and mc.onerror is called once.
-- Inside a task, the events of the dispatchEvent calls it left stayed
-- marked as being dispatched: every later dispatchEvent of one raised
-- InvalidStateError (API.md 9: nothing left half-changed).

local mc = require "messagechannel"

-- Port p with listeners for "e1" .. "e<levels>": each dispatches the next
-- one, and the last raises `err`.
local function nest(levels, err)
  local p = mc.MessageChannel().port1
  for i = 1, levels - 1 do
    p:addEventListener("e" .. i, function()
      p:dispatchEvent({ type = "e" .. (i + 1) })
    end)
  end
  p:addEventListener("e" .. levels, function() error(err, 0) end)
  return p
end

describe("regress: an error mc.onerror raises for a nested listener", function()
  local saved, calls
  before_each(function()
    saved, calls = mc.onerror, {}
  end)
  after_each(function() mc.onerror = saved end)

  -- mc.onerror that records what it is given and raises `raise` the
  -- first time (every time with `always`).
  local function raising(raise, always)
    mc.onerror = function(e)
      calls[#calls + 1] = e
      if always or #calls == 1 then error(raise, 0) end
    end
  end

  for _, levels in ipairs({ 1, 2, 3, 6 }) do
    it("leaves mc.run() from " .. levels .. " dispatchEvent level(s) in a task", function()
      raising("raised by onerror")
      local p = nest(levels, "listener error")
      mc.spawn(function() p:dispatchEvent({ type = "e1" }) end)
      local ok, err = pcall(mc.run)
      assert.is_false(ok)
      assert.equal("raised by onerror", err)
      assert.same({ "listener error" }, calls)
      assert.is_true(mc.run(5))  -- nothing left behind
      assert.equal(1, #calls)
    end)

    it("leaves dispatchEvent from " .. levels .. " level(s) outside any task", function()
      raising("raised by onerror")
      local p = nest(levels, "listener error")
      local ok, err = pcall(p.dispatchEvent, p, { type = "e1" })
      assert.is_false(ok)
      assert.equal("raised by onerror", err)
      assert.same({ "listener error" }, calls)
    end)
  end

  it("keeps a table mc.onerror raised, by identity", function()
    local raised = setmetatable({}, { __tostring = function() return "mine" end })
    raising(raised, true)
    local p = nest(3, "listener error")
    mc.spawn(function() p:dispatchEvent({ type = "e1" }) end)
    local ok, err = pcall(mc.run)
    assert.is_false(ok)
    assert.equal(raised, err)
    assert.equal(1, #calls)
    ok, err = pcall(p.dispatchEvent, p, { type = "e1" })
    assert.is_false(ok)
    assert.equal(raised, err)
    assert.equal(2, #calls)
  end)

  it("raises the first error when mc.onerror raises every time", function()
    raising("onerror failed", true)
    local p = nest(3, "listener error")
    mc.spawn(function() p:dispatchEvent({ type = "e1" }) end)
    local ok, err = pcall(mc.run)
    assert.is_false(ok)
    assert.equal("onerror failed", err)
    assert.same({ "listener error" }, calls)
  end)

  it("leaves from a message listener that dispatches, and the next message comes", function()
    raising("raised by onerror")
    local ch, got = mc.MessageChannel(), {}
    local p = ch.port2
    p:addEventListener("inner", function() error("inner failed", 0) end)
    p.onmessage = function(e)
      got[#got + 1] = e.data
      if e.data == 1 then p:dispatchEvent({ type = "inner" }) end
    end
    ch.port1:postMessage(1)
    ch.port1:postMessage(2)
    local ok, err = pcall(mc.run, 5)
    assert.is_false(ok)
    assert.equal("raised by onerror", err)
    assert.is_true(mc.run(5))
    assert.same({ 1, 2 }, got)
    assert.same({ "inner failed" }, calls)
    ch.port1:close()
    assert.is_true(mc.run(5))
  end)

  it("reports a nested listener's error once to an mc.onerror that returns", function()
    mc.onerror = function(e) calls[#calls + 1] = e end
    local p = nest(4, "listener error")
    mc.spawn(function() p:dispatchEvent({ type = "e1" }) end)
    assert.is_true(mc.run(5))
    p:dispatchEvent({ type = "e1" })
    assert.same({ "listener error", "listener error" }, calls)
  end)

  it("reports a listener's own error after an inner one mc.onerror let pass", function()
    mc.onerror = function(e) calls[#calls + 1] = e end
    local p = mc.MessageChannel().port1
    p:addEventListener("inner", function() error("inner", 0) end)
    p:addEventListener("outer", function()
      p:dispatchEvent({ type = "inner" })
      error("outer", 0)
    end)
    mc.spawn(function() p:dispatchEvent({ type = "outer" }) end)
    assert.is_true(mc.run(5))
    p:dispatchEvent({ type = "outer" })
    assert.same({ "inner", "outer", "inner", "outer" }, calls)
  end)

  for _, in_task in ipairs({ true, false }) do
    it("leaves each event free to be dispatched again ("
       .. (in_task and "in a task" or "outside any task") .. ")", function()
      raising("raised by onerror")
      local p = mc.MessageChannel().port1
      local evs = { { type = "e1" }, { type = "e2" }, { type = "e3" } }
      p:addEventListener("e1", function() p:dispatchEvent(evs[2]) end)
      p:addEventListener("e2", function() p:dispatchEvent(evs[3]) end)
      p:addEventListener("e3", function() error("listener error", 0) end)
      local ok, err
      if in_task then
        mc.spawn(function() p:dispatchEvent(evs[1]) end)
        ok, err = pcall(mc.run)
      else
        ok, err = pcall(p.dispatchEvent, p, evs[1])
      end
      assert.is_false(ok)
      assert.equal("raised by onerror", err)
      mc.onerror = function(e) calls[#calls + 1] = e end
      for i = 3, 1, -1 do
        assert.is_true(p:dispatchEvent(evs[i]))
      end
      assert.same({ "listener error", "listener error", "listener error",
                    "listener error" }, calls)
      mc.spawn(function() p:dispatchEvent(evs[1]) end)
      assert.is_true(mc.run(5))
      assert.equal(5, #calls)
    end)
  end
end)
