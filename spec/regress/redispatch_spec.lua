-- dispatchEvent of an event that dispatchEvent was still dispatching (a
-- listener passing its own event on) ran it again: the inner dispatch
-- reset the outer one's stopImmediatePropagation, so listeners after a
-- stop ran, and a dispatch at another target changed event.target for
-- the outer listeners still to come. The DOM raises InvalidStateError
-- there (dispatchEvent, step 1); so does dispatchEvent now, and the outer
-- dispatch goes on unchanged.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: dispatchEvent of an event being dispatched", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  it("raises InvalidStateError, and the outer stop holds", function()
    local p = mc.MessageChannel().port2
    local log = {}
    p:addEventListener("x", function(e)
      e:stopImmediatePropagation()
      local ok, err = pcall(p.dispatchEvent, p, e)
      log[#log + 1] = ok
      log[#log + 1] = tostring(err):match("InvalidStateError: [^\n]*")
    end)
    p:addEventListener("x", function() log[#log + 1] = "second ran" end)
    assert.is_true(p:dispatchEvent({ type = "x" }))
    assert.same({ false, "InvalidStateError: the event is already being dispatched" }, log)
    assert.same({}, errors)
  end)

  it("at another target too, which leaves event.target as it was", function()
    local a, b = mc.MessageChannel(), mc.MessageChannel()
    local targets = {}
    a.port1:addEventListener("x", function(e)
      local ok = pcall(b.port1.dispatchEvent, b.port1, e)
      targets[#targets + 1] = ok
    end)
    a.port1:addEventListener("x", function(e) targets[#targets + 1] = e.target end)
    b.port1:addEventListener("x", function() targets[#targets + 1] = "b ran" end)
    a.port1:dispatchEvent({ type = "x" })
    assert.same({ false, a.port1 }, targets)
  end)

  it("and after an error came out of a dispatch, the table can be dispatched again", function()
    local p = mc.MessageChannel().port2
    local n = 0
    p:addEventListener("x", function()
      n = n + 1
      if n == 1 then error("listener fails", 0) end
    end)
    mc.onerror = function(err) error(err, 0) end  -- raised out of dispatchEvent
    local ev = { type = "x" }
    assert.is_false(pcall(p.dispatchEvent, p, ev))
    catch()
    assert.is_true(p:dispatchEvent(ev))
    assert.equal(2, n)
  end)

  it("and once the dispatch is over, the same table can be dispatched again", function()
    local p = mc.MessageChannel().port2
    local n = 0
    p:addEventListener("x", function() n = n + 1 end)
    local ev = { type = "x" }
    p:dispatchEvent(ev)
    p:dispatchEvent(ev)
    assert.equal(2, n)
  end)
end)
