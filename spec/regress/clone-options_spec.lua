-- structuredClone took an options table without a transfer field for the
-- transfer list itself, so other fields in it raised DataCloneError.

local mc = require "messagechannel"

describe("regress: structuredClone's options", function()
  it("are not a transfer list themselves", function()
    local b = mc.Buffer("abc")
    local c = mc.structuredClone({ b }, { note = "x" })
    assert.equal("abc", c[1]:sub())
    assert.is_false(b.detached)
    c = mc.structuredClone({ b }, { b })  -- an array, but not options.transfer
    assert.is_false(b.detached)
    assert.are_not.equal(b, c[1])
  end)
end)
