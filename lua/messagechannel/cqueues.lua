-- messagechannel.cqueues: runs the scheduler as a task of a cqueues
-- controller (API.md 10). The task steps the scheduler, then waits with
-- cqueues.poll on the module table, a pollable object; it ends when
-- messagechannel is idle, so cq:loop() returns when both are.
--
-- A listener (any messagechannel task) may call cqueues' own blocking
-- functions: their yield reaches the scheduler, which hands it to this
-- adapter; a cqueues task of its own passes it on to the controller and,
-- resumed, wakes the listener with what the controller gave. Meanwhile the
-- other tasks of the scheduler run on.

local cqueues = require "cqueues"
local mc = require "messagechannel"
local scheduler = require "messagechannel.scheduler"

local M = {}

local select, yield = select, coroutine.yield
local unpack = rawget(table, "unpack") or rawget(_G, "unpack")
local _POLL = cqueues._POLL

local controller = nil  -- the controller attached to
local driving = false   -- its task runs the scheduler
local away = 0          -- tasks waiting in the controller for a yield

-- Hands a task's yield to the controller, if it is cqueues' own.
local function take(co, marker, ...)
  if marker ~= _POLL or not controller then return false end
  local n, args = select("#", ...), { ... }
  away = away + 1
  controller:wrap(function()
    local function back(...)
      away = away - 1
      scheduler.wake(co, ...)
    end
    back(yield(_POLL, unpack(args, 1, n)))
  end)
  return true
end

local function drive()
  while true do
    local alive = mc.step()
    if not alive and away == 0 then break end
    cqueues.poll(mc)
  end
  driving = false
end

-- Runs the scheduler as a task of controller cq; returns cq. Attaching
-- again once the task ended (messagechannel was idle) starts it again.
function M.attach(cq)
  if type(cq) ~= "userdata" or type(cq.wrap) ~= "function" then
    error(("bad argument #1 to 'attach' (cqueues controller expected, "
           .. "got %s)"):format(type(cq)), 2)
  end
  if driving and controller ~= cq then
    error("messagechannel is attached to another cqueues controller", 2)
  end
  controller = cq
  scheduler.foreign = take
  if not driving then
    driving = true
    cq:wrap(drive)
  end
  return cq
end

return M
