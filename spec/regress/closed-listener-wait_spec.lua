-- Lua 5.4's coroutine.close on a listener's coroutine while the listener
-- waited in receive or mc.receive with no timeout, at a port nothing
-- posts to: the dispatch it was in still held its port's close (close is
-- the last event a port sees, API.md 3.4), and nothing ever woke the dead
-- coroutine to end that listener. mc.run() returned idle with the
-- port's messageerror (the closed listener, as an error) and close never
-- dispatched, until some unrelated message reached the other port. The
-- next turn now ends such a wait, of any kind, and the listener with it.

local helper = require "spec.helper"
local mc = require "messagechannel"

local function skip(why) pending(helper.skipped("closed-listener-wait", why)) end

describe("regress: a listener closed while it waits", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  local close = rawget(coroutine, "close")
  if not close then
    it("needs Lua 5.4", function() skip("coroutine.close is Lua 5.4's") end)
    return
  end

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
end)
