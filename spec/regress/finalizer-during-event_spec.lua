-- A finalizer can run while the scheduler makes a message's event (the
-- event and its ports array allocate), after the message was read and
-- before it is taken. One that took that message with receive() had it
-- delivered twice, and the message after it lost, as the scheduler then
-- took whatever was at the head; one that transferred the port made the
-- scheduler take from a port it no longer held (a crash). The head is now
-- looked at again once the event is made.
--
-- Each case runs in a worker, a Lua state with a small heap, so that the
-- collector, made to run all the time, finishes its cycles (and calls
-- finalizers) while the messages are dispatched.

local mc = require "messagechannel"
local helper = require "spec.helper"

-- The worker: posts 1..N on a channel and dispatches them with finalizers
-- calling fin(port2) at the allocations the collector reaches (which ones
-- depends on the Lua and on the garbage made per message and the step
-- multiplier of each case); posts back, per case, how often each message
-- arrived and how often a finalizer acted.
local WORKER = helper.ON_GC .. [[
local mc = require "messagechannel"
local mode = mc.workerData
local N = 3000
local report = {}
for _, case in ipairs({ { 3, 1000 }, { 1, 400 }, { 2, 200 }, { 5, 800 } }) do
  local count, acted = {}, 0
  local function note(v) count[v] = (count[v] or 0) + 1 end
  local ch, other = mc.MessageChannel(), mc.MessageChannel()
  other.port2.onmessage = function(e)
    e.data.onmessage = function(ev) note(ev.data) end
  end
  local moved = false
  local function fin(port)
    if mode == "receive" then
      local ok, ev = pcall(port.receive, port, 0)
      if ok and ev then
        acted = acted + 1
        note(ev.data)
      end
    elseif not moved
       and pcall(other.port1.postMessage, other.port1, port, { port }) then
      moved = true
      acted = acted + 1
    end
  end
  for i = 1, N do ch.port1:postMessage(i) end
  ch.port2.onmessage = function(e)
    note(e.data)
    for _ = 1, case[1] do on_gc(function() fin(ch.port2) end) end
  end
  collectgarbage()
  collectgarbage("setpause", 1)
  collectgarbage("setstepmul", case[2])
  mc.run(30)
  collectgarbage("setpause", 200)
  collectgarbage("setstepmul", 200)
  collectgarbage()
  mc.run(30)
  local wrong = {}
  for i = 1, N do
    if count[i] ~= 1 then
      wrong[#wrong + 1] = i .. " arrived " .. (count[i] or 0) .. " times"
    end
  end
  report[#report + 1] = { acted = acted, wrong = table.concat(wrong, ", ") }
end
mc.parentPort:postMessage(report)
]]

local function run_case(mode)
  local report
  local w = mc.Worker(WORKER, { eval = true, data = mode })
  w.onmessage = function(e) report = e.data end
  w.onerror = function(e) error(e.error, 0) end
  assert.is_true(mc.run(120), "the worker did not end")
  assert.is_table(report, "the worker reported nothing")
  local acted = 0
  for i, r in ipairs(report) do
    assert.are.equal("", r.wrong, "case " .. i)
    acted = acted + r.acted
  end
  return acted
end

describe("regress: a finalizer run while an event is made", function()
  it("that receives from the port: each message arrives once #threads",
     function()
    assert.is_true(run_case("receive") > 0, "no finalizer took a message")
  end)

  it("that transfers the port: the rest arrive once at its new owner #threads",
     function()
    assert.is_true(run_case("move") > 0, "no finalizer moved the port")
  end)
end)
