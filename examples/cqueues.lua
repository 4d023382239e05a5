-- The server of examples/luv.lua under cqueues: a client sends a number
-- per line, a worker thread counts the primes below it, the server writes
-- the count back. Each connection is a messagechannel task written as
-- plain sequential code: it reads its socket with cqueues and waits for the
-- worker with receive(). messagechannel.cqueues runs the scheduler as a
-- task of the controller and passes the socket waits on to it, so one
-- cq:loop() waits for everything: nothing polls.
--
--   lua examples/cqueues.lua              serve on a free port, send one
--                                         request from a client task, print
--                                         it and the answer, exit (make demo)
--   lua examples/cqueues.lua serve [port] serve on 127.0.0.1:port (7000 by
--                                         default) until Ctrl-C; try
--                                         `nc 127.0.0.1 7000`, one number a line
--
-- Run it from the top of the tree: in examples/ itself, require "cqueues"
-- would find this file.

local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local signal = require "cqueues.signal"
local socket = require "cqueues.socket"
local mc = require "messagechannel"

local mode, port = ...
if mode ~= nil and mode ~= "serve" then
  io.stderr:write("usage: lua examples/cqueues.lua [serve [port]]\n")
  os.exit(2)
end
local MAX = 1000000

-- The worker, examples/primes.lua: a Lua state on its own thread that
-- counts primes, job after job, until told to quit.
local here = (arg and arg[0] or ""):match("^(.*/)") or ""
local worker = mc.Worker(here .. "primes.lua")

-- Asks the worker for the primes below n over a channel of our own (port2
-- moves to the worker) and waits for the count: in a messagechannel task,
-- receive() suspends that task only.
local function count_primes(n)
  local ch = mc.MessageChannel()
  worker:postMessage({ n = n, reply = ch.port2 }, { ch.port2 })
  local e = assert(ch.port1:receive())
  ch.port1:close()
  return e.data
end

local clients = {}  -- the open connections

-- One connection, as a messagechannel task (mc.spawn). Its socket reads
-- and writes yield to cqueues, through the adapter; meanwhile the other
-- connections and the scheduler go on.
local function serve(conn)
  clients[conn] = true
  -- read() in a while loop, not `for line in conn:lines()`: Lua 5.1
  -- cannot yield from inside a for loop's iterator
  local line = conn:read("*l")
  while line do  -- until the client ends its side
    local n = tonumber(line:match("^%s*(%d+)%s*$"))
    if n and n <= MAX then
      conn:write(count_primes(n) .. " primes below " .. n .. "\n")
    else
      conn:write("send a whole number up to " .. MAX .. "\n")
    end
    line = conn:read("*l")
  end
  clients[conn] = nil
  conn:close()
end

local cq = cqueues.new()
require("messagechannel.cqueues").attach(cq)  -- the scheduler, as a task
port = mode and (tonumber(port) or 7000) or 0  -- 0: the system picks
local server = socket.listen("127.0.0.1", port)
assert(server:listen())  -- binds now, so localname() knows the port
local _, host, bound = server:localname()
local stopping, stopped = condition.new(), false
local function stop()  -- Ctrl-C, or the demo's end
  stopped = true
  stopping:signal()
end

cq:wrap(function()  -- accepts until stop(), then closes up
  -- A cqueues socket is pollable only while one of its calls waits; for
  -- "a client is waiting", poll its descriptor for reading.
  local incoming = { pollfd = server:pollfd(), events = "r" }
  while not stopped do
    cqueues.poll(incoming, stopping)
    local conn = not stopped and server:accept(0)  -- nil if none after all
    if conn then mc.spawn(serve, conn) end
  end
  server:close()
  for conn in pairs(clients) do conn:shutdown("r") end  -- their loops end
  worker:postMessage("quit")  -- cq:loop() returns once the worker ended
end)

signal.block(signal.SIGINT)  -- Ctrl-C: readable on sigint, no interrupt
local sigint = signal.listen(signal.SIGINT)
cq:wrap(function()
  if cqueues.poll(sigint, stopping) == sigint then stop() end
end)

if mode then
  print(("serving on %s:%d"):format(host, bound))
else
  print("cqueues " .. cqueues.VERSION .. ": a server and a client, one loop")
  cq:wrap(function()  -- one request, as nc would send it
    local conn = socket.connect(host, bound)
    print("client sends:   100000")
    conn:write("100000\n")
    print("server answers: " .. conn:read("*l"))
    conn:close()
    stop()
  end)
end
worker.onexit = function(e) print("worker exited, code " .. e.code) end
assert(cq:loop())
