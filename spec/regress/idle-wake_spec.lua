-- A worker running a host loop with an adapter, kept going only by its
-- parentPort's message listener: when a host callback (a luv timer, a
-- cqueues task) set parentPort.onmessage to nil, nothing told the adapter
-- that messagechannel had become idle. It went on waiting on the
-- descriptor, so uv.run() / cq:loop() never returned and the worker never
-- ended.
--
-- The worker's loop runs under a bound (an unref'd luv watchdog timer,
-- cq:loop(WAIT)) and reports how it ended, so a bug fails the spec instead
-- of hanging it.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WAIT = helper.WAIT   -- seconds: the bound of every loop

local has_luv = pcall(require, "luv")
local has_cqueues = pcall(require, "cqueues")

local function skip(why) pending(helper.skipped("idle-wake", why)) end

-- Worker bodies: WAIT is defined first; each reports "loop returned", or
-- how else its loop ended.
local LUV = [[
  local uv = require "luv"
  local adapter = require "messagechannel.luv"
  mc.parentPort.onmessage = function() end
  adapter.start()
  -- after the adapter's first step (its timer was started first)
  local t = uv.new_timer()
  t:start(0, 0, function()
    t:close()
    mc.parentPort.onmessage = nil   -- nothing keeps the worker now
  end)
  local fired = false
  local dog = uv.new_timer()
  dog:start(WAIT * 1000, 0, function()
    fired = true
    uv.stop()
  end)
  dog:unref()
  uv.run()
  dog:close()
  adapter.stop()
  uv.run("nowait")
  mc.parentPort:postMessage(fired and "watchdog fired" or "loop returned")
]]

local CQUEUES = [[
  local cqueues = require "cqueues"
  local adapter = require "messagechannel.cqueues"
  local cq = cqueues.new()
  mc.parentPort.onmessage = function() end
  adapter.attach(cq)
  cq:wrap(function()
    cqueues.sleep(0)   -- the adapter's task waits in its poll by now
    mc.parentPort.onmessage = nil   -- nothing keeps the worker now
  end)
  local ok, err = cq:loop(WAIT)
  mc.parentPort:postMessage(not ok and "cq:loop failed: " .. tostring(err)
    or cq:empty() and "loop returned" or "cq:loop timed out")
]]

describe("regress: a worker whose parentPort listener a host callback removes #threads", function()
  local errors, _, workers = helper.worker_specs(5, before_each, after_each)

  local function check(body)
    local rec = helper.record_worker(workers, "local WAIT = " .. WAIT .. "\n" .. body)
    assert.is_true(mc.run(WAIT + 5), "mc.run did not become idle")
    assert.same({ "message loop returned", "exit 0" }, rec.log)
    assert.same({}, errors)
  end

  describe("under messagechannel.luv", function()
    if not has_luv then
      skip("luv is not installed for " .. _VERSION)
      return
    end
    it("ends the worker's uv.run()", function() check(LUV) end)
  end)

  describe("under messagechannel.cqueues", function()
    if not has_cqueues then
      skip("cqueues is not installed for " .. _VERSION)
      return
    end
    it("ends the worker's cq:loop()", function() check(CQUEUES) end)
  end)
end)
