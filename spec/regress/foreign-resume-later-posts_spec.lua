-- A task's postMessage waiting for room, resumed by other code: on Lua
-- 5.1 and LuaJIT it returns what that code passed while its post waits
-- on (README, mc.spawn). When that post was sent, its wake resumed the
-- task in whatever it waited for next: the task's next postMessage
-- returned true though its post still waited, and on 5.1, where that
-- next wait (started under the foreign resume) was undone, its message
-- was lost for good; and a post whose task ended since was dropped, as
-- if the task had been closed. API.md 11: postMessage returns true once the
-- message is queued; 3.1: nothing is dropped.

local mc = require "messagechannel"

describe("regress: posts after a waiting post that other code resumed", function()
  after_each(function() mc.run(5) end)

  it("each return true once sent, and every message arrives in order", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    assert.is_true(ch.port1:postMessage(1))
    local log = {}
    local co = mc.spawn(function()
      for i = 2, 4 do
        local r = ch.port1:postMessage(i)
        log[#log + 1] = i .. " " .. tostring(r)
      end
    end)
    mc.step()  -- the post of 2 waits for room
    assert.is_true((coroutine.resume(co, "junk")))
    local got = {}
    for _ = 1, 4 do
      local e = ch.port2:receive(5)
      got[#got + 1] = e and e.data
      if #log > 0 and log[#log] == "4 true" then break end
    end
    mc.run(5)
    while true do
      local e = ch.port2:receive(0)
      if not e then break end
      got[#got + 1] = e.data
    end
    assert.same({ 1, 2, 3, 4 }, got)
    assert.equal("dead", coroutine.status(co))
    -- 3 and 4 each returned true (sent); 2 returned true, or on 5.1 and
    -- LuaJIT what the resume passed
    assert.equal("3 true", log[2])
    assert.equal("4 true", log[3])
    assert.truthy(log[1] == "2 true" or log[1] == "2 junk", log[1])
  end)

  -- On 5.1 and LuaJIT such a task can end while its post waits on; that
  -- post was taken for one whose task was closed, and dropped.
  it("the waiting post of a task that ended since is still sent", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    assert.is_true(ch.port1:postMessage(1))
    local co = mc.spawn(function() ch.port1:postMessage(2) end)
    mc.step()
    assert.is_true((coroutine.resume(co, "junk")))
    local got = {}
    for _ = 1, 2 do
      local e = ch.port2:receive(5)
      got[#got + 1] = e and e.data
    end
    assert.same({ 1, 2 }, got)
  end)
end)
