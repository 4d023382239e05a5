-- A `once` listener was taken out of the list of the event's type at its
-- call, not of the type it was added for: a listener before it that set
-- event.type left it in its own list, marked removed, so that adding it
-- again did nothing (API.md 2: a once listener is removed after its call;
-- adding a listener not registered registers it).

local mc = require "messagechannel"

describe("regress: a once listener after a listener that changes event.type", function()
  it("is removed from its own type's list and can be added again", function()
    local p = mc.MessageChannel().port2
    local calls = 0
    local function l2() calls = calls + 1 end
    p:addEventListener("a", function(e) e.type = "other" end)
    p:addEventListener("a", l2, { once = true })
    p:dispatchEvent({ type = "a" })
    p:dispatchEvent({ type = "a" })
    assert.equal(1, calls)
    p:addEventListener("a", l2)
    p:dispatchEvent({ type = "a" })
    p:dispatchEvent({ type = "a" })
    assert.equal(3, calls)
  end)

  it("holds for message events the scheduler dispatches", function()
    local ch = mc.MessageChannel()
    local p, got = ch.port2, {}
    local function l2(e) got[#got + 1] = e.data end
    p:addEventListener("message", function(e) e.type = "renamed" end)
    p:addEventListener("message", l2, { once = true })
    p:start()
    ch.port1:postMessage(1)
    ch.port1:postMessage(2)
    assert.is_true(mc.run(5))
    assert.same({ 1 }, got)
    p:addEventListener("message", l2)
    ch.port1:postMessage(3)
    ch.port1:close()
    assert.is_true(mc.run(5))
    assert.same({ 1, 3 }, got)
  end)
end)
