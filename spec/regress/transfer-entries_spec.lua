-- structuredClone only looked at the length of options.transfer, so a
-- transfer list with entries outside 1..n was silently ignored.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: transfer entries outside the sequence", function()
  it("are not ignored", function()
    local buf = mc.Buffer("abc")
    for _, transfer in ipairs({ { [2] = buf }, { x = buf } }) do
      local err = helper.error_of(mc.structuredClone, 1, { transfer = transfer })
      assert.truthy(err:find("DataCloneError:", 1, true), err)
    end
    assert.is_false(buf.detached)
  end)
end)
