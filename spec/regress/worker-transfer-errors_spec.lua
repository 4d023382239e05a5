-- mc.Worker counted its own port to the parent in the transfer list, so
-- options.transfer = {1} blamed "entry 2", and a value that cannot be
-- cloned was placed "at .data" of a table the user never made.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: mc.Worker's clone errors #threads", function()
  it("number transfer entries as the user wrote them", function()
    local b = mc.Buffer("x")
    local err = helper.error_of(mc.Worker, "", { eval = true, transfer = { b, 1 } })
    assert.truthy(err:find("DataCloneError: transfer list entry 2 ", 1, true), err)
    assert.is_false(b.detached)
  end)

  it("give paths from options.data itself", function()
    local err = helper.error_of(mc.Worker, "", { eval = true, data = { f = print } })
    assert.truthy(err:find("(at .f)", 1, true), err)
  end)
end)
