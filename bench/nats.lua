-- BroadcastChannel over NATS (API.md 12) between processes: this process
-- posts MESSAGES small tables ({ i = i, name = "x" }) on a channel "bench"
-- joined to a nats-server it starts on 127.0.0.1; SUBSCRIBERS other
-- processes (this script as "sub") each open a channel of that name on the
-- same server, count what arrives, check the order, and report on the
-- subject "bench.done" once the last message is in. A round is timed by
-- the wall clock from the first post to the last subscriber's report: the
-- figure is messages delivered per second per subscriber (MESSAGES / round
-- time), median over ROUNDS rounds after a warm-up, with the spread
-- (min..max). The subscribers are started once and not timed. No peer
-- library and no target: the figures are printed. Without nats-server or
-- libnats it says why and exits 0.
--
--   lua5.4 bench/nats.lua        (a subscriber: bench/nats.lua sub URL ID N)

local arg = arg
local VERSION = _VERSION
local jit = rawget(_G, "jit")
local format = string.format
local type, require, print, tonumber, tostring, pcall, error =
  type, require, print, tonumber, tostring, pcall, error
local popen = io.popen

local root = ((arg and arg[0] or ""):match("^(.*[/\\])") or "") .. "../"
local build = type(jit) == "table" and "luajit" or VERSION:match("%d+%.%d+")
package.path = root .. "?.lua;" .. root .. "lua/?.lua;" .. root
  .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/" .. build .. "/?.so;" .. package.cpath

local SUBJECT, DONE = "bench", "bench.done"

-- A subscriber: counts each round's messages and says {id, got, bad} on
-- DONE when message n arrives; {stop = true} ends it.
if arg[1] == "sub" then
  local mc = require "messagechannel"
  local url, id, n = arg[2], tonumber(arg[3]), tonumber(arg[4])
  local bc = mc.BroadcastChannel(SUBJECT, { nats = url })
  local done = mc.BroadcastChannel(DONE, { nats = url })
  local got, bad = 0, false
  bc.onmessage = function(e)
    local d = e.data
    if d.ping then
      done:postMessage({ ready = id })
    elseif d.stop then
      bc:close()
      done:close()
    else
      got = got + 1
      if d.i ~= got and not bad then
        bad = format("message %s arrived as number %d", tostring(d.i), got)
      end
      if d.i == n then
        done:postMessage({ id = id, got = got, bad = bad })
        got, bad = 0, false
      end
    end
  end
  bc.onerror = function(e) io.stderr:write("sub ", id, ": ", e.error, "\n") end
  mc.run()
  return
end

local common = require "bench.common"
local ok_mc, mc = pcall(require, "messagechannel")

local SUBSCRIBERS, MESSAGES, ROUNDS = 4, 50000, 11
local WAIT = 30 -- seconds without news before the bench gives up

local function sh_line(cmd)
  local f = popen(cmd)
  local line = f and f:read("*l")
  if f then f:close() end
  return line ~= "" and line or nil
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- nats-server from PATH, or from the sbin directories Debian uses.
local function find_server()
  return sh_line("command -v nats-server 2>/dev/null")
    or sh_line("for d in /usr/sbin /usr/local/sbin /usr/local/bin; do "
               .. "test -x $d/nats-server && echo $d/nats-server && break; "
               .. "done")
end

-- Children started with `exec`, so that the pid is theirs: {pid, pipe}.
local children = {}

local function start(cmd)
  local pipe = popen("echo $$; exec " .. cmd, "r")
  local pid = tonumber(pipe:read("*l"))
  children[#children + 1] = { pid = pid, pipe = pipe }
  return pid
end

local function stop_children()
  for i = #children, 1, -1 do
    os.execute(format("kill -KILL %d 2>/dev/null", children[i].pid))
    children[i].pipe:close()
    children[i] = nil
  end
end

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Starts nats-server on a port of its choosing (-p -1); its URL and
-- version, or nil and why.
local function start_server(path, log)
  start(format("%s -a 127.0.0.1 -p -1 >%s 2>&1", quote(path), quote(log)))
  local deadline = mc.now() + WAIT
  while mc.now() < deadline do
    local text = read_file(log) or ""
    local port = text:match("Listening for client connections on [%d%.]+:(%d+)")
    if port then
      return "nats://127.0.0.1:" .. port, text:match("Version:%s*(%S+)")
    end
    mc.sleep(0.02)
  end
  return nil, "nats-server did not start: " .. (read_file(log) or "")
end

-- The rounds: a list of seconds per round (warm-up left out), and the
-- number of messages the subscribers missed in all; or nil and why.
local function bench(url)
  local lua = arg[-1] or "lua"
  local bc = mc.BroadcastChannel(SUBJECT, { nats = url })
  local done = mc.BroadcastChannel(DONE, { nats = url })
  local signal = mc.MessageChannel()
  local ready, reports, missed, bad = {}, 0, 0, nil
  local nready = 0
  done.onmessage = function(e)
    local d = e.data
    if d.ready then
      if not ready[d.ready] then
        ready[d.ready] = true
        nready = nready + 1
        if nready == SUBSCRIBERS then signal.port1:postMessage("ready") end
      end
    else
      reports = reports + 1
      missed = missed + (MESSAGES - d.got)
      bad = bad or d.bad or nil
      if reports == SUBSCRIBERS then
        reports = 0
        signal.port1:postMessage("done")
      end
    end
  end
  bc.onerror = function(e) error("NATS: " .. tostring(e.error), 0) end
  for id = 1, SUBSCRIBERS do
    start(format("%s %s sub %s %d %d", quote(lua), quote(arg[0]), quote(url),
                 id, MESSAGES))
  end
  -- ping until every subscriber answers: then the server has them all
  local got
  local deadline = mc.now() + WAIT
  repeat
    if mc.now() > deadline then
      return nil, format("%d of %d subscribers answered", nready, SUBSCRIBERS)
    end
    bc:postMessage({ ping = true })
    got = signal.port2:receive(0.1)
  until got
  local out = {}
  for r = 0, ROUNDS do
    collectgarbage()
    local t0 = mc.now()
    for i = 1, MESSAGES do bc:postMessage({ i = i, name = "x" }) end
    local ev = signal.port2:receive(WAIT)
    if not ev then return nil, "round " .. r .. ": not every subscriber got the last message" end
    if r > 0 then out[r] = mc.now() - t0 end  -- round 0: warm-up
  end
  bc:postMessage({ stop = true })
  bc:close()
  done:close()
  signal.port1:close()
  if bad then return nil, "out of order: " .. bad end
  return out, missed
end

local function spread(list, med)
  local lo, hi = list[1], list[1]
  for i = 2, #list do
    if list[i] < lo then lo = list[i] end
    if list[i] > hi then hi = list[i] end
  end
  return format("%+.0f%%..%+.0f%%", (lo / med - 1) * 100, (hi / med - 1) * 100)
end

local function main()
  if not ok_mc then
    return "messagechannel not loadable (build it first): "
      .. (tostring(mc):gsub("\n.*", ""))
  end
  local path = find_server()
  if not path then
    return "nats-server not installed (Debian: apt-get install nats-server)"
  end
  local log = os.tmpname()
  local url, version = start_server(path, log)
  if not url then
    os.remove(log)
    return version
  end
  local okb, rounds, missed = pcall(bench, url)
  stop_children()
  os.remove(log)
  if not okb then
    if tostring(rounds):find("libnats", 1, true) then
      return "libnats cannot be loaded: " .. tostring(rounds)
    end
    error(rounds, 0)
  end
  if not rounds then error("nats bench: " .. missed, 0) end
  local rates = {}
  for i = 1, #rounds do rates[i] = MESSAGES / rounds[i] end
  local t = common.median(rounds)
  local rate = common.median(rates)
  print(format("BroadcastChannel over NATS, %s, nats-server %s on 127.0.0.1: "
               .. "1 publisher process, %d subscriber processes",
               common.version(), version or "?", SUBSCRIBERS))
  print(format("%d tables { i = i, name = \"x\" } per round, %d rounds after "
               .. "a warm-up; wall clock, first post to the last report",
               MESSAGES, ROUNDS))
  print(format("%-34s  %14s  %14s", "measure (median)", "value",
               "spread"))
  print(format("%-34s  %14s  %14s", ("-"):rep(34), ("-"):rep(14), ("-"):rep(14)))
  print(format("%-34s  %11.1f ms  %14s", "round (all " .. SUBSCRIBERS
               .. " have every message)", t * 1e3, spread(rounds, t)))
  print(format("%-34s  %12.0f/s  %14s", "messages per subscriber", rate,
               spread(rates, rate)))
  print(format("%-34s  %12.0f/s", "deliveries in all (x" .. SUBSCRIBERS .. ")",
               rate * SUBSCRIBERS))
  print(format("%-34s  %12.2f us", "per message posted", t / MESSAGES * 1e6))
  print(format("messages missed (at most once): %d of %d", missed,
               MESSAGES * SUBSCRIBERS * (ROUNDS + 1)))
  print()
end

local okm, why = pcall(main)
stop_children()
if not okm then error(why, 0) end
if why then print("nats bench skipped: " .. why) end
