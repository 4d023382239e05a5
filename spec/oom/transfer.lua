-- A transferred port or Buffer opened at the receiving port under
-- allocation failure: it arrives once, working, with its queued messages;
-- or the message is reported as undeliverable and the port closes at its
-- partner. It never ends with two owners, or none and no close.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

-- a1 - a2 entangled, a2 on its way from b1 to b2 with "queued" at a2.
local function moving()
  local a, b = mc.MessageChannel(), mc.MessageChannel()
  local c = { a1 = a.port1, b1 = b.port1, b2 = b.port2, got = { false },
              n = 0, errors = 0, closes = 0, reported = 0 }
  a.port1:postMessage("queued")
  b.port1:postMessage({ p = a.port2 }, { a.port2 })
  a.port1.onclose = function() c.closes = c.closes + 1 end
  mc.onerror = function() c.reported = c.reported + 1 end
  return c
end

-- After the move was tried: the port arrived and works, or it was
-- reported and its partner got close.
local function arrived_or_closed(c, port, what)
  H.run(what)
  if port then
    H.expect(c.closes == 0, "%s: the port arrived, and its partner got "
             .. "close", what)
    local got = H.drain(port, what)
    H.expect(#got == 1 and got[1] == "queued", "%s: the port's queue holds "
             .. "%s", what, H.show(got))
    H.delivers(c.a1, port, what .. ": partner -> port")
    H.delivers(port, c.a1, what .. ": port -> partner")
  else
    -- a port that reached a listener which failed to move it on is
    -- garbage now: its partner's close comes once it is collected
    collectgarbage()
    collectgarbage()
    H.run(what)
    H.expect(c.errors + c.reported > 0, "%s: the port never arrived, and no "
             .. "error said so", what)
    H.expect(c.closes == 1, "%s: the port never arrived, and its partner "
             .. "got %d close events", what, c.closes)
    H.dead(c.a1, what .. ": the partner")
  end
end

cases[#cases + 1] = {
  name = "dispatch",
  setup = function()
    local c = moving()
    c.b2.onmessage = function(ev)
      c.n = c.n + 1
      c.got[1] = ev.ports[1]
    end
    c.b2.onmessageerror = function() c.errors = c.errors + 1 end
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    H.run("the move")
    H.expect(c.n <= 1, "the message with the port arrived %d times", c.n)
    arrived_or_closed(c, c.got[1] or nil, "a port moved by dispatch")
  end,
}

cases[#cases + 1] = {
  name = "receive",
  setup = moving,
  action = function(c) return c.b2:receive(0) end,
  check = function(c, ok, ev)
    local port
    if ok then
      H.expect(ev ~= nil, "receive(0) found nothing")
      port = ev.ports[1]
      H.expect(port ~= nil and ev.data.p == port, "the port is not in the "
               .. "event")
    else
      local again = H.receive(c.b2, "receive again", 0)
      H.expect(again ~= nil, "receive() raised, and the message is gone")
      port = again.ports[1]
    end
    H.expect(H.receive(c.b2, "nothing more", 0) == nil, "another message "
             .. "arrived")
    arrived_or_closed(c, port, "a port moved by receive")
  end,
}

cases[#cases + 1] = {
  name = "buffer",
  setup = function()
    local ch = mc.MessageChannel()
    local buf = mc.Buffer("moving bytes")
    local c = { n = 0, errors = 0, reported = 0, p1 = ch.port1, got = false }
    ch.port1:postMessage(buf, { buf })
    ch.port2.onmessage = function(ev)
      c.n = c.n + 1
      c.got = ev.data
    end
    ch.port2.onmessageerror = function() c.errors = c.errors + 1 end
    mc.onerror = function() c.reported = c.reported + 1 end
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    H.run("a Buffer moved")
    H.expect(c.n <= 1, "the Buffer arrived %d times", c.n)
    if c.n == 1 then
      H.expect(c.got and c.got:sub() == "moving bytes", "the Buffer arrived "
               .. "as %s", tostring(c.got))
    else
      H.expect(c.errors + c.reported > 0, "the Buffer never arrived, and no "
               .. "error said so")
    end
  end,
}

-- A port that moves on again from the listener that got it.
cases[#cases + 1] = {
  name = "onward",
  setup = function()
    local c = moving()
    local d = mc.MessageChannel()
    c.b2.onmessage = function(ev)
      d.port1:postMessage(ev.data, ev.ports)
    end
    d.port2.onmessage = function(ev)
      c.n = c.n + 1
      c.got[1] = ev.ports[1]
    end
    c.b2.onmessageerror = function() c.errors = c.errors + 1 end
    d.port2.onmessageerror = c.b2.onmessageerror
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    H.run("the moves")
    H.expect(c.n <= 1, "the port arrived %d times", c.n)
    arrived_or_closed(c, c.got[1] or nil, "a port moved twice")
  end,
}

return cases
