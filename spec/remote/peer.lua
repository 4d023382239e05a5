-- A peer process for the remote-port specs (spec/21-remote_spec.lua,
-- spec/22-remote-delivery_spec.lua), started by spec/remote/helper.lua.
--
--   peer.lua ROLE ADDRESS [key=value ...]
--
-- ROLE is "listen" (mc.listen(ADDRESS), each link a port) or "connect"
-- (mc.connect(ADDRESS), one port). Keys:
--   token, heartbeat, capacity, maxMessageSize  the link's options
--   behave   what each port does (default "echo"):
--     echo   posts back every message it gets (Buffers in it are copied
--            back); a table with a field `cmd` is a command instead (see
--            `commands` below); a messageerror is posted back as
--            {messageerror = <error>}
--     count  takes messages (integers 1, 2, ... or tables with field i) and
--            at the close says "count <n> <in order>"; with go=<file> it
--            sets no listener (so it reads nothing once `capacity` are
--            held) until that file exists; with every=<k> it says "got
--            <n>" at every k-th message
--     send   posts n=<n> messages {i = i, pad = <size bytes>} at once, then
--            closes, runs mc.run() and exits: what is written after that is
--            the module's doing
--     worker-send  (connect only) moves the port to a worker that posts
--            n=<n> messages like send and closes it, then ends; the main
--            state runs mc.run() and exits: the worker's closed port is
--            written by then, or never
--     idle   sets no listener at all
--   once=1   listen: closes the listener after the first link
--   life=<seconds>  the peer's deadline (default 30): it ends then
--
-- It writes one line per event to stdout (line-buffered): "listening
-- <address>", "connect", "close <reason>", "messageerror <error>", "said
-- <text>", "count <n> <ordered>", "end <mc.run result>".

local mc = require "messagechannel"

io.stdout:setvbuf("line")

local function say(...)
  local t = { ... }
  for i = 1, select("#", ...) do t[i] = tostring(t[i]) end
  io.stdout:write(table.concat(t, " "), "\n")
end

local role, address = arg[1], arg[2]
local cfg = {}
for i = 3, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  assert(k, "bad argument " .. arg[i])
  cfg[k] = v
end

local options = {}
options.token = cfg.token
options.heartbeat = tonumber(cfg.heartbeat)
options.capacity = tonumber(cfg.capacity)
options.maxMessageSize = tonumber(cfg.maxMessageSize)
local behave = cfg.behave or "echo"
local life = tonumber(cfg.life) or 30

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local ports = {}  -- every port made, kept reachable

-- Commands an echo port takes, as tables {cmd = name, ...}.
local commands = {}

-- {cmd="close"}: closes the port.
function commands.close(p) p:close() end

-- {cmd="burst", n=n, size=s, close=bool}: posts {i = 1..n, pad = s bytes},
-- then closes when asked.
function commands.burst(p, c)
  local pad = string.rep("b", c.size or 0)
  for i = 1, c.n do p:postMessage({ i = i, pad = pad }) end
  say("said", "burst", c.n)
  if c.close then p:close() end
end

-- {cmd="big", size=s}: posts one string of s bytes.
function commands.big(p, c) p:postMessage(string.rep("B", c.size)) end

-- {cmd="registered", name=s}: posts a table whose metatable is registered
-- under `name` here (and, most likely, nowhere at the receiver).
function commands.registered(p, c)
  local mt = {}
  mc.register(c.name, mt)
  p:postMessage(setmetatable({ x = 1 }, mt))
end

-- {cmd="buffer", size=s, transfer=bool}: posts a Buffer of s bytes "abc...".
function commands.buffer(p, c)
  local b = mc.Buffer(string.rep("xyz", c.size):sub(1, c.size))
  if c.transfer then
    p:postMessage({ buf = b }, { b })
    p:postMessage({ detached = b.detached })
  else
    p:postMessage({ buf = b })
  end
end

-- {cmd="pending"}: posts back how many messages wait at the port.
function commands.pending(p) p:postMessage({ pending = p:pending() }) end

-- {cmd="say", text=s}: writes a line "said <text>".
function commands.say(p, c)
  say("said", c.text)
  p:postMessage({ said = c.text })
end

-- {cmd="exit"}: ends the process at once, without closing anything.
function commands.exit() os.exit(3) end

-- {cmd="busy", seconds=s}: computes for s seconds without running the
-- scheduler, then answers {busy = "done"}.
function commands.busy(p, c)
  local t = os.clock()
  while os.clock() - t < c.seconds do end
  p:postMessage({ busy = "done" })
end

-- {cmd="burst_block", n=n, go=file}: posts {i = 1..n}, then runs no
-- scheduler turn (checks for the file in a loop) until `go` exists, and
-- answers {blocked = "done"}: what arrives meanwhile was written without
-- this state waiting.
function commands.burst_block(p, c)
  for i = 1, c.n do p:postMessage({ i = i }) end
  while not exists(c.go) do end
  p:postMessage({ blocked = "done" })
end

-- {cmd="reply", text=s}: answers {reply = s} (a message, so that the order
-- with messages echoed before it is visible).
function commands.reply(p, c) p:postMessage({ reply = c.text }) end

local function watch_close(p)
  p.onclose = function(e) say("close", e.reason) end
end

local function setup(p)
  ports[#ports + 1] = p
  if behave == "echo" then
    watch_close(p)
    p.onmessage = function(e)
      local d = e.data
      if type(d) == "table" and type(d.cmd) == "string"
         and commands[d.cmd] then
        commands[d.cmd](p, d)
      else
        p:postMessage(d)
      end
    end
    p.onmessageerror = function(e)
      say("messageerror", e.error)
      p:postMessage({ messageerror = tostring(e.error) })
    end
  elseif behave == "count" then
    local n, ordered = 0, true
    local every = tonumber(cfg.every)
    local function take(e)
      local v = type(e.data) == "table" and e.data.i or e.data
      n = n + 1
      if v ~= n then ordered = false end
      if every and n % every == 0 then say("got", n) end
    end
    p.onclose = function(e)
      say("count", n, ordered)
      say("close", e.reason)
    end
    if cfg.go then
      mc.spawn(function()
        while not exists(cfg.go) do mc.sleep(0.02) end
        say("said", "go")
        p.onmessage = take
      end)
    else
      p.onmessage = take
    end
  elseif behave == "send" then
    watch_close(p)
    local pad = string.rep("s", tonumber(cfg.size) or 0)
    for i = 1, tonumber(cfg.n) do p:postMessage({ i = i, pad = pad }) end
    p:close()
    say("said", "posted")
    local r = mc.run(life)
    say("end", r)
    os.exit(0)
  elseif behave == "worker-send" then
    mc.Worker([[
      local mc = require "messagechannel"
      local p, n, size = mc.workerData.port, mc.workerData.n, mc.workerData.size
      local pad = string.rep("s", size)
      for i = 1, n do p:postMessage({ i = i, pad = pad }) end
      p:close()
    ]], { eval = true, transfer = { p },
          data = { port = p, n = tonumber(cfg.n), size = tonumber(cfg.size) or 0 } })
    say("said", "moved")
    local r = mc.run(life)
    say("end", r)
    os.exit(0)
  elseif behave == "idle" then
    watch_close(p)
    mc.spawn(function() mc.sleep(life) end)  -- nothing else keeps it going
  else
    error("unknown behaviour " .. behave)
  end
end

if role == "listen" then
  local l = mc.listen(address, options)
  l.onconnect = function(e)
    say("connect")
    if cfg.once then l:close() end
    setup(e.port)
  end
  say("listening", l.address)
elseif role == "connect" then
  setup(mc.connect(address, options))
else
  error("unknown role " .. tostring(role))
end

local r = mc.run(life)
say("end", r)
os.exit(0)
