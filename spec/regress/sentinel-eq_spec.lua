-- The scheduler told its own markers (a fatal error, a runner's end, a
-- task's wait or end) from what a task raised or yielded with ==, so on
-- Lua 5.3 and 5.4 a value whose __eq calls everything equal was taken
-- for one: an error object so made never reached mc.onerror (mc.run()
-- returned false, nil; in a listener the next listener was skipped), and
-- a yield of it was taken for a task's end (an internal error, the task
-- never resumed). README Errors: nothing is silently swallowed; README
-- Scheduler: a yield with values that is not the scheduler's own raises.

local helper = require "spec.helper"
local mc = require "messagechannel"

-- A table that __eq calls equal to any other table.
local function anything()
  return setmetatable({ text = "anything" },
                      { __eq = function() return true end,
                        __tostring = function(t) return t.text end })
end

describe("regress: what a task raises or yields is never taken for the scheduler's own", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  it("an error object reaches mc.onerror from a task", function()
    local e = anything()
    mc.spawn(function() error(e) end)
    assert.is_true(mc.run(10))
    assert.equal(1, #errors)
    assert.is_true(rawequal(e, errors[1].err))
  end)

  it("an error object from a listener becomes a messageerror, and the next listener runs",
     function()
    local e, log = anything(), {}
    local ch = mc.MessageChannel()
    ch.port2:addEventListener("message", function() error(e) end)
    ch.port2:addEventListener("message", function(ev) log[#log + 1] = ev.data end)
    ch.port2:addEventListener("messageerror", function(ev)
      log[#log + 1] = rawequal(ev.error, e) and "messageerror" or tostring(ev.error)
    end)
    ch.port2:start()
    ch.port1:postMessage("x")
    ch.port1:close()
    assert.is_true(mc.run(10))
    assert.are.same({ "x", "messageerror" }, log)
    assert.are.same({}, errors)
  end)

  it("a yield of it raises at the yield, and that error reaches mc.onerror", function()
    local after = false
    mc.spawn(function()
      coroutine.yield(anything())
      after = true
    end)
    assert.is_true(mc.run(10))
    assert.is_false(after)
    assert.equal(1, #errors)
    local err = tostring(errors[1].err)
    assert.truthy(err:find("coroutine.yield with values inside a messagechannel task", 1, true),
                  err)
  end)
end)
