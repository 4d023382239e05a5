-- A luv (libuv) TCP server that hands its CPU work to a worker thread: a
-- client sends a number per line, the worker counts the primes below it,
-- the server writes the count back. libuv waits on the sockets and on
-- messagechannel's descriptor at once (messagechannel.luv): nothing polls,
-- and a long count never stalls the server.
--
--   lua examples/luv.lua              serve on a free port, send one request
--                                     from a client in the same loop, print
--                                     it and the answer, exit (make demo)
--   lua examples/luv.lua serve [port] serve on 127.0.0.1:port (7000 by
--                                     default) until Ctrl-C; try
--                                     `nc 127.0.0.1 7000`, one number a line
--
-- Run it from the top of the tree: in examples/ itself, require "luv"
-- would find this file.
--
-- examples/cqueues.lua is the same server under cqueues.

local uv = require "luv"
local mc = require "messagechannel"

local mode, port = ...
if mode ~= nil and mode ~= "serve" then
  io.stderr:write("usage: lua examples/luv.lua [serve [port]]\n")
  os.exit(2)
end
local MAX = 1000000

-- The worker, examples/primes.lua: a Lua state on its own thread that
-- counts primes, job after job, until told to quit.
local here = (arg and arg[0] or ""):match("^(.*/)") or ""
local worker = mc.Worker(here .. "primes.lua")

-- Asks the worker for the primes below n over a channel of our own (port2
-- moves to the worker); answer(count) runs when the count comes back.
local function count_primes(n, answer)
  local ch = mc.MessageChannel()
  ch.port1.onmessage = function(e) ch.port1:close() answer(e.data) end
  worker:postMessage({ n = n, reply = ch.port2 }, { ch.port2 })
end

local server, sigint = uv.new_tcp(), uv.new_signal()
local clients = {}  -- the open connections

-- A write to a client that hung up raises SIGPIPE, which ends the process
-- unless taken: take it, and the write fails with EPIPE instead.
local sigpipe = uv.new_signal()
sigpipe:start("sigpipe", function() end)
sigpipe:unref()  -- it does not keep the loop alive

local function on_connection(err)
  assert(not err, err)
  local client, buffered, waiting, ended = uv.new_tcp(), "", 0, false
  server:accept(client)
  clients[client] = true

  local function close_when_done()  -- the client ended, all answers out
    if ended and waiting == 0 and clients[client] then
      clients[client] = nil
      client:shutdown(function() client:close() end)  -- after the writes
    end
  end

  local function on_line(line)
    local n = tonumber(line:match("^%s*(%d+)%s*$"))
    if not n or n > MAX then
      return client:write("send a whole number up to " .. MAX .. "\n")
    end
    waiting = waiting + 1
    count_primes(n, function(count)
      waiting = waiting - 1
      if clients[client] then  -- unless shutdown() closed it meanwhile
        client:write(count .. " primes below " .. n .. "\n")
      end
      close_when_done()
    end)
  end

  client:read_start(function(rerr, chunk)
    if rerr or not chunk then  -- an error, or the client ended its side
      if buffered ~= "" then on_line(buffered) end  -- a last line, no \n
      ended = true
      return close_when_done()
    end
    buffered = buffered .. chunk
    for line in buffered:gmatch("([^\n]*)\n") do on_line(line) end
    buffered = buffered:match("[^\n]*$")
  end)
end

-- Ctrl-C, or the demo's end: close what we opened and tell the worker to
-- quit. uv.run() returns once libuv and messagechannel are both idle.
local function shutdown()
  server:close()
  sigint:close()
  for client in pairs(clients) do client:close() end
  clients = {}
  worker:postMessage("quit")
end

-- One request from a client in the same loop, as nc would send it.
local function demo(at)
  print("libuv " .. uv.version_string() .. ": a server and a client, one loop")
  local client, answer = uv.new_tcp(), ""
  client:connect("127.0.0.1", at, function(err)
    assert(not err, err)
    print("client sends:   100000")
    client:write("100000\n")
    client:read_start(function(rerr, chunk)
      answer = answer .. assert(chunk, rerr or "connection closed")
      if not answer:find("\n") then return end  -- the line came in pieces
      print("server answers: " .. answer:match("[^\n]*"))
      client:close()
      shutdown()
    end)
  end)
end

worker.onexit = function(e) print("worker exited, code " .. e.code) end
require("messagechannel.luv").start()  -- the scheduler runs in luv's loop
assert(server:bind("127.0.0.1", mode and (tonumber(port) or 7000) or 0))
assert(server:listen(128, on_connection))
sigint:start("sigint", shutdown)
if mode then
  print("serving on 127.0.0.1:" .. server:getsockname().port)
else
  demo(server:getsockname().port)
end
uv.run()
