-- mc.MessageChannel({capacity = n}) rejected integers of 2^53 and more
-- (math.maxinteger too) with "capacity must be an integer >= 1". API.md
-- 11: any integer n >= 1. A bound no queue can reach is the same as none
-- in practice; infinity is still not an integer.

local mc = require "messagechannel"

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
