-- Regression of README "Errors": on every version, an argument error
-- names the value given by class when it is one of the module's objects
-- (`got MessagePort`, `got MessageChannel`, ...), anything else by its
-- type. Where a table or a number was expected, the checks named what
-- they got by its Lua type (`got userdata`, `got table`; on 5.3 and 5.4
-- Lua's own check gave the class for userdata only), and a MessageChannel,
-- Worker or Listener, being tables, passed for an options table:
-- mc.install(channel) set globals on the channel, mc.register(name,
-- channel) made it a metatable, mc.receive(channel) said "empty array".
-- Now such an object is no table argument, and is named by its class.

local mc = require "messagechannel"
local helper = require "spec.helper"
local message = helper.error_of

describe("regress: the module's objects in argument errors", function()
  local ch, buf, bc

  before_each(function()
    ch, buf, bc = mc.MessageChannel(), mc.Buffer(2), mc.BroadcastChannel("named")
  end)
  after_each(function()
    ch.port1:close()
    bc:close()
  end)

  it("names them where a table was expected", function()
    local p = ch.port1
    local cases = {
      { "MessagePort", mc.MessageChannel, p },
      { "MessageChannel", mc.MessageChannel, ch },
      { "Buffer", mc.Worker, "", buf },
      { "MessageChannel", mc.Worker, "", ch },
      { "BroadcastChannel", mc.install, bc },
      { "MessageChannel", mc.install, ch },
      { "MessageChannel", mc.install, {}, ch },
      { "MessagePort", mc.BroadcastChannel, "x", p },
      { "MessageChannel", mc.BroadcastChannel, "x", ch },
      { "Buffer", p.addEventListener, p, "message", print, buf },
      { "MessageChannel", p.addEventListener, p, "message", print, ch },
      { "MessagePort", mc.register, "named-q", p },
      { "MessageChannel", mc.register, "named-q", ch },
      { "Buffer", mc.structuredClone, 1, buf },
      { "MessageChannel", mc.structuredClone, 1, ch },
      { "BroadcastChannel", p.postMessage, p, 1, bc },
      { "MessageChannel", p.postMessage, p, 1, ch },
    }
    for i, c in ipairs(cases) do
      local err = message(helper.unpack(c, 2))
      assert.truthy(err:find("table or nil expected, got " .. c[1] .. ")", 1,
                             true)
                    or err:find("table expected, got " .. c[1] .. ")", 1, true),
                    "case " .. i .. ": " .. err)
    end
  end)

  it("names them where a number or an array was expected", function()
    local p = ch.port1
    assert.truthy(message(mc.sleep, p):find("expected, got MessagePort)", 1, true))
    assert.truthy(message(mc.sleep, ch):find("expected, got MessageChannel)", 1, true))
    assert.truthy(message(mc.run, buf):find("expected, got Buffer)", 1, true))
    assert.truthy(message(p.receive, p, bc):find("expected, got BroadcastChannel)",
                                                 1, true))
    assert.truthy(message(mc.receive, ch):find("array of MessagePorts expected, "
                                               .. "got MessageChannel)", 1, true))
    assert.truthy(message(function() p.onmessage = buf end):find("(got Buffer)", 1,
                                                                 true))
  end)

  it("names any other userdata by its type", function()
    assert.truthy(message(mc.register, "named-q", io.stdout)
                    :find("table expected, got userdata)", 1, true))
    assert.truthy(message(mc.sleep, io.stdout)
                    :find("expected, got userdata)", 1, true))
  end)

  it("leaves an object given as an options table or environment untouched",
     function()
    message(mc.install, ch)
    assert.is_nil(rawget(ch, "MessageChannel"))
    assert.is_nil(rawget(ch, "MessagePort"))
  end)
end)
