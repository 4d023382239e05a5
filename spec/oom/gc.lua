-- Collection under allocation failure: a port collected while entangled
-- closes at its partner, and what its queue held (ports, Buffers) is let
-- go; nothing leaks.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

local function watched(c, p, key)
  c[key] = 0
  p.onclose = function() c[key] = c[key] + 1 end
end

-- A collection in the action; its finalizers run under failure too.
local function collect()
  collectgarbage()
  collectgarbage()
end

local function closed_once(c, key, what)
  collectgarbage()
  collectgarbage()
  H.run(what)
  H.expect(c[key] == 1, "%s: the partner got %d close events", what, c[key])
end

cases[#cases + 1] = {
  name = "partner",
  setup = function()
    local c = {}
    local ch = mc.MessageChannel()
    ch.port1:postMessage("one")
    ch.port1:postMessage({ 2, "two" })
    watched(c, ch.port1, "closes")
    c.p1 = ch.port1
    return c  -- port2 is garbage now
  end,
  action = collect,
  check = function(c)
    closed_once(c, "closes", "a port collected")
    H.dead(c.p1, "the partner")
  end,
}

-- The collected port's queue holds a port in transit and a Buffer.
cases[#cases + 1] = {
  name = "transit",
  setup = function()
    local c = {}
    local ch, x = mc.MessageChannel(), mc.MessageChannel()
    local buf = mc.Buffer("in transit")
    ch.port1:postMessage({ p = x.port2, b = buf }, { x.port2, buf })
    watched(c, ch.port1, "closes")
    watched(c, x.port1, "xcloses")
    c.p1, c.x1 = ch.port1, x.port1
    return c
  end,
  action = collect,
  check = function(c)
    closed_once(c, "closes", "a port collected")
    closed_once(c, "xcloses", "a port in the collected port's queue")
  end,
}

-- Both ends unreachable, each with messages: they go, nothing leaks.
cases[#cases + 1] = {
  name = "pair",
  setup = function()
    local ch = mc.MessageChannel()
    local x = mc.MessageChannel()
    ch.port1:postMessage({ p = x.port1 }, { x.port1 })
    ch.port2:postMessage(mc.Buffer("bytes"))
    local c = {}
    watched(c, x.port2, "xcloses")
    c.x2 = x.port2
    return c
  end,
  action = collect,
  check = function(c)
    closed_once(c, "xcloses", "a port in a collected pair's queue")
  end,
}

-- A collected port with a listener that the partner keeps alive, and its
-- partner collected with it.
cases[#cases + 1] = {
  name = "listening",
  setup = function()
    local ch = mc.MessageChannel()
    ch.port2.onmessage = function() end
    ch.port1:postMessage(1)
    return {}
  end,
  action = collect,
  check = function()
    collectgarbage()
    H.run("a pair collected")
  end,
}

-- A collected Buffer, and one being moved.
cases[#cases + 1] = {
  name = "buffer",
  setup = function()
    local c = { bufs = {} }
    for i = 1, 4 do c.bufs[i] = mc.Buffer(string.rep("x", 100 * i)) end
    c.bufs = nil
    return c
  end,
  action = collect,
  check = function() collectgarbage() end,
}

return cases
