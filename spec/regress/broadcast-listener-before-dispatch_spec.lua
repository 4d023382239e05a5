-- A BroadcastChannel message posted in the same Lua state was dropped at
-- once when the receiving channel had no listener yet, though no turn had
-- run: `a:postMessage(x)` then `b.onmessage = f` never called f. HTML
-- queues a task for each destination and fires the event with the
-- listeners present when that task runs (API.md 11: "as the HTML
-- BroadcastChannel"), and so did this module for a message from another
-- thread. Now the message is dropped when it is dispatched with no
-- listener, wherever it came from.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: a BroadcastChannel's listener set before the dispatch", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  local n = 0
  local function pair()
    n = n + 1
    local name = "bc-before-dispatch-" .. n
    return mc.BroadcastChannel(name), mc.BroadcastChannel(name)
  end

  -- Steps until nothing is ready (BroadcastChannels with a listener keep
  -- mc.run() going).
  local function settle()
    for _ = 1, 10 do mc.step() end
  end

  it("gets a message posted before onmessage was set", function()
    local a, b = pair()
    a:postMessage("hello")
    local got = {}
    b.onmessage = function(e) got[#got + 1] = e.data end
    settle()
    assert.same({ "hello" }, got)
    assert.same({}, errors)
    a:close()
    b:close()
  end)

  it("and through addEventListener, every message in order", function()
    local a, b = pair()
    for i = 1, 3 do a:postMessage(i) end
    local got = {}
    b:addEventListener("message", function(e) got[#got + 1] = e.data end)
    settle()
    assert.same({ 1, 2, 3 }, got)
    assert.same({}, errors)
    a:close()
    b:close()
  end)

  it("a message dispatched while no listener was set is dropped", function()
    local a, b = pair()
    a:postMessage("early")
    settle()
    local got = {}
    b.onmessage = function(e) got[#got + 1] = e.data end
    a:postMessage("late")
    settle()
    assert.same({ "late" }, got)
    assert.same({}, errors)
    a:close()
    b:close()
  end)

  it("a listener removed before the dispatch does not get it later", function()
    local a, b = pair()
    local got = {}
    local function f(e) got[#got + 1] = e.data end
    b.onmessage = f
    a:postMessage("gone")
    b.onmessage = nil
    settle()
    b.onmessage = f
    settle()
    assert.same({}, got)
    assert.same({}, errors)
    a:close()
    b:close()
  end)
end)
