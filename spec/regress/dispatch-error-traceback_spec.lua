-- An error in a listener that dispatchEvent called outside any task
-- reached mc.onerror with no traceback on Lua 5.1 and LuaJIT: their
-- debug.traceback gives back a nil message as it is, with no trace. API.md
-- 6.1: mc.onerror gets (err, traceback), as it does for every other
-- listener, on every version.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: an error in a listener dispatchEvent calls", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  local function check(where)
    assert.equal(1, #errors, where)
    assert.equal("boom", errors[1].err)
    local tb = errors[1].traceback
    assert.equal("string", type(tb), where)
    assert.equal("stack traceback:", tb:sub(1, 16), where)
    -- the trace goes through the listener that raised
    assert.truthy(tb:find("dispatch-error-traceback_spec", 1, true), tb)
  end

  local function port_with_failing_listener()
    local p = mc.MessageChannel().port1
    p:addEventListener("bar", function() error("boom", 0) end)
    return p
  end

  it("outside any task: mc.onerror gets a traceback", function()
    local p = port_with_failing_listener()
    assert.is_true(p:dispatchEvent({ type = "bar" }))
    check("outside a task")
  end)

  it("inside a task, as before", function()
    local p = port_with_failing_listener()
    mc.spawn(function() p:dispatchEvent({ type = "bar" }) end)
    helper.run()
    check("inside a task")
  end)
end)
