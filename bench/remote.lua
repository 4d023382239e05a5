-- Messaging between two processes: remote ports (mc.listen/mc.connect)
-- over loopback TCP and over a Unix socket, against Node.js's
-- child_process IPC with serialization 'advanced' (bench/remote.js), each
-- measured in the same run. The peer processes are started once and not
-- timed; every measure is by the wall clock:
--   ping-pong  this process posts {id = 1, name = "ping"} to the peer,
--              which posts it back; the next goes when it is back.
--              Seconds per round trip.
--   one-way    the peer posts N tables {i = i, name = "x"}, which this
--              process counts. Messages per second.
-- Lua and Node rounds alternate, in blocks, so machine noise falls on both.
-- Targets on Lua 5.4 (TCP): a round trip at most 0.5x Node IPC's, and at
-- least 2x its messages per second one way.
--
--   lua5.4 bench/remote.lua             (the peer: bench/remote.lua peer ADDRESS)

local arg = arg
local VERSION = _VERSION
local jit = rawget(_G, "jit")
local format = string.format
local rep = string.rep
local concat = table.concat
local type, require, print, tonumber, tostring, pcall, error =
  type, require, print, tonumber, tostring, pcall, error
local collectgarbage = collectgarbage
local popen = io.popen
local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

local root = ((arg and arg[0] or ""):match("^(.*[/\\])") or "") .. "../"
local build = type(jit) == "table" and "luajit" or VERSION:match("%d+%.%d+")
package.path = root .. "?.lua;" .. root .. "lua/?.lua;" .. root
  .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/" .. build .. "/?.so;" .. package.cpath

local ok_mc, mc = pcall(require, "messagechannel")

-- The peer: connects, echoes what is not a number, and answers a number n
-- with n messages; "bye" closes.
if arg[1] == "peer" then
  local port = mc.connect(arg[2])
  port.onmessage = function(e)
    local m = e.data
    if type(m) == "number" then
      for i = 1, m do port:postMessage({ i = i, name = "x" }) end
    elseif m == "bye" then
      port:close()
    else
      port:postMessage(m)
    end
  end
  mc.run()
  return
end

local common = require "bench.common"

local PINGPONG, ONEWAY = 2000, 50000
local BLOCKS, PER_BLOCK = 5, 3
local WAIT = 10 -- seconds without an answer before the bench gives up
local TRANSPORTS = { "tcp", "unix" }

local has_node = popen("command -v node"):read("*l")
local node_version = has_node and popen("node -v 2>&1"):read("*l")

-- Node's samples for one block ({pingpong = {...}, oneway = {...}}), or nil
-- and why.
local function node_block()
  local f = popen(format("node %sbench/remote.js %d %d %d 2>&1", root,
                         PINGPONG, ONEWAY, PER_BLOCK))
  if not f then return nil, "cannot run node" end
  local out = f:read("*a")
  f:close()
  local s = { pingpong = {}, oneway = {} }
  for line in out:gmatch("[^\n]+") do
    local k, v = line:match("^(%a+) (%S+)$")
    if s[k] and tonumber(v) then s[k][#s[k] + 1] = tonumber(v) end
  end
  if #s.pingpong ~= PER_BLOCK or #s.oneway ~= PER_BLOCK then
    return nil, (out:gsub("%s+$", ""))
  end
  return s
end

local samples = { node = { pingpong = {}, oneway = {} } }
for _, t in ipairs(TRANSPORTS) do
  samples[t] = { pingpong = {}, oneway = {} }
end
local node_err

local function add(into, s)
  for k, list in pairs(s) do
    for j = 1, #list do into[k][#into[k] + 1] = list[j] end
  end
end

local function run_node_block()
  if not has_node or node_err then return end
  local s, err = node_block()
  if s then add(samples.node, s) else node_err = err end
end

-- One task runs every round; the ports' listeners post the measured time
-- to `signal`, on which the task waits.
local function run_lua()
  local now = mc.now
  local signal = mc.MessageChannel()
  local function done(v) signal.port1:postMessage(v) end
  local function wait(what)
    local ev, why = signal.port2:receive(WAIT)
    if not ev then
      error(format("%s: %s after %d s", what, tostring(why), WAIT), 0)
    end
    return ev.data
  end

  local lua = arg[-1] or "lua"
  local dir = os.tmpname()
  os.remove(dir)
  local addresses = { tcp = "tcp:127.0.0.1:0", unix = "unix:" .. dir }
  local ports, peers = {}, {}
  for _, t in ipairs(TRANSPORTS) do
    local listener = mc.listen(addresses[t])
    listener.onconnect = function(ev)
      ports[t] = ev.port
      listener:close()
      done(t)
    end
    peers[#peers + 1] = popen(format("exec %s %s peer %s", lua, arg[0],
                                     listener.address))
  end

  local function pingpong(port, n)
    local left, t0 = n, nil
    port.onmessage = function(e)
      if e.data.name ~= "ping" then error("bad echo") end
      left = left - 1
      if left > 0 then port:postMessage(e.data) else done((now() - t0) / n) end
    end
    t0 = now()
    port:postMessage({ id = 1, name = "ping" })
    return wait("ping-pong: no echo")
  end

  local function oneway(port, n)
    local got, t0 = 0, nil
    port.onmessage = function(e)
      got = got + 1
      if e.data.i ~= got then
        error(format("message %s, expected %d", tostring(e.data.i), got))
      end
      if got == n then done((now() - t0) / n) end
    end
    t0 = now()
    port:postMessage(n)
    return wait("one-way: not all messages arrived")
  end

  local function round(into)
    for _, t in ipairs(TRANSPORTS) do
      collectgarbage()
      local pp = pingpong(ports[t], PINGPONG)
      collectgarbage()
      local ow = oneway(ports[t], ONEWAY)
      if into then add(into[t], { pingpong = { pp }, oneway = { ow } }) end
    end
  end

  mc.onerror = function(err, tb)
    error(tostring(err) .. "\n" .. tostring(tb), 0)
  end
  mc.spawn(function()
    for _ = 1, #TRANSPORTS do wait("the peer did not connect") end
    round(nil) -- warm-up
    for _ = 1, BLOCKS do
      for _ = 1, PER_BLOCK do round(samples) end
      run_node_block()
    end
    for _, t in ipairs(TRANSPORTS) do
      ports[t].onmessage = nil
      ports[t]:postMessage("bye")
    end
    signal.port1:close()
  end)
  local ok, idle = pcall(mc.run, 60 * WAIT)
  for i = 1, #peers do peers[i]:close() end
  if not ok then return idle end
  if not idle then return "mc.run() still busy: a peer did not close" end
end

local lua_err
if not ok_mc then
  lua_err = "messagechannel not loadable (build it first): "
    .. (tostring(mc):gsub("\n.*", ""))
elseif not mc.listen then
  lua_err = "this messagechannel has no mc.listen"
else
  lua_err = run_lua()
end
if lua_err then -- Node alone, for its numbers
  for _ = 1, BLOCKS do run_node_block() end
end

-- The report: one row per measure and transport, Lua and Node medians,
-- with the spread (min-max) of each, and Lua / Node.

local function median(list)
  return #list > 0 and common.median(list) or nil
end

local function spread(list, show)
  if #list == 0 then return "" end
  local lo, hi = list[1], list[1]
  for i = 2, #list do
    if list[i] < lo then lo = list[i] end
    if list[i] > hi then hi = list[i] end
  end
  return show(lo) .. "-" .. show(hi)
end

local function us(s) return format("%.1f us", s * 1e6) end
local function per_s(s) return format("%.0f/s", 1 / s) end

local ROWS = {
  { "ping-pong, TCP", "tcp", "pingpong", us, "<= 0.5x",
    function(x) return x <= 0.5 end },
  { "one-way, TCP", "tcp", "oneway", per_s, ">= 2x",
    function(x) return x >= 2 end, true },
  { "ping-pong, Unix socket", "unix", "pingpong", us },
  { "one-way, Unix socket", "unix", "oneway", per_s, nil, nil, true },
}

local function pad(s, width, left)
  local fill = width - #s
  if fill <= 0 then return s end
  if left then return s .. rep(" ", fill) end
  return rep(" ", fill) .. s
end

local COLS = { { "measure (median)", 24, true }, { "Lua", 11 },
  { "Node IPC", 11 }, { "Lua/Node", 9 }, { "target", 8 }, { "result", 6 } }
local function line(cells)
  local out = {}
  for i = 1, #COLS do out[i] = pad(cells[i], COLS[i][2], COLS[i][3]) end
  return (concat(out, "  "):gsub("%s+$", ""))
end

print(format("remote bench, %s vs Node.js %s child_process IPC "
  .. "(serialization 'advanced'): %d ping-pongs, %d one-way messages",
  common.version(), node_version or "(none)", PINGPONG, ONEWAY))
print(format("%d blocks of %d rounds, Lua and Node alternating; wall clock",
  BLOCKS, PER_BLOCK))
print("")
local rule, head = {}, {}
for i = 1, #COLS do
  rule[i] = rep("-", COLS[i][2])
  head[i] = COLS[i][1]
end
print(line(head))
print(line(rule))
local checked, met, spreads = 0, 0, {}
for i = 1, #ROWS do
  local name, t, key, show, target, ok, rate = unpack(ROWS[i], 1, 7)
  local l, n = median(samples[t][key]), median(samples.node[key])
  local ratio, result = "-", "-"
  if l and n then
    local x = rate and n / l or l / n
    ratio = format("%.2fx", x)
    if ok and VERSION == "Lua 5.4" and not jit then
      checked = checked + 1
      result = ok(x) and "met" or "missed"
      if ok(x) then met = met + 1 end
    end
  end
  print(line({ name, l and show(l) or "-", n and show(n) or "-", ratio,
               target or "", result }))
  spreads[#spreads + 1] = format("  %-22s Lua %s, Node %s", name,
    spread(samples[t][key], show), spread(samples.node[key], show))
end
print("")
print("spreads (min-max over rounds):")
for i = 1, #spreads do print(spreads[i]) end
if lua_err then print("\nLua: " .. lua_err) end
if node_err then print("\nNode: " .. node_err) end
if not has_node then print("\nNode: not installed (make deps installs it)") end
if checked > 0 then
  print(format("\ntargets (Lua 5.4): %d of %d met", met, checked))
end
