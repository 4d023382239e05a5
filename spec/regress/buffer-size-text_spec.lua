-- mc.Buffer(2^62) raised "size must be a non-negative integer", which it
-- is; mc.Buffer(2^40) raised "not enough memory". A size no allocation
-- can hold is now that error too; what is not a non-negative integer
-- (infinity included) is still a bad argument.

local mc = require "messagechannel"

local function error_of(n)
  local ok, err = pcall(function() local b = mc.Buffer(n) return b end)
  assert.is_false(ok)
  return tostring(err)
end

describe("regress: mc.Buffer's size errors", function()
  it("a size too large to allocate is not enough memory", function()
    for _, n in ipairs({ 2 ^ 53, 2 ^ 62, 2 ^ 63, 2 ^ 80 }) do
      assert.truthy(error_of(n):find("not enough memory", 1, true), n)
    end
  end)

  it("what is not a non-negative integer is a bad argument", function()
    for _, n in ipairs({ -1, 1.5, math.huge, -math.huge, 0 / 0 }) do
      assert.truthy(error_of(n):find("bad argument #1 to 'Buffer' (size must be a "
        .. "non-negative integer)", 1, true), tostring(n))
    end
  end)
end)
