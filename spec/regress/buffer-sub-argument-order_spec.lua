-- buf:sub(i, j) reads as string.sub (README, Buffer): with both
-- positions wrong, string.sub names i (#1 of the method call's string,
-- #2 here, counting the Buffer), and buf:sub named j, as C checked its
-- arguments in the order the compiler chose.

local mc = require "messagechannel"

describe("regress: buf:sub's argument errors", function()
  it("name the first bad position first, as string.sub does", function()
    local b = mc.Buffer("hello")
    local _, err = pcall(b.sub, b, "x", {})
    assert.truthy(err:find("bad argument #2", 1, true), err)
    assert.truthy(err:find("number expected, got string", 1, true), err)
    _, err = pcall(b.sub, b, 1, {})
    assert.truthy(err:find("bad argument #3", 1, true), err)
    assert.equal("ell", b:sub(2, 4))
  end)
end)
