-- terminate() was lost when the worker's own code set or cleared its
-- debug hook after the stop signal had set the stop hook: the signal is
-- sent once (the flag stays up), and nothing set the hook again, so a
-- worker in a loop that calls debug.sethook (a sandbox that sets an
-- instruction limit around each job and clears it after) ran on, and its
-- parent's mc.run() never ended. API.md 7: terminate() stops a worker
-- even in a busy loop. The worker's debug.sethook now sets the stop hook
-- again after the program's own, once the worker is to stop. Nothing
-- waits on time: each wait is an exit under mc.run with a long bound.

local mc = require "messagechannel"
local helper = require "spec.helper"

local TIMEOUT = helper.WAIT

local CASES = {
  { "a loop that clears the hook", [[
while true do debug.sethook() end]] },
  { "a loop that sets a count hook of its own around each job", [[
local n = 0
while true do
  debug.sethook(function() n = n + 1 end, "", 1000)
  for _ = 1, 5000 do end
  debug.sethook()
end]] },
  { "a loop that sets a line hook of its own", [[
while true do debug.sethook(function() end, "l") end]] },
}

local workers = {}

describe("regress: terminate() and a worker that sets its own hook #threads", function()
  after_each(function() helper.terminate_all(workers) end)

  for _, case in ipairs(CASES) do
    it("stops " .. case[1], function()
      local rec = helper.worker_stopped_at_first(workers,
        'mc.parentPort:postMessage("started")\n' .. case[2])
      assert.is_true(mc.run(TIMEOUT), "mc.run did not become idle")
      assert.is_nil(helper.not_stopped(rec))
    end)
  end

  it("leaves the worker's own hook working until then", function()
    local rec = helper.record_worker(workers, [[
local n = 0
local function count() n = n + 1 end
debug.sethook(count, "", 100)
for _ = 1, 100000 do end
local hook, mask, cnt = debug.gethook()
debug.sethook()
mc.parentPort:postMessage({ n > 0, hook == count, mask, cnt })
]])
    assert.is_true(mc.run(TIMEOUT))
    assert.are.same({ true, true, "", 100 }, rec.messages[1])
    assert.are.equal(0, rec.code)
  end)
end)
