-- close under allocation failure: a close disentangles both ports, and
-- each gets one close event after its queued messages; or it raises with
-- the pair still entangled.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

-- Ports whose events are recorded: p2 gets messages 1 and 2 from p1.
local function pair()
  local ch = mc.MessageChannel()
  local r1, r2 = H.recorder(4), H.recorder(4)
  for _, x in ipairs({ { ch.port1, r1 }, { ch.port2, r2 } }) do
    local p, rec = x[1], x[2]
    p.onmessage = rec.on_message
    p.onmessageerror = rec.on_error
    p.onclose = function()
      rec.closes = rec.closes + 1
      rec.close_after = rec.n
    end
  end
  mc.onerror = r1.on_report
  ch.port1:postMessage(1)
  ch.port1:postMessage(2)
  return { p1 = ch.port1, p2 = ch.port2, r1 = r1, r2 = r2 }
end

-- Both ports closed: one close event each, p2's after messages 1..n.
local function closed_once(c, n, what)
  H.run(what)
  H.expect(c.r1.closes == 1 and c.r2.closes == 1, "%s: close events: %d at "
           .. "port1, %d at port2", what, c.r1.closes, c.r2.closes)
  H.delivered_once(c.r2, what, n, c.r1.reported)
  H.expect(c.r2.close_after == c.r2.n, "%s: port2's close came before its "
           .. "messages", what)
  H.dead(c.p1, what .. ": port1")
  H.dead(c.p2, what .. ": port2")
end

cases[#cases + 1] = {
  name = "call",
  setup = pair,
  action = function(c) return c.p1:close() end,
  check = function(c, ok)
    if ok then
      closed_once(c, 2, "after close()")
    else  -- nothing changed: still entangled
      H.run("close() raised")
      H.expect(c.r1.closes == 0 and c.r2.closes == 0, "close() raised, and "
               .. "a close event came")
      H.expect(c.p1:postMessage(3) == true, "close() raised, and the port "
               .. "is closed")
      c.p1:close()
      closed_once(c, 3, "a later close()")
    end
  end,
}

cases[#cases + 1] = {
  name = "dispatch",
  setup = function()
    local c = pair()
    c.p2:close()
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c) closed_once(c, 2, "the close events") end,
}

-- receive() after the close: the queued message, then "closed".
cases[#cases + 1] = {
  name = "receive",
  setup = function()
    local ch = mc.MessageChannel()
    ch.port1:postMessage(1)
    ch.port1:close()
    return { p2 = ch.port2 }
  end,
  action = function(c) return c.p2:receive(0) end,
  check = function(c, ok, ev)
    local got, why = H.drain(c.p2, "receive")
    if ok then
      H.expect(ev and ev.data == 1, "receive gave %s", tostring(ev))
      H.expect(#got == 0, "the message is still queued after receive")
    else
      H.expect(#got == 1 and got[1] == 1, "receive raised, and the queue "
               .. "holds %s", H.show(got))
    end
    H.expect(why == "closed", "receive() at the end gave %s", tostring(why))
  end,
}

-- Closing from inside a listener.
cases[#cases + 1] = {
  name = "listener",
  setup = function()
    local c = pair()
    local on_message = c.r2.on_message
    c.p2.onmessage = function(ev)
      on_message(ev)
      if ev.data == 2 then c.p2:close() end
    end
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    H.run("close() in a listener")
    -- the listener's close may have raised (then reported): close again
    c.p2:close()
    closed_once(c, 2, "close() in a listener")
  end,
}

return cases
