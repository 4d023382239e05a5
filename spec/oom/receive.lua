-- port:receive under allocation failure: it takes the next message, or
-- raises with the message still queued.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

cases[#cases + 1] = {
  name = "queued",
  setup = function()
    local ch = mc.MessageChannel()
    ch.port1:postMessage(1)
    ch.port1:postMessage(2)
    return { p2 = ch.port2 }
  end,
  action = function(c) return c.p2:receive(0) end,
  check = function(c, ok, ev)
    local got = H.drain(c.p2, "the queue")
    if ok then
      H.expect(ev and ev.data == 1, "receive gave %s", tostring(ev))
      H.expect(#got == 1 and got[1] == 2, "the queue holds %s", H.show(got))
    else
      H.expect(#got == 2 and got[1] == 1 and got[2] == 2, "receive raised, "
               .. "and the queue holds %s", H.show(got))
    end
  end,
}

-- A task waits in receive; mc.run() hands it the message.
cases[#cases + 1] = {
  name = "task",
  setup = function()
    local ch = mc.MessageChannel()
    local c = { got = H.zeros(3), reported = 0, p1 = ch.port1,
                p2 = ch.port2 }
    mc.onerror = function() c.reported = c.reported + 1 end
    mc.spawn(function()
      for _ = 1, 2 do
        local ev = ch.port2:receive()
        if ev then c.got[ev.data] = c.got[ev.data] + 1 end
      end
    end)
    mc.step()  -- the task waits now
    ch.port1:postMessage(1)
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    local ok, r = pcall(mc.run, H.BOUND)
    H.expect(ok or r:find("would wait forever", 1, true), "mc.run raised %s",
             tostring(r))
    H.expect(c.got[1] == 1 or (c.got[1] == 0 and c.reported > 0),
             "the waiting task got the message %d times (%d errors)",
             c.got[1], c.reported)
    if c.got[1] == 1 then
      -- its second receive may raise out of memory, which ends the task
      -- with a report; the message then waits at the port
      local reported = c.reported
      c.p1:postMessage(2)
      H.run("a second message")
      local ev = c.got[2] == 0 and c.reported > 0 and c.p2:receive(0)
      H.expect(c.got[2] == 1 or (ev and ev.data == 2),
               "the task got a second message %d times (%d errors, "
               .. "queued: %s)", c.got[2], c.reported - reported,
               tostring(ev and ev.data))
    end
  end,
}

-- receive with a timeout inside a task: the timer wakes it once.
cases[#cases + 1] = {
  name = "timeout",
  setup = function()
    local ch = mc.MessageChannel()
    local c = { ev = false, why = false, n = 0, reported = 0, p2 = ch.port2 }
    mc.onerror = function() c.reported = c.reported + 1 end
    mc.spawn(function()
      local ev, why = ch.port2:receive(0.005)
      c.n = c.n + 1
      c.ev, c.why = ev, why
    end)
    mc.step()
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    H.run("a receive that times out")
    H.expect(c.n == 1 or (c.n == 0 and c.reported > 0), "receive returned "
             .. "%d times", c.n)
    if c.n == 1 then
      H.expect(not c.ev and c.why == "timeout", "receive gave %s, %s",
               tostring(c.ev), tostring(c.why))
    end
  end,
}

-- receive outside a task runs the scheduler until the message comes.
cases[#cases + 1] = {
  name = "outside",
  setup = function()
    local ch = mc.MessageChannel()
    mc.spawn(function()
      mc.sleep(0.002)
      ch.port1:postMessage(1)
    end)
    return { p2 = ch.port2 }
  end,
  action = function(c) return c.p2:receive(H.BOUND) end,
  check = function(c, ok, ev)
    H.run("after receive")
    local got = H.drain(c.p2, "the queue")
    local n = #got + ((ok and ev and ev.data == 1) and 1 or 0)
    H.expect(n == 1 or (n == 0 and not ok), "the message arrived %d times "
             .. "(receive %s)", n, ok and "completed" or "raised")
  end,
}

return cases
