-- regress: an error raised by a hook with a return mask (the standalone
-- interpreter's Ctrl-C hook has one) as a C function of the module
-- returns:
-- - as core.worker_start returned, mc.Worker's own pcall caught it and
--   dropped the watch of a thread that ran: the worker's uncaught error
--   was lost and mc.run() returned at once;
-- - as coroutine.resume returned inside core.resume_task, after a task
--   ran but before its wake left the run queue: the next turn resumed the
--   task again with the same wake, and on Lua 5.1 (no continuations) a
--   post still waiting for room returned true, unsent;
-- - core.resume_task takes the call and return masks off for its resume
--   and put them back only once the resume returned: a resume that
--   raised (out of memory) left a profiler's call hook off for good;
-- - as core.runq_reset returned a new run queue (the old one had grown
--   past 1024 tokens), before the scheduler stored it: the scheduler
--   went on reading the old, drained table while every later token went
--   to the new one, so tasks spawned and messages posted after that were
--   never run or delivered.

local mc = require "messagechannel"
local core = require "messagechannel.core"

describe("regress: a return hook's error", function()
  -- LuaJIT runs no return hook for a C function
  local function lua_vm() return not rawget(_G, "jit") end

  -- calls f(...) with a return hook that raises "interrupted!" as C
  -- function cf first returns; asserts that f raised it
  local function interrupted_at(cf, f, ...)
    debug.sethook(function()
      local info = debug.getinfo(2, "f")
      if info and info.func == cf then
        debug.sethook()
        error("interrupted!")
      end
    end, "r")
    local ok, err = pcall(f, ...)
    debug.sethook()
    assert.is_false(ok)
    assert.truthy(tostring(err):find("interrupted!", 1, true), err)
  end

  it("as a Worker starts leaves the worker watched", function()
    if not lua_vm() then return pending("no return hook for C here") end
    interrupted_at(core.worker_start, mc.Worker, "error('worker failed', 0)",
                   { eval = true })
    local rok, rerr = pcall(mc.run, 60)
    assert.is_false(rok)
    assert.truthy(tostring(rerr):find("worker failed", 1, true), rerr)
  end)

  it("as a task's resume returns resumes it once", function()
    if not lua_vm() then return pending("no return hook for C here") end
    local ch = mc.MessageChannel({ capacity = 1 })
    local log, armed = {}, false
    local function hook()  -- as the runner's coroutine.resume returns
      local f = debug.getinfo(2, "f")
      if armed and f and f.func == coroutine.resume then
        armed = false
        error("interrupted!")
      end
    end
    -- the hook goes on the runner, which the pool reuses
    local setup = mc.MessageChannel()
    setup.port2.onmessage = function()
      debug.sethook(coroutine.running(), hook, "r")
    end
    setup.port1:postMessage(0)
    assert.is_true(mc.run(60))
    setup.port1:close()
    assert.is_true(mc.run(60))
    assert.is_true(ch.port1:postMessage(1))
    mc.spawn(function()
      log[#log + 1] = ch.port1:postMessage(2)  -- waits for room
      log[#log + 1] = ch.port1:postMessage(3)  -- and again
    end)
    mc.step()
    assert.equal(1, ch.port2:receive(0).data)  -- room for 2
    armed = true
    pcall(mc.run, 1)
    pcall(mc.run, 1)
    assert.same({ true }, log)  -- post 3 waits for room
    assert.equal(2, ch.port2:receive(0).data)
    assert.is_nil(ch.port2:receive(0))
    assert.is_true(mc.run(60))
    assert.same({ true, true }, log)
    assert.equal(3, ch.port2:receive(0).data)
  end)

  it("as a new run queue is made leaves later work running", function()
    if not lua_vm() then return pending("no return hook for C here") end
    local ran = 0
    for _ = 1, 1100 do mc.spawn(function() ran = ran + 1 end) end
    interrupted_at(core.runq_reset, mc.run, 60)
    assert.equal(1100, ran)
    local later, got = false, nil
    mc.spawn(function() later = true end)
    local ch = mc.MessageChannel()
    ch.port2.onmessage = function(e) got = e.data end
    ch.port1:postMessage("hello")
    assert.is_true(mc.run(60))
    assert.is_true(later)
    assert.equal("hello", got)
    ch.port1:close()
    assert.is_true(mc.run(60))
  end)

  it("leaves a call hook set when the resume raises", function()
    if not lua_vm() then return pending("hooks are global on LuaJIT") end
    local calls = 0
    local function hook() calls = calls + 1 end
    local co = coroutine.create(function() end)
    local job = {}
    debug.sethook(hook, "cr", 0)
    local ok, err = pcall(core.resume_task, function()
      error("not enough memory", 0)
    end, co, job)
    local h, mask = debug.gethook()
    debug.sethook()
    assert.is_false(ok)
    assert.equal("not enough memory", err)
    assert.equal(hook, h)
    assert.equal("cr", mask)
    assert.is_nil(job.wake)  -- the wake stays for the next turn
  end)
end)
