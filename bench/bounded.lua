-- Bounded queues (API.md 11): what a capacity costs, and what it saves.
--   throughput  a worker posts small tables ({ i = i }) through a channel
--               of capacity 1, 64, or none (unbounded), and the main
--               thread takes each with receive(): messages per second,
--               the three rounds alternating, medians with spreads.
--   memory      (each run a fresh process) a worker posts 300,000
--               messages of 1 KB through a channel
--               of capacity 1,000 to the main thread, which takes them as
--               they come; the peak resident memory of the process above
--               its level once the worker runs (Linux /proc). Then, for
--               contrast, the same without a capacity, the main thread
--               reading only after the worker has posted everything (the
--               slow reader).
-- Target: the bounded case under 2 MB above the baseline. A miss is
-- printed, never an exit status: this is a benchmark, not a test.
--
--   lua5.4 bench/bounded.lua

local arg = arg
local VERSION = _VERSION
local jit = rawget(_G, "jit")
local format = string.format
local type, require, print, tonumber, error = type, require, print,
  tonumber, error

local root = ((arg and arg[0] or ""):match("^(.*[/\\])") or "") .. "../"
local build = type(jit) == "table" and "luajit" or VERSION:match("%d+%.%d+")
package.path = root .. "?.lua;" .. root .. "lua/?.lua;" .. root
  .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/" .. build .. "/?.so;" .. package.cpath

local common = require "bench.common"
local mc = require "messagechannel"

local RECORDS, SIZE, CAPACITY = 300000, 1024, 1000
local TARGET_MB = 2

-- The worker posts n messages on the writer port it was asked to use.
local PRODUCER = [[
local mc = require "messagechannel"
local ports = mc.workerData
mc.parentPort.onmessage = function(e)
  local port, n, size = ports[e.data.which], e.data.n, e.data.size
  if size then
    local body = string.rep("x", size - 16)
    for i = 1, n do port:postMessage({ i = i, body = body }) end
  else
    for i = 1, n do port:postMessage({ i = i }) end
  end
end
]]

local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local kb = f:read("*a"):match("VmRSS:%s*(%d+)")
  f:close()
  return tonumber(kb)
end

local names = { "capacity 1", "capacity 64", "unbounded", "memory",
                "memory, unbounded" }
local caps = { 1, 64, nil, CAPACITY, nil }
local readers, writers = {}, {}
for k = 1, #names do
  local ch = mc.MessageChannel({ capacity = caps[k] })
  readers[k], writers[k] = ch.port2, ch.port1
end
local w = mc.Worker(PRODUCER, { eval = true, data = writers,
                                 transfer = writers })
w.onerror = function(e) error("producer: " .. tostring(e.error), 0) end
w:unref()

local function take(k, n)
  local port = readers[k]
  for i = 1, n do
    local ev = port:receive()
    if not ev or ev.data.i ~= i then
      error(names[k] .. ": message " .. i .. " missing or out of order")
    end
  end
end

-- Memory: the peak resident size above the level once the worker runs.
local function memory(k, read_after)
  collectgarbage()
  collectgarbage()
  w:postMessage({ which = k, n = 1, size = SIZE })
  take(k, 1)
  local base = rss_kb()
  if not base then return nil end
  local peak = base
  w:postMessage({ which = k, n = RECORDS, size = SIZE })
  local port = readers[k]
  if read_after then  -- the slow reader: everything is queued first
    while port:pending() < RECORDS do mc.sleep(0.01) end
    local rss = rss_kb()
    if rss > peak then peak = rss end
  end
  for i = 1, RECORDS do
    local ev = port:receive()
    if not ev or ev.data.i ~= i then error("memory: message " .. i) end
    if i % 1000 == 0 then
      local rss = rss_kb()
      if rss > peak then peak = rss end
    end
  end
  return (peak - base) / 1024
end

-- `bounded.lua memory <k>`: one memory measurement, in a fresh process
-- (no freed memory to reuse flatters it); prints the MB or "skipped".
if arg and arg[1] == "memory" then
  local k = tonumber(arg[2])
  local mb = memory(k, k == 5)
  print(mb and format("%.3f", mb) or "skipped")
  w:terminate()
  mc.run()
  return
end

-- The parent: MEMORY_RUNS children for the bounded case, one for the
-- unbounded one (it is slow and its figure is not close to any line).
local MEMORY_RUNS = 5
local function child(k)
  local cmd = format("%s %s memory %d 2>&1", arg[-1] or "lua", arg[0], k)
  local f = io.popen(cmd)
  local out = f:read("*a")
  f:close()
  local v = tonumber(out:match("^%s*(%S+)"))
  if not v and not out:find("skipped", 1, true) then
    error("memory child failed: " .. out, 0)
  end
  return v
end

local bounded = {}
for r = 1, MEMORY_RUNS do bounded[r] = child(4) end
if not bounded[1] then
  print("memory: skipped (no /proc/self/status on this system)")
else
  local unbounded = child(5)
  local med = common.median(bounded)
  local lo, hi = bounded[1], bounded[1]
  for r = 2, #bounded do
    if bounded[r] < lo then lo = bounded[r] end
    if bounded[r] > hi then hi = bounded[r] end
  end
  print(format("memory, %d messages of %d bytes to a reader (each run a "
               .. "fresh process):", RECORDS, SIZE))
  print(format("  capacity %d:  median %.1f MB above the baseline "
               .. "(%.1f..%.1f over %d runs; target < %d MB): %s",
               CAPACITY, med, lo, hi, #bounded, TARGET_MB,
               med < TARGET_MB and "met" or "NOT met"))
  print(format("  unbounded, slow reader:  %.1f MB above the baseline",
               unbounded))
  print(format("  (the %d messages a full queue holds take %.1f MB "
               .. "themselves)", CAPACITY, CAPACITY * (SIZE + 64) / 2^20))
end

local workloads = {}
for k = 1, 3 do
  workloads[k] = { name = names[k], run = function(n)
    w:postMessage({ which = k, n = n })
    take(k, n)
  end }
end

print(format("bounded queues, %s: a worker posts { i = i } through one "
             .. "channel, the main thread receives", common.version()))
local results = common.run_interleaved(workloads, { clock = mc.now })
common.print_lines(common.table(results))
local by = results.by_name
print(format("capacity 1 runs at %.2fx, capacity 64 at %.2fx the unbounded "
             .. "channel's rate (median)",
             by["capacity 1"].ops / by.unbounded.ops,
             by["capacity 64"].ops / by.unbounded.ops))
print()
w:terminate()
mc.run()
