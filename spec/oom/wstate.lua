-- Allocation failure inside a worker's own Lua state, from its creation
-- to its end (state = "worker": the program's state never fails). The
-- worker either does its job or fails; either way it ends, once, its
-- parent hears of it (an exit event, after an error event when it
-- failed), what it posted arrives at most once, its ports close at their
-- partners, and nothing leaks or hangs.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

-- A worker's events, recorded (see oomcheck); `ends` checks them once it has ended.
local watch = H.watch_worker

-- It ended once: with code 0, having done its job (done()), or with an
-- error event first that says why.
local function ends(c, what, done)
  H.run(what)
  H.expect(c.exits == 1, "%s: %d exit events (%d error events: %s)", what,
           c.exits, c.errors, tostring(c.error))
  for i = 1, 4 do
    H.expect(c.rec.count[i] <= 1, "%s: message %d arrived %d times", what, i,
             c.rec.count[i])
  end
  if c.code == 0 then
    H.expect(c.errors == 0, "%s: code 0 after an error event (%s)", what,
             tostring(c.error))
    if done then done() end
  else
    H.expect(c.errors == 1 or c.rec.reported == 1, "%s: code %s with %d "
             .. "error events and %d reports", what, tostring(c.code),
             c.errors, c.rec.reported)
    H.expect(c.errors == 0 or type(c.error) == "string", "%s: the error is "
             .. "a %s", what, type(c.error))
    H.expect(c.errors == 0 or c.error:find("not enough memory", 1, true),
             "%s: the worker failed with: %s", what, tostring(c.error))
  end
end

cases[#cases + 1] = {
  name = "minimal",
  state = "worker",
  setup = function() return {} end,
  action = function(c)
    c.w = mc.Worker([[require "messagechannel"]], { eval = true })
    watch(c.w, c)
  end,
  check = function(c) ends(c, "a worker that only loads the module") end,
}

-- Reads workerData, echoes, answers "bye" with a Buffer and ends.
local ECHO = [[
local mc = require "messagechannel"
local data = mc.workerData
local port = mc.parentPort
port.onmessage = function(ev)
  if ev.data == "bye" then
    port:postMessage({ n = data.n, buf = mc.Buffer("from the worker") })
    port:close()
  else
    port:postMessage(ev.data)
  end
end
port:postMessage(1)
]]

cases[#cases + 1] = {
  name = "echo",
  state = "worker",
  setup = function() return {} end,
  action = function(c)
    c.w = mc.Worker(ECHO, { eval = true, data = { n = 7 } })
    watch(c.w, c)
    c.last = false
    local on_message = c.rec.on_message
    c.w.onmessage = function(ev)
      if type(ev.data) == "table" then
        c.last = ev.data
      else
        on_message(ev)
      end
    end
    c.w:postMessage(2)
    c.w:postMessage("bye")
  end,
  check = function(c)
    ends(c, "an echo worker", function()
      H.expect(c.rec.count[1] == 1 and c.rec.count[2] == 1, "the worker "
               .. "ended well, and its messages came %s", H.show(c.rec.count))
      H.expect(c.last and c.last.n == 7
               and c.last.buf:sub() == "from the worker", "the last message "
               .. "is wrong")
    end)
  end,
}

-- A port moves in with workerData; the worker answers through it. Its
-- partner gets the answer or not, and its close either way.
cases[#cases + 1] = {
  name = "transfer",
  state = "worker",
  setup = function()
    local ch = mc.MessageChannel()
    local c = { a1 = ch.port1, a2 = ch.port2, closes = 0, got = 0 }
    ch.port1.onmessage = function() c.got = c.got + 1 end
    ch.port1.onclose = function() c.closes = c.closes + 1 end
    return c
  end,
  action = function(c)
    c.w = mc.Worker([[
      local mc = require "messagechannel"
      local p = mc.workerData.port
      p:postMessage("hello")
      local q = mc.MessageChannel()
      p:postMessage({ back = q.port2 }, { q.port2 })
      q.port1:postMessage("through a new port")
      p:close()
    ]], { eval = true, data = { port = c.a2 }, transfer = { c.a2 } })
    watch(c.w, c)
  end,
  check = function(c)
    ends(c, "a worker given a port", function()
      H.expect(c.got == 2, "the worker ended well, and %d messages came",
               c.got)
    end)
    H.expect(c.got <= 2, "%d messages came", c.got)
    H.expect(c.closes == 1, "the port's partner got %d close events",
             c.closes)
  end,
}

-- mc.workerData read twice, its first read under a pcall: a first read
-- that failed (no memory while its Buffer was made) leaves no read in
-- progress behind. The second read gives the first's value, or raises
-- that the data is lost, or runs out of memory itself; never that the
-- data "is being read".
cases[#cases + 1] = {
  name = "data-twice",
  state = "worker",
  setup = function() return { buf = mc.Buffer("data bytes") } end,
  action = function(c)
    c.w = mc.Worker([[
      local mc = require "messagechannel"
      local ok1, a = pcall(function() return mc.workerData end)
      local ok2, b = pcall(function() return mc.workerData end)
      mc.parentPort:postMessage({
        ok1 = ok1, e1 = not ok1 and tostring(a) or nil,
        ok2 = ok2, e2 = not ok2 and tostring(b) or nil,
        same = ok1 and ok2 and rawequal(a, b),
        bytes = ok2 and b.buf:sub() or nil })
    ]], { eval = true, data = { buf = c.buf }, transfer = { c.buf } })
    watch(c.w, c)
    c.report = false
    c.w.onmessage = function(ev) c.report = ev.data end
  end,
  check = function(c)
    ends(c, "a worker that reads workerData twice")
    local r = c.report
    if r then
      H.expect(not (r.e1 or ""):find("being read", 1, true)
               and not (r.e2 or ""):find("being read", 1, true),
               "a read says the data is being read: %s / %s",
               tostring(r.e1), tostring(r.e2))
      if r.ok1 then
        H.expect(r.same, "the second read is not the first's value (%s)",
                 tostring(r.e2))
      end
      if r.ok2 then
        H.expect(r.bytes == "data bytes", "the Buffer holds %s",
                 tostring(r.bytes))
      else
        H.expect(r.e2:find("not enough memory", 1, true)
                 or r.e2:find("is lost: its first read failed", 1, true),
                 "the second read raised %s", r.e2)
      end
    end
  end,
}

-- os.exit in the worker.
cases[#cases + 1] = {
  name = "exit",
  state = "worker",
  setup = function() return {} end,
  action = function(c)
    c.w = mc.Worker([[
      local mc = require "messagechannel"
      mc.parentPort:postMessage(1)
      os.exit(3)
    ]], { eval = true })
    watch(c.w, c)
  end,
  check = function(c)
    H.run("a worker that calls os.exit")
    H.expect(c.exits == 1, "%d exit events", c.exits)
    H.expect(c.code == 3 or (c.code ~= 0 and c.errors + c.rec.reported == 1),
             "the worker ended with code %s (%d errors)", tostring(c.code),
             c.errors)
  end,
}

-- A worker that waits with receive and sleep.
cases[#cases + 1] = {
  name = "blocking",
  state = "worker",
  setup = function() return {} end,
  action = function(c)
    c.w = mc.Worker([[
      local mc = require "messagechannel"
      local port = mc.parentPort
      local ev = port:receive(5)
      mc.sleep(0.001)
      port:postMessage(ev and ev.data)
      mc.spawn(function() port:postMessage(3) end)
    ]], { eval = true })
    watch(c.w, c)
    c.w:postMessage(2)
  end,
  check = function(c)
    ends(c, "a worker that blocks", function()
      H.expect(c.rec.count[2] == 1 and c.rec.count[3] == 1, "the worker "
               .. "ended well, and its messages came %s", H.show(c.rec.count))
    end)
  end,
}

return cases
