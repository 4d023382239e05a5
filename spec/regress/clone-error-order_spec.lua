-- The README said mc.serialize "raises the same errors as
-- structuredClone". Of a value with more than one thing that cannot be
-- cloned, they name different ones: the encoder (serialize, postMessage)
-- meets them breadth first, the direct copy (structuredClone) depth
-- first. The README now says so; this holds it to that.

local mc = require "messagechannel"

describe("regress: which uncloneable value an error names", function()
  local f = function() end
  local v = { { { f } }, f }

  local function err_of(fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok)
    return err
  end

  it("serialize and postMessage name the one nearest the top", function()
    local want = "DataCloneError: function is not cloneable (at [2])"
    assert.equal(want, err_of(mc.serialize, v))
    local ch = mc.MessageChannel()
    assert.equal(want, err_of(ch.port1.postMessage, ch.port1, v))
    ch.port1:close()
  end)

  it("structuredClone names the first one depth first", function()
    assert.equal("DataCloneError: function is not cloneable (at [1][1][1])",
                 err_of(mc.structuredClone, v))
  end)

  it("each names the same one for a value with only one", function()
    local w = { { { f } }, 2 }
    local want = "DataCloneError: function is not cloneable (at [1][1][1])"
    assert.equal(want, err_of(mc.serialize, w))
    assert.equal(want, err_of(mc.structuredClone, w))
  end)
end)
