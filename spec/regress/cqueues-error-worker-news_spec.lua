-- Once an error out of mc.step() had ended messagechannel.cqueues' task
-- (cq:loop() returned it, as the README says), only work made in this
-- state started the task again: a worker's message or exit that came
-- later woke no one, every cq:loop() returned true at once with the
-- message undelivered, and only mc.run() or attach() delivered it. The
-- task that dies now starts the next one first.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WAIT = 10   -- seconds: the bound of every loop

local has_cqueues, cqueues = pcall(require, "cqueues")

describe("regress: messagechannel.cqueues after an error, news from a worker #threads", function()
  if not has_cqueues then
    pending(helper.skipped("cqueues-error-worker-news",
                           "cqueues is not installed for " .. _VERSION))
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

  it("the next cq:loop() dispatches what a worker sends after the error", function()
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
