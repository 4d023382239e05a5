-- messagechannel.luv: runs the scheduler inside luv's default loop
-- (API.md 10). A poll handle waits on mc.pollfd() and a timer on
-- mc.timeout(); each wake-up runs mc.step(), then arms both again.
-- Work ready now runs from an idle handle: each loop iteration runs steps
-- while work is ready, for up to BUDGET seconds, so that libuv's own
-- timers and I/O still run in between (a timer of 0 ms started from its
-- own callback runs again in the same pass: a scheduler that always has
-- work would starve the loop).
-- The poll handle is ref'd exactly while mc.step() says messagechannel has
-- work that would keep mc.run() going, so uv.run() returns when luv and
-- messagechannel are both idle.

local ok, uv = pcall(require, "luv")
if not ok then
  error("messagechannel.luv needs luv (Debian lua-luv, or luarocks install "
        .. "luv): " .. tostring(uv), 0)
end
local core = require "messagechannel.core"
local mc = require "messagechannel"
local scheduler = require "messagechannel.scheduler"

local M = {}

local ceil = math.ceil
local step, timeout, now = scheduler.host_step, mc.timeout, mc.now
local busy = scheduler.busy
local BUDGET = 0.001
local MAX_MS = 2 ^ 31 - 1  -- a longer wait is armed again when it ends
local poll, timer, idle  -- the handles, while started

local drive

-- Whether the adapter is started, with its handles open: code that closed
-- every luv handle (uv.walk at shutdown) closed them too, and stopped it.
local function started()
  if poll and (poll:is_closing() or timer:is_closing()
               or idle:is_closing()) then
    core.on_wake(nil)
    for _, h in ipairs { poll, timer, idle } do
      if not h:is_closing() then h:close() end
    end
    poll, timer, idle = nil, nil, nil
  end
  return poll ~= nil
end

-- Arms the timer for the next turn or timer of the scheduler, and keeps
-- the loop alive while messagechannel has work.
local function arm(alive)
  local t = timeout()
  if t == 0 then
    timer:stop()
    idle:start(drive)  -- a no-op while it runs
  else
    idle:stop()
    if t == nil then
      timer:stop()
    else
      uv.update_time()  -- the loop's clock may be as old as its last turn
      local ms = ceil(t * 1000)
      timer:start(ms < MAX_MS and ms or MAX_MS, 0, drive)
    end
  end
  if alive then poll:ref() else poll:unref() end
end

function drive()
  -- Until the steps end, the loop does not wait for messagechannel: a
  -- listener or task that runs the loop (uv.run) returns once luv's own
  -- handles are done (the step running goes on after it). arm() sets the
  -- handles again; so does what runs the step, when the step is that
  -- loop's caller (luv would end the process on mc.step's error here).
  idle:stop()
  timer:stop()
  poll:unref()
  if busy() then return end
  local deadline = now() + BUDGET
  local alive
  repeat
    alive = step()
  until not poll or timeout() ~= 0 or now() >= deadline  -- a listener
  if started() then arm(alive) end                       -- may stop()
end

-- Called by the scheduler when work comes, or what keeps it going
-- changes, while no scheduler loop runs (a post, a spawn, a listener or a
-- worker from a luv callback): the loop stays alive for the step that
-- learns it, even if messagechannel was idle until now.
local function wake()
  if started() then
    poll:ref()
    idle:start(drive)
  end
end

-- Starts driving the scheduler from luv's default loop; the first step
-- runs at the loop's next iteration. Starting twice is a no-op.
function M.start()
  if started() then return end
  poll = assert(uv.new_poll(mc.pollfd()))
  timer = assert(uv.new_timer())
  idle = assert(uv.new_idle())
  poll:start("r", function(err)
    if err then error("messagechannel.luv: " .. tostring(err)) end
    drive()
  end)
  core.on_wake(wake)
  idle:start(drive)
end

-- Detaches the scheduler from the loop: what arrives waits for a later
-- mc.run(), mc.step() or start().
function M.stop()
  if not started() then return end
  core.on_wake(nil)
  poll:close()
  timer:close()
  idle:close()
  poll, timer, idle = nil, nil, nil
  -- Closing finishes in the loop; luv 1.44 crashes at exit on a handle
  -- whose close never ran, so run it now unless the loop is running.
  if uv.loop_mode() == nil then uv.run("nowait") end
end

return M
