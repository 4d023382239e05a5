-- regress: mc.onerror called inside a task (a listener's error that no
-- messageerror listener takes, a task's own error) may wait, as any code
-- in a task may (Lua 5.2 and later; 5.1 and LuaJIT cannot yield across
-- the pcall it runs in). When the report came to be marked in the same C
-- call that calls mc.onerror, that call made no continuation: the wait
-- raised "attempt to yield across a C-call boundary" out of mc.run().

local mc = require "messagechannel"

describe("regress: mc.onerror that waits", function()
  local saved

  before_each(function() saved = mc.onerror end)
  after_each(function()
    mc.onerror = saved
    mc.run(30)
  end)

  it("gets each error once, and the loop goes on", function()
    if _VERSION == "Lua 5.1" then
      return pending("no yield across pcall on Lua 5.1 and LuaJIT")
    end
    local got = {}
    mc.onerror = function(err)
      mc.sleep(0)
      got[#got + 1] = tostring(err):match("boom %a+")
    end
    local ch = mc.MessageChannel()
    ch.port2.onmessage = function() error("boom listener") end
    ch.port1:postMessage(1)
    mc.spawn(function() error("boom task") end)
    assert.is_true(mc.run(30))
    table.sort(got)
    assert.same({ "boom listener", "boom task" }, got)
  end)
end)
