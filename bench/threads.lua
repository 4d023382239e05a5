-- Cross-thread messaging: mc.Worker against Node.js worker_threads
-- (bench/threads.js), each measured in the same run. Workers are started
-- once and not timed; every measure is by the wall clock:
--   ping-pong  the main thread posts a small table to a worker, which
--              echoes it on mc.parentPort; the next goes when the echo is
--              back. Seconds per round trip; for Lua with mc.spin at its
--              default and again with mc.spin(0).
--   one-way    a worker posts N small tables {i = i, name = "x"} to the
--              main thread, which counts them. Messages per second.
--   one-way, each side alone (Lua only): the same N messages, in batches
--              of ALONE, each on a new MessageChannel whose port1 was
--              transferred to a worker. The worker posts a batch while the
--              main thread sleeps outside the scheduler, and times that
--              (the sender alone); then the main thread starts port2 and
--              times taking the batch (the receiver alone). Batches keep
--              the message blocks going back to the pool, as in one way.
--              One way cannot be faster than the slower of the two.
--   64 MiB     a Buffer posted with a transfer list, and the same posted
--              without one (a copy), until the worker acknowledges it.
--   Lua loop   the same arithmetic loop timed in the main thread and in a
--              worker (Lua only): what running Lua code in a worker costs
--              (a count hook would cost 2.4x on Lua 5.4; terminate() sets
--              its hook by a signal instead).
-- Lua and Node rounds alternate, in blocks, so machine noise falls on both.
-- Targets on Lua 5.4: a round trip at most 0.25x Node's (0.5x with the
-- spin off), and at least 2.5x Node's messages per second one way; a
-- 64 MiB copy in at most Node's time.
--
--   lua5.4 bench/threads.lua

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
local execute = os.execute
local exit = os.exit

local root = ((arg and arg[0] or ""):match("^(.*[/\\])") or "") .. "../"
local build = type(jit) == "table" and "luajit" or VERSION:match("%d+%.%d+")
package.path = root .. "?.lua;" .. root .. "lua/?.lua;" .. root
  .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/" .. build .. "/?.so;" .. package.cpath

local common = require "bench.common"
local ok_mc, mc = pcall(require, "messagechannel")

local PINGPONG, ONEWAY, MIB = 2000, 50000, 64
local ALONE = 1000  -- messages per batch of one way's sides alone
local SIZE, PAGE = MIB * 1024 * 1024, 4096
local BLOCKS, PER_BLOCK = 5, 3
local WAIT = 10 -- seconds without an answer before the bench gives up
local TARGET_VERSION = "Lua 5.4"
local MEASURES = { "pingpong", "oneway", "transfer", "copy" }

-- Worker sources (options.eval). The sink acknowledges with the length it
-- got; "gc" lets it free a copy between rounds, outside the timing.
local ECHO = [[
local mc = require "messagechannel"
local port = mc.parentPort
port.onmessage = function(e) port:postMessage(e.data) end
]]
local SENDER = [[
local mc = require "messagechannel"
local port = mc.parentPort
port.onmessage = function(e)
  for i = 1, e.data do port:postMessage({ i = i, name = "x" }) end
end
]]
-- The loop both threads time: CPU work with no call and no allocation.
local LOOP_N = 3000000
local LOOP = [[function(n)
  local s = 0
  for i = 1, n do s = s + i % 7 end
  return s
end]]
local CPU = [[
local mc = require "messagechannel"
local port = mc.parentPort
local loop = ]] .. LOOP .. [[

port.onmessage = function(e)
  local t0 = mc.now()
  loop(e.data)
  port:postMessage(mc.now() - t0)
end
]]
-- Posts N messages on the port it is sent, then the seconds that took.
local FILLER = [[
local mc = require "messagechannel"
local port = mc.parentPort
port.onmessage = function(e)
  local out, t0 = e.ports[1], mc.now()
  for i = 1, e.data do out:postMessage({ i = i, name = "x" }) end
  port:postMessage(mc.now() - t0)
  out:close()
end
]]
local SINK = [[
local mc = require "messagechannel"
local port = mc.parentPort
port.onmessage = function(e)
  local d = e.data
  if d == "gc" then
    collectgarbage()
    port:postMessage("gc")
  else
    port:postMessage(#d)
  end
end
]]

local has_node = popen("command -v node"):read("*l")
local node_version = has_node and popen("node -v 2>&1"):read("*l")

-- Node's samples for one block ({measure = {seconds, ...}}), or nil and why.
local function node_block()
  local cmd = format("node %sbench/threads.js %d %d %d %d 2>&1", root,
                     PINGPONG, ONEWAY, MIB, PER_BLOCK)
  local f = popen(cmd)
  if not f then return nil, "cannot run node" end
  local out = f:read("*a")
  f:close()
  local s = {}
  for i = 1, #MEASURES do s[MEASURES[i]] = {} end
  for line in out:gmatch("[^\n]+") do
    local k, v = line:match("^(%a+) (%S+)$")
    if s[k] and tonumber(v) then s[k][#s[k] + 1] = tonumber(v) end
  end
  for i = 1, #MEASURES do
    if #s[MEASURES[i]] ~= PER_BLOCK then
      return nil, (out:gsub("%s+$", ""))
    end
  end
  return s
end

local lua_s, node_s, node_err = {}, {}, nil
for i = 1, #MEASURES do
  lua_s[MEASURES[i]], node_s[MEASURES[i]] = {}, {}
end
lua_s.pingpongoff = {}  -- Lua only: Node's row is its one ping-pong
lua_s.loopmain, lua_s.loopworker = {}, {}  -- Lua only
lua_s.sender, lua_s.receiver = {}, {}  -- Lua only: one way, each side alone

local function add(into, s)
  for i = 1, #MEASURES do
    local k = MEASURES[i]
    for j = 1, #s[k] do into[k][#into[k] + 1] = s[k][j] end
  end
end

local function run_node_block()
  if not has_node or node_err then return end
  local s, err = node_block()
  if s then add(node_s, s) else node_err = err end
end

-- The Lua side: one task runs every round; the workers' listeners post
-- the measured time to `signal`, on which the task waits.
local function run_lua()
  local now = mc.now
  local signal = mc.MessageChannel()
  local workers, stopping = {}, false

  local function done(v) signal.port1:postMessage(v) end
  local function wait(what)
    local ev, why = signal.port2:receive(WAIT)
    if not ev then
      error(format("%s: %s after %d s", what, tostring(why), WAIT), 0)
    end
    return ev.data
  end

  local function start(name, source)
    local w = mc.Worker(source, { eval = true })
    w.onerror = function(ev)
      error("worker " .. name .. ": " .. tostring(ev.error), 0)
    end
    w.onexit = function(ev)
      if not stopping then
        error("worker " .. name .. " exited, code " .. tostring(ev.code), 0)
      end
    end
    workers[#workers + 1] = w
    return w
  end

  local function stop()
    stopping = true
    for i = 1, #workers do workers[i]:terminate() end
  end

  -- An error in the task or a listener: stop the workers, so run() can
  -- end, and raise it out of run().
  mc.onerror = function(err, tb)
    stop()
    error(tostring(err) .. "\n" .. tostring(tb), 0)
  end

  local echo = start("echo", ECHO)
  local sender = start("sender", SENDER)
  local sink = start("sink", SINK)
  local filler = start("filler", FILLER)
  local cpu = start("cpu", CPU)
  local loop = assert((rawget(_G, "loadstring") or load)("return " .. LOOP))()

  local function pingpong(n)
    local left, t0 = n, nil
    echo.onmessage = function(e)
      if e.data.name ~= "ping" then error("bad echo") end
      left = left - 1
      if left > 0 then
        echo:postMessage(e.data)
      else
        done((now() - t0) / n)
      end
    end
    t0 = now()
    echo:postMessage({ id = 1, name = "ping" })
    return wait("ping-pong: no echo")
  end

  -- A listener for n one-way messages, which checks their order and at
  -- the last reports the seconds per message since the clock was started.
  local function counter(n)
    local got, t0 = 0, nil
    return function(e)
      got = got + 1
      if e.data.i ~= got then
        error(format("message %s, expected %d", tostring(e.data.i), got))
      end
      if got == n then done((now() - t0) / n) end
    end, function() t0 = now() end  -- the listener, the clock's start
  end

  local function oneway(n)
    local listener, start_clock = counter(n)
    sender.onmessage = listener
    start_clock()
    sender:postMessage(n)
    return wait("one-way: not all messages arrived")
  end

  -- The sender's seconds per message, then the receiver's, each alone.
  -- While the worker posts, this thread sleeps outside the scheduler,
  -- which would look at port2 and be woken by the posts.
  local function alone(n)
    local batches, sent, received = math.floor(n / ALONE), 0, 0
    filler.onmessage = function(e) done(e.data) end
    for _ = 1, batches do
      local ch, t = mc.MessageChannel(), now()
      filler:postMessage(ALONE, { ch.port1 })
      while ch.port2:pending() < ALONE do
        if now() - t > WAIT then
          error("one-way, sender alone: not all messages arrived", 0)
        end
        execute("sleep 0.001")
      end
      sent = sent + wait("one-way, sender alone: no answer")
      local listener, start_clock = counter(ALONE)
      start_clock()
      ch.port2.onmessage = listener  -- starts port2, its queue full
      received = received
        + ALONE * wait("one-way, receiver alone: not all messages arrived")
      ch.port2:close()
    end
    return sent / (batches * ALONE), received / (batches * ALONE)
  end

  -- Pages written before the clock starts, so neither side copies the
  -- zero page (as in bench/threads.js).
  local function buffer(transfer)
    local buf = mc.Buffer(SIZE)
    for i = 1, SIZE, PAGE do buf:write(i, "\1") end
    local t0
    sink.onmessage = function(e)
      local t = now() - t0
      if e.data ~= SIZE then
        error("worker got " .. tostring(e.data) .. " bytes")
      end
      done(t)
    end
    t0 = now()
    if transfer then
      sink:postMessage(buf, { buf })
    else
      sink:postMessage(buf)
    end
    local t = wait("64 MiB Buffer: no acknowledgement")
    if transfer and not buf.detached then error("Buffer not detached") end
    sink.onmessage = function(e) done(e.data) end
    sink:postMessage("gc")
    wait("sink: no answer to gc")
    return t
  end

  -- Seconds the loop takes here, then in the cpu worker.
  local function loops()
    local t0 = now()
    loop(LOOP_N)
    local here = now() - t0
    cpu.onmessage = function(e) done(e.data) end
    cpu:postMessage(LOOP_N)
    return here, wait("Lua loop: no answer")
  end

  local function round(into)
    collectgarbage()
    local spin = mc.spin(0)
    local ppo = pingpong(PINGPONG)
    mc.spin(spin)
    if into then into.pingpongoff[#into.pingpongoff + 1] = ppo end
    collectgarbage()
    local pp = pingpong(PINGPONG)
    collectgarbage()
    local ow = oneway(ONEWAY)
    collectgarbage()
    local sent, received = alone(ONEWAY)
    collectgarbage()
    local tr = buffer(true)
    collectgarbage()
    local cp = buffer(false)
    local lm, lw = loops()
    if into then
      into.sender[#into.sender + 1] = sent
      into.receiver[#into.receiver + 1] = received
      into.loopmain[#into.loopmain + 1] = lm
      into.loopworker[#into.loopworker + 1] = lw
      add(into, { pingpong = { pp }, oneway = { ow }, transfer = { tr },
                  copy = { cp } })
    end
  end

  mc.spawn(function()
    round(nil) -- warm-up
    for _ = 1, BLOCKS do
      for _ = 1, PER_BLOCK do round(lua_s) end
      run_node_block()
    end
    stop()
  end)
  local ok, idle = pcall(mc.run, 30 * WAIT)
  if not ok then return idle end
  if not idle then return "mc.run() still busy: a worker did not exit" end
end

local lua_err
if not ok_mc then
  lua_err = "messagechannel not loadable (build it first): "
    .. (tostring(mc):gsub("\n.*", ""))
elseif not mc.Worker then
  lua_err = "this messagechannel has no mc.Worker"
else
  lua_err = run_lua()
end
if lua_err then -- Node alone, for its numbers
  for _ = 1, BLOCKS do run_node_block() end
end

-- The report: one row per measure, Lua and Node medians, Lua / Node.

local function median(list)
  return #list > 0 and common.median(list) or nil
end

local function us(s) return format("%.2f us", s * 1e6) end
local function ms(s) return format("%.2f ms", s * 1e3) end
local function per_s(s) return format("%.0f/s", 1 / s) end

local ROWS = {
  { "ping-pong round trip", "pingpong", us, "<= 0.25x",
    function(x) return x <= 0.25 end },
  { "ping-pong, mc.spin(0)", "pingpongoff", us, "<= 0.5x",
    function(x) return x <= 0.5 end, false, "pingpong" },
  { "one-way messages", "oneway", per_s, ">= 2.5x",
    function(x) return x >= 2.5 end, true },
  { "  sender alone", "sender", per_s, nil, nil, true, "oneway" },
  { "  receiver alone", "receiver", per_s, nil, nil, true, "oneway" },
  { MIB .. " MiB Buffer transferred", "transfer", ms },
  { MIB .. " MiB Buffer copied", "copy", ms, "<= 1x",
    function(x) return x <= 1 end },
}

local function pad(s, width, left)
  local fill = width - #s
  if fill <= 0 then return s end
  if left then return s .. rep(" ", fill) end
  return rep(" ", fill) .. s
end

local COLS = { { "measure (median)", 26, true }, { "Lua", 12 },
  { "Node.js", 12 }, { "Lua/Node", 9 }, { "target", 9 }, { "result", 6 } }
local function line(cells)
  local out = {}
  for i = 1, #COLS do out[i] = pad(cells[i], COLS[i][2], COLS[i][3]) end
  return (concat(out, "  "):gsub("%s+$", ""))
end

print(format("threads bench, %s vs Node.js %s: %d ping-pongs, %d one-way "
  .. "messages, a %d MiB Buffer", common.version(),
  node_version or "(none)", PINGPONG, ONEWAY, MIB))
print(format("%d blocks of %d rounds, Lua and Node alternating; wall clock",
  BLOCKS, PER_BLOCK))
print("")
local rule = {}
for i = 1, #COLS do rule[i] = rep("-", COLS[i][2]) end
local head = {}
for i = 1, #COLS do head[i] = COLS[i][1] end
print(line(head))
print(line(rule))
local checked, met = 0, 0
local med = { lua = {}, node = {} }
for i = 1, #ROWS do
  local row = ROWS[i]
  local name, key, show, target, ok, rate = row[1], row[2], row[3], row[4],
    row[5], row[6]
  local l, n = median(lua_s[key]), median(node_s[row[7] or key])
  med.lua[key], med.node[key] = l, n
  local ratio, result = "-", "-"
  if l and n then
    local x = rate and n / l or l / n -- Lua / Node in the row's unit
    ratio = format(x >= 0.1 and "%.2fx" or "%.3fx", x)
    if ok then
      checked = checked + 1
      if ok(x) then met = met + 1; result = "PASS" else result = "MISS" end
    end
  end
  print(line({ name, l and show(l) or "-", n and show(n) or "-", ratio,
               target or "-", result }))
end
print("")

local function speedup(who, m)
  if m.transfer and m.copy then
    return format("%s %.0fx faster", who, m.copy / m.transfer)
  end
  return who .. " -"
end
print(format("transferring instead of copying %d MiB: %s, %s", MIB,
  speedup("Lua", med.lua), speedup("Node.js", med.node)))

if med.lua.copy then -- the Lua side ran
  local lm, lw = median(lua_s.loopmain), median(lua_s.loopworker)
  print(format("Lua loop of %d iterations: %s in the main thread, %s in a "
    .. "worker (%.2fx)", LOOP_N, ms(lm), ms(lw), lw / lm))
end
if med.lua.receiver then
  print("sender alone, receiver alone: the one-way messages posted with "
    .. "nothing receiving, then received with nothing posting; one way is "
    .. "at most the slower of the two")
end
if lua_err then print("Lua: failed: " .. lua_err) end
if not has_node then
  print("Node.js: not found (install the Debian package nodejs); no ratio")
elseif node_err then
  print("Node.js: failed: " .. node_err)
end
if checked > 0 then
  local verdict = met == checked and "met" or "NOT met"
  local what = "targets (round trip <= 0.25x, 0.5x with mc.spin(0); "
    .. "one-way >= 2.5x; 64 MiB copy <= 1x Node's)"
  if VERSION == TARGET_VERSION and type(jit) ~= "table" then
    print(format("%s on %s: %s (%d of %d)", what, TARGET_VERSION, verdict,
      met, checked))
  else
    print(format("%s on %s: do not apply to %s (%d of %d would be met)",
      what, TARGET_VERSION, common.version(), met, checked))
  end
end

if lua_err then exit(1) end
