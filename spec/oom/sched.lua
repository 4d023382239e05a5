-- The scheduler under allocation failure: tasks, sleep and timers. A task
-- runs to its end once, or its error is reported; none is forgotten.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

local N = 3

local function tasks(sleep)
  local c = { done = H.zeros(N + 1), reported = 0 }
  mc.onerror = function() c.reported = c.reported + 1 end
  for i = 1, N do
    mc.spawn(function()
      if sleep then mc.sleep(0.001 * i) end
      c.done[i] = c.done[i] + 1
    end)
  end
  return c
end

local function all_done(c, what)
  H.run(what)
  local missing = 0
  for i = 1, N do
    H.expect(c.done[i] <= 1, "%s: task %d ran to its end %d times", what, i,
             c.done[i])
    if c.done[i] == 0 then missing = missing + 1 end
  end
  H.expect(missing <= c.reported, "%s: %d tasks never ended and %d errors "
           .. "were reported", what, missing, c.reported)
  mc.spawn(function() c.done[N + 1] = c.done[N + 1] + 1 end)
  H.run("a fresh task")
  H.expect(c.done[N + 1] == 1, "a fresh task ran %d times", c.done[N + 1])
end

cases[#cases + 1] = {
  name = "spawned",
  setup = function() return tasks(false) end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c) all_done(c, "spawned tasks") end,
}

cases[#cases + 1] = {
  name = "sleep",
  setup = function() return tasks(true) end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c) all_done(c, "sleeping tasks") end,
}

cases[#cases + 1] = {
  name = "spawn",
  setup = function()
    local c = { done = H.zeros(N + 1), reported = 0 }
    c.f = function() c.done[1] = c.done[1] + 1 end
    return c
  end,
  action = function(c) return mc.spawn(c.f) end,
  check = function(c, ok)
    H.run("after spawn")
    H.expect(c.done[1] == (ok and 1 or 0), "spawn %s, and the task ran %d "
             .. "times", ok and "completed" or "raised", c.done[1])
  end,
}

-- mc.sleep outside a task runs the scheduler.
cases[#cases + 1] = {
  name = "sleep_outside",
  setup = function() return tasks(true) end,
  action = function() return mc.sleep(0.01) end,
  check = function(c) all_done(c, "sleep outside a task") end,
}

cases[#cases + 1] = {
  name = "timeout",
  setup = function()
    local c = tasks(true)
    mc.step()
    return c
  end,
  action = function() return mc.timeout(), mc.dirty() end,
  check = function(c) all_done(c, "after mc.timeout") end,
}

return cases
