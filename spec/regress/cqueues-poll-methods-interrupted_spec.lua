-- regress: messagechannel.cqueues's task waited with cqueues.poll on the
-- module table, so cqueues called its methods (pollfd, events, timeout)
-- outside the task. An error raised there by a hook (an instruction
-- limit, the standalone interpreter's Ctrl-C) killed the task ("error
-- calling method timeout") without the adapter knowing: every cq:loop()
-- after it returned at once, with a sleeping task never woken, until
-- mc.run(). The task now waits on a pollable object of plain fields that
-- it fills in its protected step: an error there is an error of mc.step(),
-- after which the task starts again, and the next cq:loop() goes on.
--
-- In a child process, a hook raises "INT" as the k-th call of one of those
-- functions begins, for each k until the scenario makes no more calls.

local helper = require "spec.helper"

local CHILD = [=[
local which = ...
local interrupt = require "spec.interrupt"
local mc = require "messagechannel"
local cqueues = require "cqueues"
local adapter = require "messagechannel.cqueues"
local target = ({ pollfd = mc.pollfd, events = mc.events,
                  timeout = mc.timeout })[which]
local h = interrupt.new("f", function(f)
  return f.func == target
end, "c")
local cq = cqueues.new()
-- cqueues makes its tasks' coroutines in C: each sets the hook itself
local methods = getmetatable(cq).__index
local wrap = methods.wrap
methods.wrap = function(self, fn, ...)
  return wrap(self, function(...)
    debug.sethook(h.hook, "c")
    return fn(...)
  end, ...)
end
local bad, checked, k = 0, 0, 0
while true do
  k = k + 1
  local log = {}
  mc.spawn(function()
    mc.sleep(1e-3)
    log[#log + 1] = "slept"
  end)
  local ch = mc.MessageChannel()
  ch.port2.onmessage = function(ev)
    log[#log + 1] = ev.data
    ch.port2:close()
  end
  ch.port1:postMessage("message")
  adapter.attach(cq)
  h.arm(k)
  debug.sethook(h.hook, "c")
  local ok, err = cq:loop(10)
  local hit = h.fired
  h.fired = true
  debug.sethook()
  local ok2, err2 = cq:loop(10)
  local s = table.concat(log, ",")
  if not hit then
    assert(ok and ok2 and s == "message,slept", "the scenario alone: " .. s)
    break
  end
  if not (ok2 and cq:count() == 0 and s == "message,slept") then
    bad = bad + 1
    io.write("bad k=", k, ": first ", tostring(ok), " ", tostring(err),
             "; again ", tostring(ok2), " ", tostring(err2), " count ",
             cq:count(), "; ", s, "\n")
  else
    checked = checked + 1
  end
  mc.run(10)  -- what a failed case left
end
methods.wrap = wrap
io.write("checked ", checked, " bad ", bad, "\n")
]=]

describe("regress: a hook's error in a pollable method cqueues calls",
         function()
  local has_cqueues = pcall(require, "cqueues")
  for _, which in ipairs({ "pollfd", "events", "timeout" }) do
    it("leaves the adapter's task going on at the next cq:loop(): "
       .. which, function()
      if not has_cqueues then
        return pending(helper.skipped("cqueues-poll-methods-interrupted",
                                      "cqueues is not installed for "
                                      .. _VERSION))
      end
      local out = helper.run_scenario(CHILD, which, 120)
      if not out then return pending(helper.NO_CHILD) end
      local checked, bad = out:match("checked (%d+) bad (%d+)")
      assert.truthy(checked, out)
      assert.are.equal("0", bad, out)
    end)
  end
end)
