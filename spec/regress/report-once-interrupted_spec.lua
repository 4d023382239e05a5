-- regress: an error nobody takes was lost when an error raised by a hook
-- (an instruction limit, the standalone interpreter's Ctrl-C) landed in
-- its report, before mc.onerror was called: a task's error (the task was
-- forgotten before its report), a message listener's with no messageerror
-- listener (counted as reported first), a close listener's (likewise).
-- Now the error stays noted until mc.onerror has been called with it: the
-- interrupt leaves mc.run(), and the next mc.run() reports it, once.
--
-- In a child process (whose every coroutine the module makes has the
-- hook), for each scenario and each k, a line hook raises "INT" at the
-- k-th line that the scheduler's report runs, from 1 until one past its
-- last line.

local helper = require "spec.helper"

local CHILD = [=[
local which = ...
local report  -- the scheduler's, once loaded
local h = require("spec.interrupt").new("f", function(f)
  return f.func == report
end, "l")
local mc = require "messagechannel"
report = require("messagechannel.scheduler").report

local S = {}
S.task = function()
  mc.spawn(function() error("E", 0) end)
end
S.message = function()
  local ch = mc.MessageChannel()
  ch.port2.onmessage = function() error("E", 0) end
  ch.port1:postMessage(1)
  ch.port1:close()
end
S.close = function()
  local ch = mc.MessageChannel()
  ch.port2.onclose = function() error("E", 0) end
  ch.port1:close()
end

local got = 0
mc.onerror = function(e)
  if e == "E" then got = got + 1 end
end
local checked, k = 0, 0
while true do
  k = k + 1
  got = 0
  h.arm(k)
  S[which]()
  debug.sethook(h.hook, "l")
  local ok, err = pcall(mc.run, 10)
  debug.sethook()
  if not h.fired then
    h.fired = true
    assert(ok and got == 1, "the scenario alone")
    break
  end
  local ok2, err2 = pcall(mc.run, 10)
  if ok or err ~= "INT" or not ok2 or err2 ~= true or got ~= 1 then
    io.write("bad k=", k, ": first ", tostring(err), ", again ",
             tostring(err2), ", mc.onerror got it ", got, " times\n")
  else
    checked = checked + 1
  end
end
io.write("checked ", checked, " of ", k - 1, "\n")
]=]

describe("regress: a hook's error in the report of an error nobody takes",
         function()
  for _, which in ipairs({ "task", "message", "close" }) do
    it("leaves it reported once: " .. which, function()
      local out = helper.run_scenario(CHILD, which, 120)
      if not out then return pending(helper.NO_CHILD) end
      local checked, of = out:match("checked (%d+) of (%d+)")
      assert.truthy(checked, out)
      assert.truthy(tonumber(of) >= 3, out)  -- the hook reached report
      assert.are.equal(of, checked, out)
    end)
  end
end)
