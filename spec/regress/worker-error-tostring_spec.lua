-- A worker's error that nobody took, an object with __tostring, was
-- raised out of mc.run as "Error in worker N: table: 0x...": the text was
-- made from the parent's copy of the object, which has no metatable,
-- though the worker had sent its own text of it. API.md 7: "Error in
-- worker <threadId>: <message>", the message as the worker's Lua gives
-- it; an uncaught error of the main thread's own shows its __tostring.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: a worker's unhandled error shows its own __tostring #threads", function()
  local workers = {}
  after_each(function() helper.terminate_all(workers) end)

  it("in the error mc.run raises", function()
    local w = mc.Worker([[
error(setmetatable({ code = 7 }, { __tostring = function(e)
  return "DB timeout (code " .. e.code .. ")"
end }))]], { eval = true })
    workers[#workers + 1] = w
    local ok, err = pcall(mc.run, helper.WAIT)
    assert.is_false(ok)
    err = tostring(err)
    assert.truthy(err:find("^Error in worker %d+: DB timeout %(code 7%)\n"), err)
  end)

  it("while an error listener still gets the object's copy", function()
    local w = mc.Worker([[
error(setmetatable({ code = 7 }, { __tostring = function() return "x" end }))]],
                        { eval = true })
    workers[#workers + 1] = w
    local got
    w.onerror = function(e) got = e.error end
    assert.is_true(mc.run(helper.WAIT))
    assert.are.same({ code = 7 }, got)
  end)
end)
