-- A peer process for the NATS BroadcastChannel specs
-- (spec/24-nats_spec.lua), started by spec/nats/helper.lua.
--
--   peer.lua URL NAME dir=<path> [key=value ...]
--
-- It opens channels of the name NAME and reports, one line each, what
-- reaches them. Keys:
--   nats=<n>     channels opened with {nats = URL} (default 1)
--   plain=<n>    channels opened without (default 0); channel numbers go
--                1..nats, then the plain ones
--   worker=nats|plain  one more channel, in a worker thread ("w")
--   hello=1      its first channel posts {hello = id} every 0.1 s until the
--                command "quiet": once the spec hears one, the server has
--                this process's subscription (a connection's SUB is handled
--                before its PUB)
--   echo=1       its first channel posts back {echo = data} for each table
--                message with from == "spec" that it gets
--   brief=1      reports messages without their bytes
--   register=<name>  registers a metatable under that name
--   id=<s>       its id in what it posts (default "peer")
--   life=<s>     its deadline (default 60): it exits then, whatever happens
--
-- Commands come as files cmd1, cmd2, ... in `dir`, run in order:
--   post <n> [size]  its first channel posts n tables {from = id, i = i,
--                    pad = <size bytes>}, i counting on across commands
--   quiet            stops the hellos
--   close <k>        closes channel k
--   stop             closes every channel and stops reading commands:
--                    mc.run() then returns when nothing else holds it
--
-- Lines (line-buffered): "ready" once every channel is open; "msg <k>
-- <tag> <hex>" for each message (tag: "<from>:<i>", "hello", "echo" or
-- "-"; hex: mc.serialize of the data, left out with brief=1);
-- "messageerror <k> <error>"; "error <k> <error>"; "said <what>"; "end
-- <mc.run()'s result>".

local mc = require "messagechannel"

io.stdout:setvbuf("line")

local function say(...)
  local t = { ... }
  for i = 1, select("#", ...) do
    t[i] = tostring(t[i]):gsub("\n", "\\n")
  end
  io.stdout:write(table.concat(t, " "), "\n")
end

local url, name = arg[1], arg[2]
local cfg = {}
for i = 3, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  assert(k, "bad argument " .. arg[i])
  cfg[k] = v
end
local dir = assert(cfg.dir, "dir= is needed")
local id = cfg.id or "peer"
local life = tonumber(cfg.life) or 60
local brief = cfg.brief == "1"
if cfg.register then mc.register(cfg.register, {}) end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function tag(data)
  if type(data) ~= "table" then return "-" end
  if data.i then return tostring(data.from) .. ":" .. tostring(data.i) end
  if data.hello then return "hello" end
  if data.echo then return "echo" end
  return "-"
end

local function report(k, data)
  if brief then
    say("msg", k, tag(data))
  else
    local ok, bytes = pcall(mc.serialize, data)
    say("msg", k, tag(data), ok and hex(bytes) or "unserializable")
  end
end

local channels = {}
local nnats, nplain = tonumber(cfg.nats) or 1, tonumber(cfg.plain) or 0
for k = 1, nnats + nplain do
  local bc = k <= nnats and mc.BroadcastChannel(name, { nats = url })
             or mc.BroadcastChannel(name)
  channels[k] = bc
  bc.onmessage = function(e)
    report(k, e.data)
    local d = e.data
    if k == 1 and cfg.echo == "1" and type(d) == "table" and d.from == "spec" then
      bc:postMessage({ echo = d })
    end
  end
  bc.onmessageerror = function(e) say("messageerror", k, e.error) end
  bc.onerror = function(e) say("error", k, e.error) end
end

local worker
if cfg.worker then
  worker = mc.Worker([[
local mc = require "messagechannel"
local name, url = mc.workerData.name, mc.workerData.url
local bc = url and mc.BroadcastChannel(name, { nats = url })
           or mc.BroadcastChannel(name)
bc.onmessage = function(e) mc.parentPort:postMessage({ "msg", e.data }) end
bc.onmessageerror = function(e)
  mc.parentPort:postMessage({ "messageerror", tostring(e.error) })
end
bc.onerror = function(e)
  mc.parentPort:postMessage({ "error", tostring(e.error) })
end
mc.parentPort.onmessage = function()  -- stop
  bc:close()
  mc.parentPort:close()
end
mc.parentPort:postMessage({ "open" })
]], { eval = true, data = { name = name,
                            url = cfg.worker == "nats" and url or nil } })
  local open = false
  worker.onmessage = function(e)
    local what, v = e.data[1], e.data[2]
    if what == "open" then open = true
    elseif what == "msg" then report("w", v)
    else say(what, "w", v) end
  end
  worker.onerror = function(e) say("error", "w", e.error) end
  while not open do mc.sleep(0.01) end
end

say("ready")

local quiet = cfg.hello ~= "1"
if not quiet then
  mc.spawn(function()
    while not quiet do
      if channels[1] then channels[1]:postMessage({ hello = id }) end
      mc.sleep(0.1)
    end
  end)
end

local posted = 0
local commands = {}

function commands.post(n, size)
  local pad = string.rep("p", tonumber(size) or 0)
  for _ = 1, tonumber(n) do
    posted = posted + 1
    channels[1]:postMessage({ from = id, i = posted, pad = pad })
  end
  say("said", "posted", posted)
end

function commands.quiet()
  quiet = true
  say("said", "quiet")
end

function commands.close(k)
  channels[tonumber(k)]:close()
  say("said", "closed", k)
end

local stopped = false

function commands.stop()
  quiet = true
  for _, bc in ipairs(channels) do bc:close() end
  if worker then worker:postMessage("stop") end
  stopped = true
  say("said", "stopped")
end

local deadline = mc.now() + life
mc.spawn(function()
  local seq = 0
  while not stopped do
    if mc.now() > deadline then
      say("said", "life over")
      os.exit(3)
    end
    local f = io.open(dir .. "/cmd" .. (seq + 1), "rb")
    if f then
      local line = f:read("*a")
      f:close()
      seq = seq + 1
      local words = {}
      for w in line:gmatch("%S+") do words[#words + 1] = w end
      local cmd = assert(commands[words[1]], "unknown command " .. line)
      cmd(words[2], words[3])
    else
      mc.sleep(0.02)
    end
  end
end)

say("end", mc.run(life + 5))
