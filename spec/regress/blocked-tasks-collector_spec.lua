-- regress: a loop whose tasks wait for good at channels it drops (in
-- receive, or for room) kept memory flat only under a full collection.
-- Under Lua 5.4's generational collector (the standalone interpreter's
-- default) it grew by about 1.5 KB a task: the scheduler noted each
-- waiting task in an upvalue of an old closure, which turned the task
-- old at once, and with it soon all it reached, ports and closures, which
-- only a major collection then freed, and each major one kept the
-- garbage of the last alive for the ports' finalizers.

local mc = require "messagechannel"

local N = 30000
local BOUND = 16 * 1024  -- KB; about 45 MB before the fix

-- The peak growth of Lua's memory over N rounds of make(), with the
-- collector left alone but for a step of the scheduler every 100 rounds.
local function peak_growth(make)
  collectgarbage()
  collectgarbage()
  local base, peak = collectgarbage("count"), 0
  for i = 1, N do
    make()
    if i % 100 == 0 then mc.step() end
    local k = collectgarbage("count") - base
    if k > peak then peak = k end
  end
  collectgarbage()
  collectgarbage()
  return peak
end

local function waits_in_receive()
  local ch = mc.MessageChannel()
  mc.spawn(function() ch.port2:receive() end)
end

local function waits_for_room()
  local ch = mc.MessageChannel({ capacity = 1 })
  ch.port1:postMessage(1)
  mc.spawn(function() ch.port1:postMessage(2) end)
end

describe("regress: tasks waiting for good at dropped channels #gc", function()
  local generational = _VERSION == "Lua 5.4"
  local mode

  before_each(function()
    if generational then mode = collectgarbage("generational") end
  end)

  after_each(function()
    if generational and mode then collectgarbage(mode) end
    mc.run(30)
  end)

  local function check(make)
    if _VERSION == "Lua 5.3" then
      return pending("Lua 5.3's collector still falls behind (README Lifetime)")
    end
    local peak = peak_growth(make)
    assert.is_true(peak < BOUND, ("grew by %.0f KB"):format(peak))
  end

  it("in receive keep memory bounded", function()
    check(waits_in_receive)
  end)

  it("for room keep memory bounded", function()
    check(waits_for_room)
  end)
end)
