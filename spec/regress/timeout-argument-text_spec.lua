-- A negative timeout raised "bad argument #1 to 'sleep' (non-negative
-- number expected, got number)": it named the type, which was right, not
-- the value, which was wrong. API.md 9: the usual Lua `bad argument`.
-- The error now gives the number.

local mc = require "messagechannel"

describe("regress: a negative timeout's error names the value", function()
  local function err_of(f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok)
    return tostring(err)
  end

  it("sleep, run, receive and mc.receive", function()
    local ch = mc.MessageChannel()
    local text = "non-negative number expected, got -1)"
    assert.truthy(err_of(mc.sleep, -1):find("bad argument #1 to 'sleep' (" .. text, 1, true))
    assert.truthy(err_of(mc.run, -1):find("bad argument #1 to 'run' (" .. text, 1, true))
    assert.truthy(err_of(ch.port2.receive, ch.port2, -1):find("(" .. text, 1, true))
    assert.truthy(err_of(mc.receive, { ch.port2 }, -0.5):find(
      "bad argument #2 to 'receive' (non-negative number expected, got -0.5)", 1, true))
  end)

  it("NaN and other types keep their names", function()
    assert.truthy(err_of(mc.sleep, 0 / 0):find("got nan)", 1, true))
    assert.truthy(err_of(mc.sleep, "1"):find("got string)", 1, true))
    assert.truthy(err_of(mc.sleep, true):find("got boolean)", 1, true))
  end)
end)
