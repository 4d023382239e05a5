-- mc.onerror set to a value that cannot be called (mc.onerror = 5) lost
-- the next error nobody took: mc.run raised "attempt to call a number
-- value", without it. API.md 3.5: nothing is silently swallowed; 6.1:
-- mc.onerror is a function. mc.onerror is a plain field of the module
-- table, so it is checked when used: the error goes out of mc.run as a
-- TypeError that names what mc.onerror was and carries the error's text.

local mc = require "messagechannel"

describe("regress: mc.onerror that cannot be called", function()
  local saved
  before_each(function() saved = mc.onerror end)
  after_each(function()
    mc.onerror = saved
    mc.run(5)
  end)

  it("raises a TypeError that carries the error out of mc.run", function()
    mc.onerror = 5
    mc.spawn(function() error("the real failure") end)
    local ok, err = pcall(mc.run, 5)
    assert.is_false(ok)
    err = tostring(err)
    assert.truthy(err:find("TypeError: mc.onerror must be a function, a callable value "
                           .. "or nil (got number); the error it was given: ", 1, true), err)
    assert.truthy(err:find("the real failure", 1, true), err)
  end)

  it("does so for a listener's error too, and the loop goes on after", function()
    mc.onerror = {}
    local ch = mc.MessageChannel()
    ch.port2.onmessage = function(e) error("listener " .. e.data) end
    ch.port1:postMessage("a")
    local ok, err = pcall(mc.run, 5)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("(got table); the error it was given: ", 1, true))
    assert.truthy(tostring(err):find("listener a", 1, true))
    mc.onerror = nil
    ch.port2.onmessage = function() end
    ch.port1:postMessage("b")
    ch.port2:close()
    assert.is_true(mc.run(5))
  end)

  it("takes a callable table", function()
    local got
    mc.onerror = setmetatable({}, { __call = function(_, e) got = e end })
    mc.spawn(function() error("x", 0) end)
    assert.is_true(mc.run(5))
    assert.are.equal("x", got)
  end)
end)
