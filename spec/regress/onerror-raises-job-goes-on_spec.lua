-- An error mc.onerror raises goes out of mc.run() (API.md 6.1), and the
-- next mc.run() goes on. But when it was raised by the scheduler's own
-- dispatch (the report of a listener's error), the rest of that dispatch
-- was lost: the messageerrors still due, the listeners after the one
-- running, and, after a listener that had waited in sleep or receive, the
-- end of the dispatch that lets its port's close go: that close never
-- came (API.md 3.4) and the port was never collected.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: a dispatch goes on after mc.onerror raised out of it", function()
  local _, _, release = helper.error_hooks(5)
  local reported

  before_each(function()
    reported = {}
    mc.onerror = function(err)
      reported[#reported + 1] = err
      error("onerror raises", 0)
    end
  end)
  after_each(release)

  -- mc.run() until it returns without an error from mc.onerror, at most n
  -- times; returns how many raised.
  local function run_through(n)
    for i = 1, n do
      local ok, err = pcall(mc.run, 5)
      if ok then
        assert.is_true(err)
        return i - 1
      end
      assert.equal("onerror raises", err)
    end
    error("mc.run() kept raising")
  end

  it("after a listener that slept and raised, the port's close comes", function()
    local ch = mc.MessageChannel()
    local log = {}
    ch.port2.onmessage = function() mc.sleep(0) error("listener fails", 0) end
    ch.port2.onclose = function() log[#log + 1] = "close" end
    ch.port1:postMessage(1)
    ch.port1:close()
    assert.equal(1, run_through(3))
    assert.same({ "listener fails" }, reported)
    assert.same({ "close" }, log)
  end)

  it("so does it after one that waited in receive", function()
    local ch, gate = mc.MessageChannel(), mc.MessageChannel()
    local log = {}
    ch.port2.onmessage = function() gate.port2:receive() error("listener fails", 0) end
    ch.port2.onclose = function() log[#log + 1] = "close" end
    ch.port1:postMessage(1)
    ch.port1:close()
    mc.spawn(function() gate.port1:postMessage("go") end)
    assert.equal(1, run_through(3))
    assert.same({ "close" }, log)
    gate.port1:close()
  end)

  it("a host loop stepping is told the rest is due at once", function()
    local ch, log = mc.MessageChannel(), {}
    ch.port2:addEventListener("message", function() error("first", 0) end)
    ch.port2:addEventListener("message", function(e) log[#log + 1] = e.data end)
    ch.port2:start()
    ch.port1:postMessage(1)
    assert.is_false(pcall(mc.step))
    assert.equal(0, mc.timeout())
    mc.step()
    assert.same({ 1 }, log)
    ch.port1:close()
  end)

  it("each listener that raised for one message is reported, once", function()
    local ch = mc.MessageChannel()
    ch.port2:addEventListener("message", function() error("first", 0) end)
    ch.port2:addEventListener("message", function() error("second", 0) end)
    ch.port2:start()
    ch.port1:postMessage(1)
    ch.port1:close()
    assert.equal(2, run_through(4))
    assert.same({ "first", "second" }, reported)
  end)

  it("the listeners after one that raised through dispatchEvent run, and it not again", function()
    local ch = mc.MessageChannel()
    local p, log = ch.port2, {}
    p:addEventListener("inner", function() error("inner fails", 0) end)
    p:addEventListener("message", function()
      log[#log + 1] = "A"
      p:dispatchEvent({ type = "inner" })
      log[#log + 1] = "A after"
    end)
    p:addEventListener("message", function() log[#log + 1] = "B" end)
    p:start()
    ch.port1:postMessage(1)
    ch.port1:close()
    assert.equal(1, run_through(3))
    assert.same({ "inner fails" }, reported)
    assert.same({ "A", "B" }, log)
  end)

  -- The rest of the dispatch comes first at the next mc.run(), as the
  -- turn's own runner would have gone on: before the port's next message,
  -- its messageerror, and its close.
  local function ordered(p, log)
    p:addEventListener("inner", function() error("inner fails", 0) end)
    p:addEventListener("message", function(e)
      log[#log + 1] = "A" .. e.data
      if e.data == 1 then p:dispatchEvent({ type = "inner" }) end
    end)
    p:addEventListener("close", function() log[#log + 1] = "close" end)
  end

  -- Posts 1 and 2 to the started port2 of ch and closes it, then runs
  -- until mc.onerror stops raising: it raised once.
  local function post_two(ch)
    ch.port2:start()
    ch.port1:postMessage(1)
    ch.port1:postMessage(2)
    ch.port1:close()
    assert.equal(1, run_through(3))
  end

  it("the listeners after it come before the next message and the close", function()
    local ch, log = mc.MessageChannel(), {}
    ordered(ch.port2, log)
    ch.port2:addEventListener("message", function(e) log[#log + 1] = "B" .. e.data end)
    post_two(ch)
    assert.same({ "A1", "B1", "A2", "B2", "close" }, log)
  end)

  it("a messageerror still due comes before the next message", function()
    local ch, log = mc.MessageChannel(), {}
    ch.port2:addEventListener("inner", function() error("inner fails", 0) end)
    ch.port2:addEventListener("message", function(e)
      log[#log + 1] = "A" .. e.data
      if e.data == 1 then error("A fails", 0) end
    end)
    ch.port2:addEventListener("message", function(e)
      log[#log + 1] = "B" .. e.data
      if e.data == 1 then ch.port2:dispatchEvent({ type = "inner" }) end
    end)
    ch.port2.onmessageerror = function(e) log[#log + 1] = "messageerror " .. e.error end
    post_two(ch)
    assert.same({ "A1", "B1", "messageerror A fails", "A2", "B2" }, log)
  end)

  it("a listener after it that waits still holds the close back", function()
    local ch, log = mc.MessageChannel(), {}
    ordered(ch.port2, log)
    ch.port2:addEventListener("message", function()
      log[#log + 1] = "B start"
      mc.sleep(0)
      log[#log + 1] = "B end"
    end)
    ch.port2:start()
    ch.port1:postMessage(1)
    ch.port1:close()
    assert.equal(1, run_through(3))
    assert.same({ "A1", "B start", "B end", "close" }, log)
  end)
end)
