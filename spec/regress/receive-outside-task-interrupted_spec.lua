-- regress: a receive outside any task runs the scheduler until its waiter
-- is handed a message, which takes the message off the port's queue. An
-- error raised by a hook (an instruction limit, the standalone
-- interpreter's Ctrl-C) that landed after the hand-off, before receive
-- returned, left receive with the error, and the message was lost: not
-- returned, and no longer queued for a later receive or mc.run(). Now
-- the port's next receive (port:receive or mc.receive) returns it.
--
-- In a child process, a line hook raises "INT" at the k-th line of the
-- module's code that runs once the message was handed over, for each k
-- until receive returns without it.

local helper = require "spec.helper"

local CHILD = [=[
local which = ...
local armed  -- from the moment the hook counts
local h = require("spec.interrupt").new("S", function(info)
  return armed and armed() and info.source:find("messagechannel/", 1, true)
end, "l")
local mc = require "messagechannel"

local function receive(port, timeout)
  if which == "many" then return mc.receive({ port }, timeout) end
  return port:receive(timeout)
end

local bad, checked, k = 0, 0, 0
while true do
  k = k + 1
  local ch = mc.MessageChannel()
  local posted = false
  mc.spawn(function()
    ch.port1:postMessage("hello")
    posted = true
  end)
  -- from the turn that handed the message to receive's waiter on
  armed = function() return posted and ch.port2:pending() == 0 end
  h.arm(k)
  debug.sethook(h.hook, "l")
  local ok, ev = pcall(receive, ch.port2, which == "timeout" and 5 or nil)
  debug.sethook()
  local hit = h.fired
  h.fired, armed = true, nil
  if not hit then
    assert(ok and ev and ev.data == "hello", "the scenario alone")
    break
  end
  local ok2, idle = pcall(mc.run, 10)
  local again = receive(ch.port2, 0)
  local got = (ok and ev and ev.data == "hello" and 1 or 0)
              + (again and again.data == "hello" and 1 or 0)
  if not (ok2 and idle and got == 1 and receive(ch.port2, 0) == nil) then
    bad = bad + 1
    io.write("bad k=", k, ": first ", tostring(ok), " ", tostring(ev),
             "; run again ", tostring(idle), "; got it ", got, " times\n")
  else
    checked = checked + 1
  end
  ch.port1:close()
end
io.write("checked ", checked, " bad ", bad, "\n")
]=]

describe("regress: a hook's error after a receive outside any task took a "
         .. "message", function()
  for _, which in ipairs({ "receive", "timeout", "many" }) do
    it("leaves the message to the next receive: " .. which, function()
      local out = helper.run_scenario(CHILD, which, 120)
      if not out then return pending(helper.NO_CHILD) end
      local checked, bad = out:match("checked (%d+) bad (%d+)")
      assert.truthy(checked, out)
      assert.truthy(tonumber(checked) > 10, out)  -- the hook reached the loop
      assert.are.equal("0", bad, out)
    end)
  end
end)
