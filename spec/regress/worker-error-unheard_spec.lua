-- A worker's error that no listener takes is raised out of the scheduler
-- loop (API.md 7), and nothing is silently swallowed (3.5). A program that
-- never ran the scheduler after its worker failed ended with nothing said:
-- the error went with the Worker. It is now written to stderr then. (The
-- exit status is the interpreter's: a finalizer cannot change it.)
-- Each case runs in a child process, whose output is checked.

local helper = require "spec.helper"

-- Waits, without running the scheduler, until the workers' threads have
-- ended (Linux: the process's thread count is back to 1).
local ENDED = [[
local function ended()
  for _ = 1, 600 do
    local f = io.open("/proc/self/status")
    local n = tonumber(f:read("*a"):match("Threads:%s+(%d+)"))
    f:close()
    if n == 1 then return end
    os.execute("sleep 0.05")
  end
  error("the workers did not end")
end
]]

local function child(body)
  local out = helper.run_child('local mc = require "messagechannel"\n'
                               .. ENDED .. body, 45)
  if out == nil then pending(helper.NO_CHILD) end
  return out
end


describe("regress: a worker's error in a program that never steps #threads", function()
  local proc = io.open("/proc/self/status")
  if not proc then
    pending("no /proc/self/status here")
    return
  end
  proc:close()
  it("is written to stderr as the state closes", function()
    local out = child([[
      mc.Worker("error('boom', 0)", { eval = true })
      mc.Worker("local x = ", { eval = true })
      ended()
      print("ending")
    ]])
    if out then
      assert.truthy(out:find("ending\n", 1, true), out)
      assert.truthy(out:find("messagechannel: Error in worker %d+ %(no "
                             .. "scheduler ran to report it%): boom\n"), out)
      assert.truthy(out:find("Error in worker %d+ %(no scheduler ran to "
                             .. "report it%): worker:1:"), out)
      assert.truthy(out:find(" exit:0\n$"), out)
    end
  end)

  it("is written when a step saw the worker end but did not dispatch it", function()
    local out = child([[
      mc.Worker("error('boom', 0)", { eval = true })
      ended()
      mc.step()  -- learns of the end; the error event waits for a turn
      print("ending")
    ]])
    if out then
      assert.truthy(out:find("Error in worker %d+ %(no scheduler ran to "
                             .. "report it%): boom\n"), out)
    end
  end)

  it("says nothing of an error raised out of the loop", function()
    local out = child([[
      mc.Worker("error('boom', 0)", { eval = true })
      print(pcall(mc.run, 60))
      print("ending")
    ]])
    if out then
      assert.truthy(out:find("^false\tError in worker %d+: boom"), out)
      assert.falsy(out:find("no scheduler ran", 1, true), out)
    end
  end)

  it("says nothing of an error the scheduler reported", function()
    local out = child([[
      local w = mc.Worker("error('boom', 0)", { eval = true })
      w.onerror = function(e) print("took " .. tostring(e.error)) end
      assert(mc.run(60))
      print("ending")
    ]])
    if out then assert.are.equal("took boom\nending\n exit:0\n", out) end
  end)

  it("says nothing of a worker that ended without one", function()
    local out = child([[
      mc.Worker("return", { eval = true })
      mc.Worker("os.exit(3)", { eval = true })
      local w = mc.Worker("while true do end", { eval = true })
      w:terminate()
      ended()
      print("ending")
    ]])
    if out then assert.are.equal("ending\n exit:0\n", out) end
  end)
end)
