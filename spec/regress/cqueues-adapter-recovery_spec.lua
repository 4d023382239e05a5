-- messagechannel.cqueues lost its task for good in three ways:
-- - mc.onerror raised out of mc.step() in the adapter's task: the task died
--   (cq:loop() returned the error) but the adapter still took it for
--   running, so work that came later was never run, even after attach;
-- - attaching to a second controller left the task of the first waiting
--   in cqueues.poll(mc) there: that controller's cq:loop() did not return
--   while messagechannel was idle, and its count stayed 1;
-- - once the controller was closed, the adapter's cq:wrap on new work
--   raised out of postMessage, spawn or any call that wakes it.
-- And once an error out of mc.step() had ended the task, only work made
-- in this state started it again: a worker's message or exit that came
-- later woke no one, and every cq:loop() returned at once with it
-- undelivered. The task that dies now starts the next one first (in its
-- controller, if the adapter is still attached there).
--
-- Each cq:loop() runs under a bound (WAIT) only so that a bug fails the
-- spec instead of hanging it.

local mc = require "messagechannel"
local helper = require "spec.helper"

local has = helper.has

local WAIT = helper.WAIT   -- seconds: the bound of every loop

local has_cqueues, cqueues = pcall(require, "cqueues")

describe("regress: messagechannel.cqueues recovers its task", function()
  if not has_cqueues then
    pending(helper.skipped("cqueues-adapter-recovery", "cqueues is not installed for " .. _VERSION))
    return
  end
  local adapter = require "messagechannel.cqueues"

  local workers = {}
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(function()
    helper.terminate_all(workers)
    release()
  end)

  -- A local channel whose port2 logs what it gets.
  local function logged(log)
    local ch = mc.MessageChannel()
    ch.port2.onmessage = function(e)
      log[#log + 1] = e.data
      ch.port2:close()
    end
    return ch
  end

  -- cq:loop() under the bound; true when the controller emptied by itself.
  local function loop(cq)
    local ok, err = cq:loop(WAIT)
    assert.is_true(ok, tostring(err))
    return cq:empty()
  end

  it("delivers later work after mc.onerror raised out of its task", function()
    local cq = cqueues.new()
    mc.onerror = function(err) error("onerror raised: " .. tostring(err), 0) end
    mc.spawn(function() error("boom") end)
    adapter.attach(cq)
    local ok, err = cq:loop(WAIT)
    assert.is_false(ok)
    assert.truthy(has(tostring(err), "onerror raised: "), tostring(err))
    assert.truthy(has(tostring(err), "boom"), tostring(err))
    catch()   -- mc.onerror collects again
    local log = {}
    logged(log).port1:postMessage("after the error")
    adapter.attach(cq)
    assert.is_true(loop(cq), "cq:loop() did not return")
    assert.same({ "after the error" }, log)
    assert.is_nil(mc.timeout())
    assert.same({}, errors)
  end)

  it("leaves no task in the first controller when attached to a second #threads", function()
    local cq1, cq2 = cqueues.new(), cqueues.new()
    adapter.attach(cq1)
    local rec = helper.record_worker(workers, [[
      mc.parentPort:receive()
      mc.parentPort:postMessage("done")
    ]])
    assert(cq1:step(0))   -- the task waits in cqueues.poll(mc) in cq1 now
    assert.equal(1, cq1:count())
    adapter.attach(cq2)
    rec.worker:postMessage("go")
    assert.is_true(loop(cq2), "cq2:loop() did not return")
    assert.same({ "message done", "exit 0" }, rec.log)
    assert.is_true(loop(cq1), "cq1:loop() did not return")
    assert.equal(0, cq1:count())
    assert.same({}, errors)
  end)

  it("lets postMessage and spawn work once its controller was closed", function()
    local cq = cqueues.new()
    adapter.attach(cq)
    assert.is_true(loop(cq), "cq:loop() did not return")
    cq:close()
    local log = {}
    local ch = logged(log)
    assert.has_no.errors(function() ch.port1:postMessage("after close") end)
    assert.has_no.errors(function()
      mc.spawn(function() log[#log + 1] = "task" end)
    end)
    assert.is_true(mc.run(WAIT), "mc.run did not become idle")
    assert.same({ "after close", "task" }, log)
    assert.same({}, errors)
  end)

  it("the next cq:loop() dispatches what a worker sends after the error #threads", function()
    local cq = cqueues.new()
    local rec = helper.record_worker(workers, [[
      mc.parentPort:receive()
      mc.sleep(0.05)
      mc.parentPort:postMessage("late")
    ]])
    mc.onerror = function(err) error("onerror raised: " .. tostring(err), 0) end
    mc.spawn(function()
      rec.worker:postMessage("go")
      error("boom")
    end)
    adapter.attach(cq)
    local ok, err = cq:loop(WAIT)
    assert.is_false(ok)
    assert.truthy(helper.has(tostring(err), "boom"), tostring(err))
    catch()   -- mc.onerror collects again
    ok, err = cq:loop(WAIT)
    assert.is_true(ok, tostring(err))
    assert.is_true(cq:empty())
    assert.same({ "message late", "exit 0" }, rec.log)
    assert.is_nil(mc.timeout())
    assert.same({}, errors)
  end)

  it("no second task when the error comes after attach to another controller", function()
    local cq1, cq2 = cqueues.new(), cqueues.new()
    adapter.attach(cq1)
    mc.onerror = function(err) error("onerror raised: " .. tostring(err), 0) end
    mc.spawn(function()
      adapter.attach(cq2)  -- while cq1's task is inside mc.step()
      error("boom")
    end)
    local ok = cq1:loop(WAIT)
    assert.is_false(ok)
    catch()
    assert.equal(1, cq2:count())
    assert.is_true((cq2:loop(WAIT)))
    assert.equal(0, cq1:count())
    assert.same({}, errors)
  end)
end)
