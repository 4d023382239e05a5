-- messagechannel.core's worker_start takes the parent's port in a list of
-- its own. A list without a port, or a port also in the data's transfer
-- list, crashed the process (a port lent twice, an empty array read as the
-- parentPort). Both are argument errors now, and nothing is moved.

local mc = require "messagechannel"
local core = require "messagechannel.core"

describe("regress: messagechannel.core.worker_start's port list", function()
  it("must hold one entry", function()
    for _, list in ipairs({ {}, { 1, 2 } }) do
      local ok, err = pcall(core.worker_start, "", true, nil, nil, list, false,
                            { handle = false }, { handle = false, thread_id = false })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("bad argument #5", 1, true), err)
    end
  end)

  it("may not share a port with the data's transfer list, and moves nothing then", function()
    local ch = mc.MessageChannel()
    local ok, err = pcall(core.worker_start, "", true, ch.port2, { ch.port2 },
                          { ch.port2 }, false, { handle = false },
                          { handle = false, thread_id = false })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("bad argument #5", 1, true), err)
    collectgarbage()
    assert.is_true(ch.port1:postMessage("still entangled"))
    assert.equal("still entangled", ch.port2:receive(0).data)
  end)
end)
