-- mc.MessageChannel({capacity = n}) rejected integers of 2^53 and more
-- (math.maxinteger too) with "capacity must be an integer >= 1". API.md
-- 11: any integer n >= 1. A bound no queue can reach is the same as none
-- in practice; infinity is still not an integer.
-- mc.connect and mc.listen took only 1 to 10^9, and said "'capacity' must
-- be a positive integer" for 10^9 + 1: a remote port's capacity is the
-- same bound (API.md 12), any integer >= 1 too.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: a channel's capacity may be any integer >= 1", function()
  local big = { 2 ^ 53, 2 ^ 60, 1e300 }
  local maxinteger = rawget(math, "maxinteger")
  if maxinteger then big[#big + 1] = maxinteger end
  for _, n in ipairs(big) do
    it(("capacity = %.17g"):format(n), function()
      local ch = mc.MessageChannel({ capacity = n })
      for i = 1, 100 do assert.is_true(ch.port1:postMessage(i)) end
      assert.equal(100, ch.port2:pending())
      ch.port1:close()
    end)
  end

  it("while infinity, NaN, fractions and 0 still raise", function()
    for _, n in ipairs { math.huge, -math.huge, 0 / 0, 1.5, 0, -1 } do
      local ok, err = pcall(mc.MessageChannel, { capacity = n })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("capacity must be an integer >= 1", 1, true))
    end
  end)
end)

describe("regress: a remote port's capacity may be any integer >= 1", function()
  local big = { 1e9 + 1, 2 ^ 53, 2 ^ 60, 1e300 }
  local maxinteger = rawget(math, "maxinteger")
  if maxinteger then big[#big + 1] = maxinteger end

  local function path()
    local p = os.tmpname()
    os.remove(p)
    return "unix:" .. p
  end

  for _, n in ipairs(big) do
    it(("capacity = %.17g, at both ends"):format(n), function()
      local address, got = path(), {}
      local l = mc.listen(address, { capacity = n })
      l.onconnect = function(e)
        e.port.onmessage = function(m)
          got[#got + 1] = m.data
          if #got == 3 then e.port:close() end
        end
      end
      local port = mc.connect(address, { capacity = n })
      for i = 1, 3 do assert.is_true(port:postMessage(i)) end
      port.onclose = function() l:close() end
      assert.is_true(mc.run(helper.WAIT))
      assert.same({ 1, 2, 3 }, got)
    end)
  end

  it("while infinity, NaN, fractions, 0 and strings still raise, naming the rule", function()
    for _, n in ipairs { math.huge, -math.huge, 0 / 0, 1.5, 0, -1, "8" } do
      for _, f in ipairs { mc.connect, mc.listen } do
        local ok, err = pcall(f, path(), { capacity = n })
        assert.is_false(ok)
        assert.is_truthy(tostring(err):find("('capacity' must be an integer >= 1)", 1, true),
                         tostring(err))
      end
    end
  end)
end)
