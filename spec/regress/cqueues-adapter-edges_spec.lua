-- Two faults of messagechannel.cqueues:
-- - attach(cq2) called from a listener (inside the task that drives the
--   scheduler in cq1) signalled the old task to end before that task
--   waited for the signal, so cq1:loop() stayed blocked until
--   messagechannel's next news (for good, with a silent live worker).
--   README: attaching to another controller moves it there. The task now
--   looks whether it was moved before it waits.
-- - os.exit in a cqueues task of a worker (5.1 to 5.4) set its stop hook
--   on that task's coroutine only: cqueues caught the error, cq:loop()
--   returned it, and the worker's code after cq:loop() ran. API.md 7:
--   os.exit in a worker ends that worker; code after it does not run. The
--   hook now goes where the worker is noted to run too.
-- Each case runs in a child process (a hang ends at its bound).

local helper = require "spec.helper"

local has_cqueues = pcall(require, "cqueues")

local function child(body)
  local out = helper.run_child([[
local mc = require "messagechannel"
local cqueues = require "cqueues"
local C = require "messagechannel.cqueues"
]] .. body, 20)
  if out == nil then pending(helper.NO_CHILD) end
  return out
end

describe("regress: messagechannel.cqueues at the edges #threads", function()
  if not has_cqueues then
    pending(helper.skipped("cqueues-adapter-edges", "cqueues is not installed for " .. _VERSION))
    return
  end

  it("moves to another controller when a listener attaches it there", function()
    local out = child([[
      -- a worker that stays silent after its first message, until told
      local w = mc.Worker([=[
        local mc = require "messagechannel"
        mc.parentPort:postMessage("move")
        mc.parentPort:receive()
      ]=], { eval = true })
      local cq1, cq2 = cqueues.new(), cqueues.new()
      w.onmessage = function() C.attach(cq2) end
      C.attach(cq1)
      print("cq1", cq1:loop())
      w:postMessage("stop")
      print("cq2", cq2:loop())
    ]])
    if out then assert.are.equal("cq1\ttrue\ncq2\ttrue\n exit:0\n", out) end
  end)

  it("ends a worker whose cqueues task calls os.exit, code after cq:loop() not run", function()
    local out = child([[
      local w = mc.Worker([=[
        local mc = require "messagechannel"
        local cqueues = require "cqueues"
        local cq = cqueues.new()
        cq:wrap(function() cqueues.sleep(0.01) os.exit(6) end)
        require("messagechannel.cqueues").attach(cq)
        cq:loop()
        print("after cq:loop")
      ]=], { eval = true })
      w.onexit = function(e) print("exit", e.code) end
      assert(mc.run(60))
    ]])
    if out then assert.are.equal("exit\t6\n exit:0\n", out) end
  end)
end)
