-- Fan-out over a BroadcastChannel: one post reaches every worker.
-- Run it with `make demo`.
--
-- Four workers open the channel "jobs". The main thread broadcasts a
-- batch of jobs once; every worker sees every job and takes those whose
-- number falls to it, then reports on its own parentPort. A "stop"
-- broadcast ends them all. Every line is printed by the main thread, in
-- an order it fixes, so the output is the same on every run.

local mc = require "messagechannel"

local WORKERS, JOBS = 4, 12

local function say(...)
  print(string.format(...))
end

local WORKER = [[
  local mc = require "messagechannel"
  local me, workers = mc.workerData.me, mc.workerData.workers
  local jobs = mc.BroadcastChannel("jobs")
  local done = {}
  jobs.onmessage = function(e)
    local msg = e.data
    if msg == "stop" then
      mc.parentPort:postMessage({ me = me, done = done })
      jobs:close()          -- lets this worker's scheduler end
    elseif msg.n % workers == me - 1 then
      done[#done + 1] = { n = msg.n, square = msg.n * msg.n }
    end
  end
  mc.parentPort:postMessage("listening")
]]

local reports, listening = {}, 0
local jobs = mc.BroadcastChannel("jobs")
for me = 1, WORKERS do
  local w = mc.Worker(WORKER, { eval = true,
                                data = { me = me, workers = WORKERS } })
  w.onmessage = function(e)
    if e.data == "listening" then
      listening = listening + 1
      if listening == WORKERS then  -- every worker hears the channel now
        for n = 1, JOBS do jobs:postMessage({ n = n }) end
        jobs:postMessage("stop")
      end
    else
      reports[e.data.me] = e.data.done
    end
  end
  w.onerror = function(e) error("worker failed: " .. tostring(e.error)) end
end
mc.run()
jobs:close()

say("broadcast %d jobs and a stop to %d workers, each post once:", JOBS,
    WORKERS)
for me = 1, WORKERS do
  local line = {}
  for _, r in ipairs(reports[me]) do
    line[#line + 1] = string.format("%d^2=%d", r.n, r.square)
  end
  say("  worker %d took %s", me, table.concat(line, " "))
end
