-- mc.timeout() gives a host loop how long it may wait (API.md 10). After
-- mc.sleep(math.huge) it gave inf, and after mc.sleep(1e300) 1e300: the
-- README's LuaSocket loop, socket.select({mc}, nil, mc.timeout()), then
-- raised "select failed". math.huge is the same as no timeout elsewhere
-- (receive, mc.receive, postMessage); a finite wait beyond what poll()
-- takes (2^31 - 1 ms) is given as that, and the loop asks again then.
-- The sleepers never wake, so each case runs in a child process.

local helper = require "spec.helper"

local function child(body)
  local out = helper.run_child('local mc = require "messagechannel"\n'
                               .. body, 20)
  if out == nil then pending(helper.NO_CHILD) end
  return out
end

describe("regress: mc.timeout() of very long sleeps", function()
  it("is nil while the only sleeper sleeps math.huge", function()
    local out = child([[
      local slept = false
      mc.spawn(function() mc.sleep(math.huge); slept = true end)
      print(mc.step(), mc.timeout(), mc.dirty(), slept)
    ]])
    if out then assert.are.equal("true\tnil\tfalse\tfalse\n exit:0\n", out) end
  end)

  it("is at most 2^31 - 1 ms for a finite one", function()
    local out = child([[
      local MAX_WAIT = (2 ^ 31 - 1) / 1000
      mc.spawn(function() mc.sleep(1e300) end)
      mc.step()
      local a = mc.timeout()
      mc.spawn(function() mc.sleep(MAX_WAIT * 2) end)
      mc.step()
      print(a == MAX_WAIT, mc.timeout() == MAX_WAIT)
    ]])
    if out then assert.are.equal("true\ttrue\n exit:0\n", out) end
  end)

  it("is the nearer sleeper's when there is one", function()
    local out = child([[
      mc.spawn(function() mc.sleep(math.huge) end)
      mc.spawn(function() mc.sleep(100) end)
      mc.step()
      local t = mc.timeout()
      print(t > 50 and t <= 100)
    ]])
    if out then assert.are.equal("true\n exit:0\n", out) end
  end)
end)
