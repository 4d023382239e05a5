-- A BroadcastChannel that dispatched a message with no listener dropped
-- every message queued at it, not only that one. A listener added later
-- in the same turn (by another object's listener) then missed messages
-- posted after the dropped one, though their events had not fired yet.
-- HTML queues a task for each message and destination and fires each
-- with the listeners present when its own task runs (API.md 11: "as the
-- HTML BroadcastChannel"). Now each dispatch drops only its own message.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: a BroadcastChannel listener added during a turn", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  local name = helper.namer("bc-mid-turn-")

  local function settle()
    for _ = 1, 10 do mc.step() end
  end

  it("by a port's listener gets the messages dispatched after it", function()
    local nm = name()
    local a, b = mc.BroadcastChannel(nm), mc.BroadcastChannel(nm)
    local ch = mc.MessageChannel()
    local log = {}
    ch.port2.onmessage = function(e)
      log[#log + 1] = "port " .. e.data
      b.onmessage = function(ev) log[#log + 1] = "b " .. ev.data end
    end
    a:postMessage(1)
    ch.port1:postMessage(2)
    a:postMessage(3)
    a:postMessage(4)
    settle()
    assert.same({ "port 2", "b 3", "b 4" }, log)
    assert.same({}, errors)
    a:close()
    b:close()
    ch.port1:close()
  end)

  it("by another channel's listener of the same post", function()
    local nm = name()
    local a, b, c = mc.BroadcastChannel(nm), mc.BroadcastChannel(nm),
                    mc.BroadcastChannel(nm)
    local log = {}
    c.onmessage = function(e)
      log[#log + 1] = "c " .. e.data
      if b.onmessage == nil then
        b.onmessage = function(ev) log[#log + 1] = "b " .. ev.data end
      end
    end
    a:postMessage(1)
    a:postMessage(2)
    settle()
    -- b's event for 1 fires before c's (b was made first) and finds no
    -- listener; its event for 2 fires after c's for 1 set one.
    assert.same({ "c 1", "b 2", "c 2" }, log)
    assert.same({}, errors)
    a:close()
    b:close()
    c:close()
  end)

  it("after its own listener removed itself", function()
    local nm = name()
    local a, b = mc.BroadcastChannel(nm), mc.BroadcastChannel(nm)
    local ch = mc.MessageChannel()
    local log = {}
    local function f(ev)
      log[#log + 1] = "b " .. ev.data
      b.onmessage = nil
    end
    b.onmessage = f
    ch.port2.onmessage = function(e)
      log[#log + 1] = "port " .. e.data
      b.onmessage = f
    end
    a:postMessage(1)
    a:postMessage(2)
    ch.port1:postMessage(3)
    a:postMessage(4)
    settle()
    assert.same({ "b 1", "port 3", "b 4" }, log)
    assert.same({}, errors)
    a:close()
    b:close()
    ch.port1:close()
  end)
end)
