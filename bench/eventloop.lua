-- The scheduler inside a host event loop (API.md 10): idle CPU and the
-- latency of a worker's messages under four drivers, side by side in one
-- run:
--   mc.run       the scheduler owns the program
--   luv          messagechannel.luv under uv.run()
--   cqueues      messagechannel.cqueues under cq:loop()
--   1 ms poll    a luv timer calling mc.step() every 1 ms, the only way
--                before section 10
-- Every sample is a fresh child process (this script, given a driver's
-- name), the drivers alternating round after round (a b c d a b c d ...),
-- so that no driver's state leaks into another's and machine noise falls
-- on all of them alike. In each child:
--   idle CPU  one worker alive, waiting in receive(); the CPU time of the
--             whole process (os.clock: every thread, user + sys) over IDLE
--             seconds of wall time, as % of one core.
--   latency   then the worker posts its mc.now() every 2-5 ms (jittered)
--             and the listener records mc.now() - sent (CLOCK_MONOTONIC,
--             one clock for every thread).
-- Reported: medians over the rounds, with min..max over the rounds.
-- Targets for mc.run, luv and cqueues: idle CPU under 0.5% of one core,
-- median latency under 0.2 ms. A miss is printed, never an exit status:
-- this is a benchmark, not a test.
--
--   lua5.4 bench/eventloop.lua          (BENCH_QUICK=1: one short round)

local arg = arg
local VERSION = _VERSION
local jit = rawget(_G, "jit")
local format = string.format
local rep = string.rep
local concat = table.concat
local sort = table.sort
local floor = math.floor
local type, require, print, tonumber, tostring, pcall, error, assert =
  type, require, print, tonumber, tostring, pcall, error, assert
local popen = io.popen
local clock = os.clock
local getenv = os.getenv
local exit = os.exit

local root = ((arg and arg[0] or ""):match("^(.*[/\\])") or "") .. "../"
local build = type(jit) == "table" and "luajit" or VERSION:match("%d+%.%d+")
package.path = root .. "?.lua;" .. root .. "lua/?.lua;" .. root
  .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/" .. build .. "/?.so;" .. package.cpath

local common = require "bench.common"

local QUICK = (getenv("BENCH_QUICK") or "") ~= ""
local ROUNDS = QUICK and 1 or 3
local IDLE = QUICK and 2 or 5      -- seconds of idle wall time measured
local COUNT = QUICK and 150 or 400 -- messages timed, one every 2-5 ms
local LIMIT = 60                   -- seconds before a child is given up
local CPU_TARGET = 0.005           -- of one core
local LATENCY_TARGET = 0.0002      -- seconds

-- The worker: says it is ready, waits idle in receive() until told how
-- many messages to send, then sends them, each carrying its send time.
local WORKER = [[
local mc = require "messagechannel"
local port = mc.parentPort
math.randomseed(mc.workerData)
port:postMessage("ready")
local count = port:receive().data
local sleep, now, random = mc.sleep, mc.now, math.random
for _ = 1, count do
  sleep(0.002 + 0.003 * random())
  port:postMessage(now())
end
]]

-- The drivers, in the order they alternate. needs: the library the driver
-- cannot run without.
local DRIVERS = {
  { key = "run", name = "mc.run()", target = true,
    run = function(mc)
      if not mc.run(LIMIT) then error("mc.run() timed out", 0) end
    end },
  { key = "luv", name = "luv adapter", needs = "luv", target = true,
    run = function()
      local uv = require "luv"
      local adapter = require "messagechannel.luv"
      adapter.start()
      uv.run()
      adapter.stop()
    end },
  { key = "cqueues", name = "cqueues adapter", needs = "cqueues",
    target = true,
    run = function()
      local cq = require("cqueues").new()
      require("messagechannel.cqueues").attach(cq)
      assert(cq:loop())
    end },
  { key = "poll", name = "1 ms mc.step() poll", needs = "luv",
    run = function(mc)
      local uv = require "luv"
      local timer = uv.new_timer()
      timer:start(1, 1, function()
        if not mc.step() then timer:close() end
      end)
      uv.run()
    end },
}

-- Nearest-rank quantile of a sorted list.
local function quantile(sorted, q)
  local n = #sorted
  local i = floor(q * n + 0.5)
  if i < 1 then i = 1 elseif i > n then i = n end
  return sorted[i]
end

-- A child: one driver, one idle window, COUNT messages timed. Prints
-- "idle <fraction of one core>" and "latency <n> <p25> <p50> <p75> <p99>
-- <max>" (seconds).
local function child(key)
  local driver
  for i = 1, #DRIVERS do
    if DRIVERS[i].key == key then driver = DRIVERS[i] end
  end
  if not driver then error("no driver " .. tostring(key), 0) end
  local mc = require "messagechannel"
  local now = mc.now
  -- An error in a listener ends the child instead of going to stderr.
  mc.onerror = function(err, tb)
    error(tostring(err) .. "\n" .. tostring(tb), 0)
  end

  local lat, idle = {}, nil
  local w = mc.Worker(WORKER, { eval = true, data = 42 })
  w.onerror = function(e) error("worker: " .. tostring(e.error), 0) end
  w.onmessage = function(e)
    local t = now()
    local d = e.data
    if type(d) == "number" then
      lat[#lat + 1] = t - d
    elseif d == "ready" then
      local c0, t0 = clock(), now()
      mc.sleep(IDLE)
      idle = (clock() - c0) / (now() - t0)
      w:postMessage(COUNT)
    end
  end
  driver.run(mc)

  if not idle then error("the idle window never ended", 0) end
  if #lat ~= COUNT then
    error(format("%d of %d messages arrived", #lat, COUNT), 0)
  end
  sort(lat)
  print(format("idle %.9f", idle))
  print(format("latency %d %.9f %.9f %.9f %.9f %.9f", #lat,
    quantile(lat, 0.25), quantile(lat, 0.5), quantile(lat, 0.75),
    quantile(lat, 0.99), lat[#lat]))
end

if arg and arg[1] == "--child" then
  local ok, err = pcall(child, arg[2])
  if not ok then
    io.stderr:write("eventloop child ", tostring(arg[2]), ": ",
                    tostring(err), "\n")
    exit(1)
  end
  exit(0)
end

-- The parent: the rounds, then the report.

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The interpreter this script runs on: arg's lowest index.
local interp
do
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  interp = arg and arg[i] or "lua"
end
local has_timeout = popen("command -v timeout"):read("*l")

local function library(name)
  return (pcall(require, name))
end

local ok_mc, mc = pcall(require, "messagechannel")
if not ok_mc then
  print("eventloop bench: messagechannel not loadable (build it first): "
    .. (tostring(mc):gsub("\n.*", "")))
  exit(1)
end
if not mc.pollfd then
  print("eventloop bench: this messagechannel has no mc.pollfd()")
  exit(1)
end

local skipped = {}
for i = 1, #DRIVERS do
  local d = DRIVERS[i]
  d.idle, d.p25, d.p50, d.p75, d.p99, d.max = {}, {}, {}, {}, {}, {}
  if d.needs and not library(d.needs) then
    d.missing = d.needs
    skipped[#skipped + 1] = format("%s: skipped, %s is not installed",
      d.name, d.needs)
  end
end

-- One child for driver d; its samples go into d's lists, or d.failed.
local function sample(d)
  local cmd = format("%s%s %s --child %s 2>&1",
    has_timeout and format("timeout %d ", LIMIT + 10) or "",
    quote(interp), quote(arg[0]), d.key)
  local f = popen(cmd)
  local out = f:read("*a")
  f:close()
  local idle = tonumber(out:match("\nidle (%S+)") or out:match("^idle (%S+)"))
  local n, p25, p50, p75, p99, max = out:match(
    "latency (%d+) (%S+) (%S+) (%S+) (%S+) (%S+)")
  if not idle or not n then
    d.failed = (out:gsub("%s+$", ""))
    if d.failed == "" then d.failed = "no output (killed?)" end
    return
  end
  d.idle[#d.idle + 1] = idle
  d.p25[#d.p25 + 1] = tonumber(p25)
  d.p50[#d.p50 + 1] = tonumber(p50)
  d.p75[#d.p75 + 1] = tonumber(p75)
  d.p99[#d.p99 + 1] = tonumber(p99)
  d.max[#d.max + 1] = tonumber(max)
end

print(format("eventloop bench, %s: one worker, %d round%s, the drivers "
  .. "alternating, each sample a fresh process", common.version(), ROUNDS,
  ROUNDS == 1 and "" or "s"))
print(format("idle CPU: %d s of wall time with the worker waiting in "
  .. "receive(), all threads; latency: %d messages, one every 2-5 ms",
  IDLE, COUNT))
io.stdout:flush()

for _ = 1, ROUNDS do
  for i = 1, #DRIVERS do
    local d = DRIVERS[i]
    if not d.missing and not d.failed then sample(d) end
  end
end

-- The report: medians over the rounds, min..max over the rounds.

local function median(list)
  return #list > 0 and common.median(list) or nil
end

local function range(list, scale, fmt)
  if #list < 2 then return "-" end
  local lo, hi = list[1], list[1]
  for i = 2, #list do
    if list[i] < lo then lo = list[i] end
    if list[i] > hi then hi = list[i] end
  end
  return format(fmt .. ".." .. fmt, lo * scale, hi * scale)
end

local function pad(s, width, left)
  local fill = width - #s
  if fill <= 0 then return s end
  if left then return s .. rep(" ", fill) end
  return rep(" ", fill) .. s
end

local COLS = { { "driver", 19, true }, { "idle CPU", 8 }, { "spread", 13 },
  { "latency", 8 }, { "spread", 13 }, { "p25-p75", 13 }, { "p99", 7 },
  { "spread", 13 } }
local function line(cells)
  local out = {}
  for i = 1, #COLS do out[i] = pad(cells[i], COLS[i][2], COLS[i][3]) end
  return (concat(out, "  "):gsub("%s+$", ""))
end

print("")
print("idle CPU in % of one core; latency in ms (median, p25-p75 and p99 "
  .. "of each round's")
print("messages); each a median over the rounds, spread: min..max over "
  .. "the rounds")
print("")
local head, rule = {}, {}
for i = 1, #COLS do head[i], rule[i] = COLS[i][1], rep("-", COLS[i][2]) end
print(line(head))
print(line(rule))
for i = 1, #DRIVERS do
  local d = DRIVERS[i]
  if #d.idle > 0 then
    d.med_idle, d.med_p50 = median(d.idle), median(d.p50)
    print(line({ d.name,
      format("%.3f%%", d.med_idle * 100), range(d.idle, 100, "%.3f"),
      format("%.3f", d.med_p50 * 1e3), range(d.p50, 1e3, "%.3f"),
      format("%.3f-%.3f", median(d.p25) * 1e3, median(d.p75) * 1e3),
      format("%.3f", median(d.p99) * 1e3), range(d.p99, 1e3, "%.3f") }))
  end
end
print("")

-- One verdict line per target, with the polling loop's figure beside.
local function verdict(what, field, limit, show)
  local parts, poll = {}, nil
  for i = 1, #DRIVERS do
    local d = DRIVERS[i]
    local v = d[field]
    if d.target then
      if v then
        parts[#parts + 1] = format("%s %s (%s)", d.name,
          v < limit and "yes" or "NO", show(v))
      else
        parts[#parts + 1] = d.name .. " -"
      end
    elseif v then
      poll = format("; %s: %s", d.name, show(v))
    end
  end
  print(format("%s: %s%s", what, concat(parts, ", "), poll or ""))
end
verdict("idle CPU under 0.5% of one core", "med_idle", CPU_TARGET,
  function(v) return format("%.3f%%", v * 100) end)
verdict("median latency under 0.2 ms", "med_p50", LATENCY_TARGET,
  function(v) return format("%.3f ms", v * 1e3) end)

-- Each adapter against the polling loop, from the same run.
local poll = DRIVERS[#DRIVERS]
if poll.med_idle then
  local parts = {}
  for i = 1, #DRIVERS - 1 do
    local d = DRIVERS[i]
    if d.med_idle then
      parts[#parts + 1] = format("%s %.2fx latency, %s idle CPU", d.name,
        d.med_p50 / poll.med_p50, d.med_idle > 0
        and format("%.3fx", d.med_idle / poll.med_idle) or "0x")
    end
  end
  print(format("against the 1 ms poll (medians): %s", concat(parts, "; ")))
end

for i = 1, #skipped do print(skipped[i]) end
local failed = false
for i = 1, #DRIVERS do
  local d = DRIVERS[i]
  if d.failed then
    failed = true
    print(format("%s: failed: %s", d.name, d.failed))
  end
end
if failed then exit(1) end
