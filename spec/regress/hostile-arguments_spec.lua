-- regress: C functions reachable from Lua trusted their arguments:
-- getmetatable(port).__index({}, "onmessage") crashed the process, and
-- mt.__gc(io.stdout) hung (a FILE* taken for a port). Every metamethod and
-- method of every type of the module, and every function of
-- messagechannel.core, is called here with hostile arguments; each must
-- return or raise, never crash or hang. In a child process, so that a
-- crash fails this spec and not the run.

local helper = require "spec.helper"

describe("regress: functions and metamethods given hostile arguments", function()
  it("return or raise, for every type of the module", function()
    local out = helper.run_child([[
      local mc = require "messagechannel"
      local core = require "messagechannel.core"
      local ch = mc.MessageChannel()
      local objs = { ch.port1, mc.Buffer(4), mc.Worker("", { eval = true }), ch }
      local pool = { n = 12, nil, true, 0, -1, 1e300, "x", {}, io.stdout,
        coroutine.create(function() end), print, mc.Buffer(2),
        mc.MessageChannel().port1 }
      -- functions that would change the scheduler itself, not hostile
      -- input (enter, resume_task and mark_call call their argument)
      local skip = { worker_start = true, looping = true, on_wake = true,
                     runq_reset = true, poll = true, enter = true,
                     resume_task = true, mark_call = true }
      local calls = 0
      local function sweep(f)
        for i = 1, pool.n do
          for j = 1, pool.n do
            calls = calls + 2
            pcall(f, pool[i], pool[j])
            pcall(f, pool[i], pool[j], pool[j])
          end
        end
      end
      for _, o in ipairs(objs) do
        local mt = debug.getmetatable(o)
        for _, f in pairs(mt) do
          if type(f) == "function" then sweep(f) end
        end
        if type(mt.__index) == "table" then
          for _, f in pairs(mt.__index) do
            if type(f) == "function" then sweep(f) end
          end
        end
      end
      for k, f in pairs(core) do
        if type(f) == "function" and not skip[k] then sweep(f) end
      end
      -- the named inputs
      local pmt = debug.getmetatable(ch.port1)
      pcall(pmt.__index, {}, "onmessage")
      pcall(pmt.__gc, io.stdout)
      pcall(debug.getmetatable(mc.Buffer(1)).__gc, io.stdout)
      assert(mc.run(60), "the scheduler did not become idle")
      -- the objects still work
      local got
      ch.port2.onmessage = function(e) got = e.data end
      assert(ch.port1:postMessage("still works"))
      mc.run(10)
      assert(got == "still works", tostring(got))
      io.write("ok ", calls, "\n")
    ]])
    if not out then return pending("the interpreter's name is not in arg[-1]") end
    assert.truthy(out:find("^ok %d+%s+exit:0"), out)
  end)
end)
