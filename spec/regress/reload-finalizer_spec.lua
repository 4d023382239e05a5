-- A port collected right after messagechannel.core was loaded a second
-- time, before the scheduler module had made its run queue, crashed the
-- process: the finalizer queued its partner's close on a run queue that
-- did not exist yet. The child process below does exactly that.

local helper = require "spec.helper"

local child = [[
  local mc = require "messagechannel"
  local keep = {}
  for i = 1, 20 do
    local ch = mc.MessageChannel()
    ch.port1.onclose = function() end
    keep[i] = ch.port1  -- port2 goes: port1 gets a close event
  end
  for k in pairs(package.loaded) do
    if k:find("^messagechannel") then package.loaded[k] = nil end
  end
  require "messagechannel.core"  -- the port metatable gets new finalizers
  collectgarbage()
  collectgarbage()
  io.write(#keep == 20 and "child ok" or "child lost its ports")
]]

describe("regress: a port collected after the core was loaded again", function()
  it("does not crash the process", function()
    local out = helper.run_child(child)
    if not out then
      pending("the interpreter's name is not in arg[-1]")
      return
    end
    assert.truthy(out:find("child ok exit:0", 1, true), out)
  end)
end)
