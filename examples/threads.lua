-- A tour of mc.Worker: Lua on OS threads that talk through message ports.
-- Run it with `make demo`.
--
-- Each worker is a fresh Lua state on its own thread: it shares no
-- variables with the main thread, only messages (copies, or moved ports
-- and Buffers). Workers never print here; every line comes from the main
-- thread, in an order the messages fix, so the output is the same on
-- every run.

local mc = require "messagechannel"

local function say(...)
  print(string.format(...))
end

say("main thread: mc.isMainThread = %s, mc.parentPort = %s",
    tostring(mc.isMainThread), tostring(mc.parentPort))

-- 1. Fan out, fan in. Three workers each square a share of the numbers,
--    given to them as workerData, post the results back and end. A worker
--    is usually a file, mc.Worker("squarer.lua", options); with
--    options.eval = true the first argument is the Lua source itself.
local SQUARER = [[
  local mc = require "messagechannel"
  local job = mc.workerData           -- a copy of options.data
  local squares = {}
  for i, n in ipairs(job.numbers) do squares[i] = n * n end
  mc.parentPort:postMessage({ id = job.id, squares = squares })
  -- The file ends, then the worker's scheduler runs until idle, then the
  -- thread exits with code 0.
]]

do
  local shares = { { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } }
  local results, codes = {}, {}
  for id, numbers in ipairs(shares) do
    local w = mc.Worker(SQUARER, { eval = true,
                                   data = { id = id, numbers = numbers } })
    -- The workers run side by side, so their replies may come in any
    -- order: store them, print after mc.run().
    w.onmessage = function(e) results[e.data.id] = e.data.squares end
    w.onexit = function(e) codes[#codes + 1] = e.code end
  end
  mc.run()  -- returns once every worker has exited
  for id = 1, #shares do
    say("1. worker %d squared %s: %s", id, table.concat(shares[id], " "),
        table.concat(results[id], " "))
  end
  say("   %d workers exited, codes %s", #codes, table.concat(codes, " "))
end

-- 2. A conversation with one worker, driven by its replies: ping-pong, a
--    Buffer moved in and back out without a copy, then a private channel.
--    The worker stays alive while mc.parentPort has a listener, until it
--    closes that port itself.
local SERVER = [[
  local mc = require "messagechannel"
  local parent = mc.parentPort

  local handlers = {}

  function handlers.ping(msg)
    parent:postMessage({ op = "pong", n = msg.n })
  end

  function handlers.sum(msg)
    local buf, sum = msg.buf, 0     -- the Buffer moved here: same bytes
    for i = 1, #buf do sum = sum + buf:byte(i) end
    -- Moved back with the reply; this worker's buf is detached after.
    parent:postMessage({ op = "sum", sum = sum, buf = buf }, { buf })
  end

  function handlers.private(msg, e)
    -- The moved port arrives in e.ports (and where it is in the data).
    local port = e.ports[1]
    assert(port == msg.port)
    port.onmessage = function(m)
      port:postMessage(string.upper(m.data))
      port:close()                  -- both ends get a close event
    end
  end

  function handlers.bye()
    parent:close()  -- nothing keeps the worker now: it ends, code 0
  end

  parent.onmessage = function(e)
    handlers[e.data.op](e.data, e)
  end
]]

do
  local w = mc.Worker(SERVER, { eval = true })
  local replies = {}

  function replies.pong(msg)
    say("2. pong %d", msg.n)
    if msg.n < 3 then
      w:postMessage({ op = "ping", n = msg.n + 1 })
      return
    end
    -- Transfer a Buffer: it moves to the worker, this one is detached.
    local bytes = {}
    for i = 1, 100 do bytes[i] = string.char(i) end
    local buf = mc.Buffer(table.concat(bytes))  -- bytes 1, 2, ..., 100
    w:postMessage({ op = "sum", buf = buf }, { buf })
    say("   sent a Buffer: here it is detached = %s, #buf = %d",
        tostring(buf.detached), #buf)
  end

  function replies.sum(msg)
    say("   the worker summed %d bytes: %d; the Buffer is back, #buf = %d",
        #msg.buf, msg.sum, #msg.buf)
    -- A channel of our own: keep port1, move port2 into the worker.
    local ch = mc.MessageChannel()
    ch.port1.onmessage = function(e)
      say("   on the private channel: %s", e.data)
    end
    ch.port1.onclose = function()
      say("   the worker closed the private channel")
      w:postMessage({ op = "bye" })
    end
    w:postMessage({ op = "private", port = ch.port2 }, { ch.port2 })
    say("   moved port2 to the worker; the old object here: %s",
        tostring(ch.port2))
    ch.port1:postMessage("hello, worker")  -- queued; goes where port2 went
  end

  w.onmessage = function(e) replies[e.data.op](e.data) end
  w.onexit = function(e) say("   the worker said bye: exit code %d", e.code) end
  w:postMessage({ op = "ping", n = 1 })
  mc.run()
  say("   after the exit, w:postMessage returns %s", tostring(w:postMessage(1)))
end

-- 3. An error nobody takes in a worker ends it. The parent gets the
--    messages posted before it, then an error event (with a copy of the
--    error value), then the exit event, code 1.
do
  local w = mc.Worker([[
    local mc = require "messagechannel"
    mc.parentPort:postMessage("starting")
    error({ reason = "out of cheese" })  -- any cloneable value travels
  ]], { eval = true })
  w.onmessage = function(e) say("3. the worker says %q", e.data) end
  w.onerror = function(e)
    say("   error event: reason = %q (the traceback is in e.traceback)",
        e.error.reason)
  end
  w.onexit = function(e) say("   exit event: code %d", e.code) end
  mc.run()
end

-- 4. terminate() stops a worker wherever it is, even in an endless loop:
--    no error event, exit code 1.
do
  local w = mc.Worker([[
    local mc = require "messagechannel"
    mc.parentPort:postMessage("spinning")
    while true do end
  ]], { eval = true })
  w.onmessage = function(e)
    say("4. the worker says %q: terminate it", e.data)
    w:terminate()
  end
  w.onerror = function() say("   (never: terminate is not an error)") end
  w.onexit = function(e) say("   exit event: code %d", e.code) end
  mc.run()
end
