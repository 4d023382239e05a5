-- A worker that took its count hook off (debug.sethook()) and ran a loop
-- that catches the "terminated" error with pcall was never stopped by
-- terminate(): each call into the module raised, the loop caught it and
-- called again, and its parent's mc.run() never became idle. Every place
-- that raises because the thread is to stop now sets the worker's stop
-- hook again first, so the loop is stopped at its next instruction. One
-- case per such place: a post (a port's and a BroadcastChannel's),
-- mc.now(), a wait in the scheduler, and a long serialize, deserialize and
-- structuredClone that stop midway. Nothing waits on time: every wait is a
-- message or an exit under mc.run with a long timeout.
--
-- Since then a worker has no count hook to take off: terminate() sets its
-- hook by a signal. These cases still run the loops; they fail again, as
-- they did, in a build that falls back to the count hook (under
-- ThreadSanitizer, where `make tsan` runs them) if a call stops setting
-- the hook before it raises.

local mc = require "messagechannel"
local helper = require "spec.helper"

local TIMEOUT = helper.WAIT

-- Each body runs in the worker after debug.sethook(), with `port` its
-- parentPort, `big` an array of 100,000 tables (past the codec's look at
-- the stop flag every 4096 values) and `bytes` big serialized; it posts
-- "started" first, then loops, catching every error.
local CASES = {
  { "port:postMessage", [[
while true do pcall(port.postMessage, port, "tick") end]] },
  { "BroadcastChannel:postMessage", [[
local bc = mc.BroadcastChannel("terminate-caught")
while true do pcall(bc.postMessage, bc, "tick") end]] },
  { "mc.now", [[
while true do pcall(mc.now) end]] },
  { "mc.sleep", [[
while true do pcall(mc.sleep, 0) end]] },
  { "mc.serialize", [[
while true do pcall(mc.serialize, big) end]] },
  { "mc.deserialize", [[
while true do pcall(mc.deserialize, bytes) end]] },
  { "mc.structuredClone", [[
while true do pcall(mc.structuredClone, big) end]] },
}

local PRELUDE = [[
debug.sethook()
local port = mc.parentPort
local big = {}
for i = 1, 100000 do big[i] = { i } end
local bytes = mc.serialize(big)
port:postMessage("started")
]]

local workers = {}

describe("terminate() and a loop that catches, without the count hook "
         .. "#threads", function()
  after_each(function() helper.terminate_all(workers) end)

  for _, case in ipairs(CASES) do
    it("stops a loop around " .. case[1], function()
      local rec = helper.worker_stopped_at_first(workers, PRELUDE .. case[2])
      assert.is_true(mc.run(TIMEOUT), "mc.run did not become idle")
      assert.is_nil(helper.not_stopped(rec))
    end)
  end
end)
