-- A blocking call outside a task (mc.sleep, mc.run, port:receive) made
-- from a luv or cqueues callback runs the scheduler itself, and may return
-- with work left: here a task spawned by a task that the call ran. Nothing
-- told the host loop, which went on waiting on the descriptor (cqueues) or
-- returned (luv), and that work never ran.
--
-- Each loop runs under a bound (an unref'd luv watchdog timer,
-- cq:loop(WAIT)) only so that a bug fails the spec instead of hanging it.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WAIT = helper.WAIT   -- seconds: the bound of every loop

local has_luv, uv = pcall(require, "luv")
local has_cqueues, cqueues = pcall(require, "cqueues")

local function skip(why) pending(helper.skipped("blocking-call-wake", why)) end

-- The blocking calls, each made outside any task. `ch` is a channel on
-- which the first task posts before it spawns the rest of the chain.
local CALLS = {
  { "mc.sleep(0)", function() mc.sleep(0) end },
  { "mc.run(0)", function() mc.run(0) end },
  { "port:receive()", function(ch) assert(ch.port2:receive()) end },
}

-- Spawns a task that posts to ch.port1 and spawns a task that spawns
-- `last`: the blocking call that follows runs the first tasks and
-- returns before `last` ran.
local function chain(ch, last)
  mc.spawn(function()
    ch.port1:postMessage("for receive")
    mc.spawn(function() mc.spawn(last) end)
  end)
end

describe("regress: a blocking call from a host loop's callback", function()
  local errors, _, workers = helper.worker_specs(5, before_each, after_each)

  describe("under messagechannel.luv", function()
    if not has_luv then
      skip("luv is not installed for " .. _VERSION)
      return
    end
    local adapter = require "messagechannel.luv"

    after_each(function()
      adapter.stop()
      uv.run("nowait")   -- lets the closes complete
    end)

    -- uv.run() under a watchdog; true when it returned by itself.
    local function uv_run()
      return helper.uv_run(uv, WAIT)
    end

    for _, call in ipairs(CALLS) do
      local name, blocking = call[1], call[2]
      it(name .. " in a timer callback: the work it left runs before uv.run() returns",
         function()
        adapter.start()
        local log = {}
        local t = uv.new_timer()
        t:start(0, 0, function()
          t:close()
          local ch = mc.MessageChannel()
          chain(ch, function()
            log[#log + 1] = "last task"
            ch.port1:close()
          end)
          blocking(ch)
          log[#log + 1] = "returned"
        end)
        assert.is_true(uv_run(), "uv.run() did not return")
        assert.same({ "returned", "last task" }, log)
        assert.is_false(mc.step())
        assert.same({}, errors)
      end)
    end
  end)

  describe("under messagechannel.cqueues #threads", function()
    if not has_cqueues then
      skip("cqueues is not installed for " .. _VERSION)
      return
    end
    local adapter = require "messagechannel.cqueues"

    -- A live worker keeps messagechannel going, so the adapter's task waits
    -- in cqueues.poll(mc) while a cqueues task makes the blocking call; the
    -- last task of the chain lets the worker end.
    for _, call in ipairs(CALLS) do
      local name, blocking = call[1], call[2]
      it(name .. " in a cqueues task: the work it left runs before cq:loop() returns",
         function()
        local cq = cqueues.new()
        adapter.attach(cq)
        local log = {}
        local rec = helper.record_worker(workers, "mc.parentPort:receive()",
                                         nil, log)
        cq:wrap(function()
          cqueues.sleep(0)   -- the adapter's task waits in its poll by now
          local ch = mc.MessageChannel()
          chain(ch, function()
            log[#log + 1] = "last task"
            ch.port1:close()
            rec.worker:postMessage("bye")
          end)
          blocking(ch)
          log[#log + 1] = "returned"
        end)
        local ok, err = cq:loop(WAIT)
        assert.is_true(ok, tostring(err))
        assert.is_true(cq:empty(), "cq:loop() did not return within " .. WAIT .. " s")
        assert.same({ "returned", "last task", "exit 0" }, log)
        assert.same({}, errors)
      end)
    end
  end)
end)
