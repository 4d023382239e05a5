-- regress: a receive outside any task waiting first at a port, with a
-- task's receive behind it: the port's close ended the first wait, and
-- the task was never woken (its receive never returned). The close hands
-- "closed" to every waiter, whichever kind comes first.

local mc = require "messagechannel"

describe("regress: a close at a port where a receive outside any task waits first", function()
  it("reaches the tasks waiting behind it", function()
    local ch = mc.MessageChannel()
    local task_got
    mc.spawn(function()
      local ev, why = ch.port2:receive()
      task_got = { ev, why }
    end)
    mc.spawn(function()
      mc.sleep(0.01)
      ch.port1:close()
    end)
    -- this waiter is queued first: the tasks above run inside its wait
    local ev, why = ch.port2:receive(30)
    assert.is_nil(ev)
    assert.are.equal("closed", why)
    assert.is_true(mc.run(30))
    assert.is_table(task_got, "the task's receive never returned")
    assert.is_nil(task_got[1])
    assert.are.equal("closed", task_got[2])
  end)
end)
