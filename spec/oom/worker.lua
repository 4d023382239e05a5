-- Workers under allocation failure in the program's own state: starting
-- one, posting to it, its end and its events. A Worker starts, or
-- mc.Worker raises with nothing started and nothing transferred; each of
-- its messages and its exit event arrive once.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

-- Echoes every message; "bye" closes its port, which ends it.
local ECHO = [[
local mc = require "messagechannel"
local port = mc.parentPort
port.onmessage = function(ev)
  if ev.data == "bye" then port:close() else port:postMessage(ev.data) end
end
]]

-- A worker's events, recorded (see oomcheck).
local watch = H.watch_worker

-- The worker ends once.
local function ended(c, what)
  H.run(what)
  H.expect(c.exits == 1, "%s: %d exit events", what, c.exits)
end

-- A worker that starts now echoes and ends.
local function fresh_worker(what)
  local c = {}
  local w = mc.Worker(ECHO, { eval = true })
  watch(w, c)
  w:postMessage(1)
  w:postMessage("bye")
  ended(c, what)
  H.expect(c.code == 0 and c.rec.count[1] == 1, "%s: code %s, echo %d",
           what, tostring(c.code), c.rec.count[1])
end

cases[#cases + 1] = {
  name = "start",
  setup = function()
    return { src = ECHO, opts = { eval = true, data = { 1, 2, 3 } },
             w = false }
  end,
  action = function(c)
    c.w = mc.Worker(c.src, c.opts)
  end,
  check = function(c, ok)
    if ok then
      watch(c.w, c)
      c.w:postMessage(1)
      c.w:postMessage("bye")
      ended(c, "a worker started")
      H.expect(c.code == 0, "the worker ended with code %s (%s)",
               tostring(c.code), tostring(c.error))
      H.delivered_once(c.rec, "the echo", 1)
    end
    fresh_worker("a worker started later")
  end,
}

-- A port moves into the worker with its workerData.
local ECHO_PORT = [[
local mc = require "messagechannel"
local p = mc.workerData.port
p.onmessage = function(ev)
  p:postMessage(ev.data)
  p:close()
end
]]

cases[#cases + 1] = {
  name = "transfer",
  setup = function()
    local ch = mc.MessageChannel()
    return { a1 = ch.port1, a2 = ch.port2, src = ECHO_PORT, w = false,
             opts = { eval = true, data = { port = ch.port2 },
                      transfer = { ch.port2 } } }
  end,
  action = function(c)
    c.w = mc.Worker(c.src, c.opts)
  end,
  check = function(c, ok)
    if ok then
      H.dead(c.a2, "the port moved to the worker")
      watch(c.w, c)
      c.a1:postMessage(7)
      local ev = H.receive(c.a1, "the echo through the moved port")
      H.expect(ev and ev.data == 7, "no echo through the moved port")
      ended(c, "the worker")
    else
      H.delivers(c.a1, c.a2, "a1 -> a2")
      H.delivers(c.a2, c.a1, "a2 -> a1")
    end
  end,
}

cases[#cases + 1] = {
  name = "post",
  setup = function()
    local c = {}
    c.w = mc.Worker(ECHO, { eval = true })
    watch(c.w, c)
    return c
  end,
  action = function(c)
    return c.w:postMessage(1)
  end,
  check = function(c, ok, r)
    c.w:postMessage(2)
    c.w:postMessage("bye")
    ended(c, "after postMessage")
    H.expect(c.rec.count[1] == ((ok and r == true) and 1 or 0), "postMessage "
             .. "%s, and the echo came %d times", ok and "completed"
             or "raised", c.rec.count[1])
    H.expect(c.rec.count[2] == 1, "a later message was echoed %d times",
             c.rec.count[2])
  end,
}

cases[#cases + 1] = {
  name = "post_buffer",
  setup = function()
    local c = {}
    c.w = mc.Worker(ECHO, { eval = true })
    watch(c.w, c)
    c.buf = mc.Buffer("to the worker")
    c.list = { c.buf }
    c.echo, c.got = 0, false
    c.w.onmessage = function(ev)
      c.echo = c.echo + 1
      c.got = ev.data
    end
    return c
  end,
  action = function(c)
    return c.w:postMessage(c.buf, c.list)
  end,
  check = function(c, ok, r)
    c.w:postMessage("bye")
    ended(c, "after postMessage")
    if ok and r == true then
      H.expect(c.buf.detached and c.echo == 1
               and c.got:sub() == "to the worker",
               "the Buffer moved: detached %s, echoed %d times",
               tostring(c.buf.detached), c.echo)
    else
      H.expect(not c.buf.detached and c.echo == 0, "postMessage raised: "
               .. "detached %s, echoed %d times", tostring(c.buf.detached),
               c.echo)
    end
  end,
}

-- The worker posts and ends on its own; its messages and its exit are
-- dispatched under failure.
cases[#cases + 1] = {
  name = "exit",
  setup = function()
    local c = {}
    c.w = mc.Worker([[
      local mc = require "messagechannel"
      for i = 1, 3 do mc.parentPort:postMessage(i) end
    ]], { eval = true })
    watch(c.w, c)
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    ended(c, "the worker's end")
    H.expect(c.code == 0, "the worker ended with code %s", tostring(c.code))
    H.delivered_once(c.rec, "the worker's messages", 3, c.rec.reported)
  end,
}

cases[#cases + 1] = {
  name = "error",
  setup = function()
    local c = {}
    c.w = mc.Worker([[error("boom", 0)]], { eval = true })
    watch(c.w, c)
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    ended(c, "the worker's error")
    H.expect(c.code == 1, "the worker ended with code %s", tostring(c.code))
    H.expect(c.errors == 1 or (c.errors == 0 and c.rec.reported > 0),
             "%d error events", c.errors)
  end,
}

cases[#cases + 1] = {
  name = "terminate",
  setup = function()
    local c = {}
    c.w = mc.Worker([[
      require("messagechannel").parentPort:postMessage(1)
      while true do end
    ]], { eval = true })
    watch(c.w, c)
    local deadline = mc.now() + H.BOUND
    while c.rec.count[1] == 0 and mc.now() < deadline do mc.sleep(0.002) end
    H.expect(c.rec.count[1] == 1, "the worker did not start")
    return c
  end,
  action = function(c) return c.w:terminate() end,
  check = function(c, ok)
    if not ok then c.w:terminate() end
    ended(c, "terminate()")
    H.expect(c.code ~= 0, "a terminated worker ended with code 0")
  end,
}

return cases
