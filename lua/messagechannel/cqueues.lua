-- messagechannel.cqueues: runs the scheduler as a task of a cqueues
-- controller (API.md 10). The task steps the scheduler, then waits with
-- cqueues.poll on the module table, a pollable object; it ends when
-- messagechannel is idle and no other task of the controller runs, so
-- cq:loop() returns when both are, and starts again when work comes
-- later. While other tasks run, an idle scheduler still waits (looking
-- again every IDLE_LOOK seconds whether they ended): what a finalizer or
-- another thread brings then (a close, a message to an unref'd port) is
-- dispatched as under mc.run().
--
-- A listener (any messagechannel task) may call cqueues' own blocking
-- functions: their yield reaches the scheduler, which hands it to this
-- adapter; a cqueues task of its own passes it on to the controller and,
-- resumed, wakes the listener with what the controller gave. Meanwhile the
-- other tasks of the scheduler run on, and the pending cqueues task keeps
-- cq:loop() going.

local found, cqueues = pcall(require, "cqueues")
if not found then
  error("messagechannel.cqueues needs cqueues (Debian lua-cqueues, or "
        .. "luarocks install cqueues): " .. tostring(cqueues), 0)
end
local condition = require "cqueues.condition"
local core = require "messagechannel.core"
require "messagechannel"  -- first: the module its scheduler serves
local scheduler = require "messagechannel.scheduler"

local M = {}

local pcall, rawequal, select, type = pcall, rawequal, select, type
local yield, running, status =
  coroutine.yield, coroutine.running, coroutine.status
local unpack = rawget(table, "unpack") or rawget(_G, "unpack")
local _POLL = cqueues._POLL

local IDLE_LOOK = 0.1  -- seconds

local controller = nil  -- the controller attached to
local driving = false   -- its task runs the scheduler
local driver = nil      -- the task's coroutine, once it started
local detached = nil    -- a condition that ends the task (attach elsewhere)

-- Hands a task's yield to the controller, if it is cqueues' own: a task
-- of the controller yields the same values, and wakes the messagechannel
-- task with what the controller resumes it with.
local function take(co, marker, ...)
  if marker ~= _POLL or not controller then return false end
  local n, args = select("#", ...), { ... }
  controller:wrap(function()
    scheduler.wake(co, yield(_POLL, unpack(args, 1, n)))
  end)
  return true
end

local start

-- What the task waits on: a pollable object of plain fields, not the
-- module table, whose methods (pollfd, events, timeout) cqueues would
-- call outside the task, where an error (a hook's: an instruction limit,
-- Ctrl-C) kills the task the adapter then does not restart. The task
-- fills them in its protected step; cqueues calls no Lua code of ours.
local waiting_on = { pollfd = -1, events = "r", timeout = nil }

-- mc.step() as an adapter steps (its turn ends after 50 ms: see the
-- scheduler's host_step), called from a Lua function, so that its errors
-- name a line; then what to wait on, for as long as mc:timeout() says.
local function step()
  local more = scheduler.host_step()
  waiting_on.pollfd = scheduler.pollfd()
  waiting_on.timeout = scheduler.timeout()
  return more
end

-- The task, in controller cq; it ends when messagechannel is idle, or
-- when it was attached to another controller since (`gone` is signalled).
-- When mc.step() raises, the task dies of it and cq:loop() returns it;
-- a new task is started first (in cq, if still attached to it), so the
-- next cq:loop() goes on with what is left, a worker's news included
-- (which wakes no one here).
local function drive(cq, gone)
  driver = running()
  while rawequal(controller, cq) do
    local ok, more = pcall(step)
    if not ok then
      if rawequal(controller, cq) then
        driving = false
        start()
      end
      error(more, 0)
    end
    if not rawequal(controller, cq) then
      break  -- attached elsewhere by what the step ran: its signal of
             -- `gone` came before this task could wait for it
    elseif more then
      cqueues.poll(waiting_on, gone)
    elseif cq:count() > 1 then  -- idle, while other tasks keep the loop
      cqueues.poll(waiting_on, gone, IDLE_LOOK)
    else
      break
    end
  end
  if rawequal(controller, cq) then driving = false end
end

-- Starts the task, unless it runs. Also called by the scheduler when work
-- comes while no scheduler loop runs (a message posted or a worker started
-- by a cqueues task, a listener woken by cqueues), so work that comes
-- after the task ended starts it again. A controller that was closed
-- meanwhile is let go.
function start()
  if driving and driver and status(driver) == "dead" then
    driving = false  -- the task died of an error out of mc.step()
  end
  if driving or not controller then return end
  if pcall(controller.wrap, controller, drive, controller, detached) then
    driving, driver = true, nil
  else
    controller = nil
  end
end

local function field(t, k) return t[k] end

-- Runs the scheduler as a task of controller cq; returns cq. Attaching to
-- another controller moves it there.
function M.attach(cq)
  if rawequal(cq, M) then
    error("use attach(cq), not attach with a colon", 2)
  end
  -- any other userdata may raise when indexed (a light one always does)
  local ok, wrap = false, nil
  if type(cq) == "userdata" then ok, wrap = pcall(field, cq, "wrap") end
  if not ok or type(wrap) ~= "function" then
    error(("bad argument #1 to 'attach' (cqueues controller expected, "
           .. "got %s)"):format(core.typename(cq)), 2)
  end
  if controller ~= cq then
    if detached then detached:signal() end
    controller, driving, detached = cq, false, condition.new()
  end
  scheduler.foreign = take
  core.on_wake(start)
  start()
  return cq
end

return M
