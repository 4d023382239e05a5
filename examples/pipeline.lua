-- Backpressure: a producer and a consumer held together by bounded queues.
-- Run it with `make demo`.
--
-- A worker makes 300,000 records of 1 KB as fast as it can; a second
-- worker checks each one; the main thread counts what arrives. Without a
-- bound, the fast producer would queue most of its 300 MB at the slower
-- stages. With MessageChannel{capacity = n}, postMessage waits while the
-- next stage's queue is full, so no queue holds more than n records and
-- the memory of the process stays flat.

local mc = require "messagechannel"

local RECORDS, SIZE, CAPACITY = 300000, 1024, 1000

local function say(...)
  print(string.format(...))
end

-- The resident memory of the process in KB (Linux), or nil elsewhere.
local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local kb = f:read("*a"):match("VmRSS:%s*(%d+)")
  f:close()
  return tonumber(kb)
end

-- producer -> checker -> main, each link bounded.
local first = mc.MessageChannel({ capacity = CAPACITY })
local second = mc.MessageChannel({ capacity = CAPACITY })

local producer = mc.Worker([[
  local mc = require "messagechannel"
  local out, n, size = mc.workerData.out, mc.workerData.n, mc.workerData.size
  local filler = string.rep("x", size - 16)
  for i = 1, n do
    -- waits here whenever the checker is CAPACITY records behind
    out:postMessage({ id = i, body = filler })
  end
  out:close()
]], { eval = true, data = { out = first.port1, n = RECORDS, size = SIZE },
      transfer = { first.port1 } })

local checker = mc.Worker([[
  local mc = require "messagechannel"
  local input, out = mc.workerData.input, mc.workerData.out
  local expected = 1
  while true do
    local ev = input:receive()          -- nil, "closed" after the last one
    if not ev then break end
    local r = ev.data
    if r.id ~= expected then error("record " .. r.id .. " out of order") end
    expected = expected + 1
    out:postMessage({ id = r.id, bytes = #r.body + 16 })
  end
  out:close()
]], { eval = true, data = { input = first.port2, out = second.port1 },
      transfer = { first.port2, second.port1 } })

for _, w in ipairs { producer, checker } do
  w.onerror = function(e) error("worker failed: " .. tostring(e.error)) end
end

local before = rss_kb()
local count, bytes, peak_queue, peak_rss = 0, 0, 0, before or 0
while true do
  local ev = second.port2:receive()
  if not ev then break end
  count, bytes = count + 1, bytes + ev.data.bytes
  local queued = second.port2:pending()
  if queued > peak_queue then peak_queue = queued end
  if count % 10000 == 0 then
    local rss = rss_kb()
    if rss and rss > peak_rss then peak_rss = rss end
  end
end
mc.run()  -- the workers' exits

say("records through the pipeline: %d (%d MB)", count, math.floor(bytes / 2^20))
say("capacity of each link: %d; most queued at the last link: %s",
    CAPACITY, peak_queue <= CAPACITY and "never above it" or "ABOVE IT")
if before then
  say("memory grew by less than 8 MB while 300 MB went through: %s",
      tostring(peak_rss - before < 8 * 1024))
end
