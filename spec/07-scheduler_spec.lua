-- The scheduler of one Lua state (API.md section 6): run, step, spawn,
-- sleep, now, onerror, and pull-style receive. Sleeps are short and only
-- ever checked as "at least".

local mc = require "messagechannel"
local helper = require "spec.helper"

local has = helper.has

local run = helper.run

-- mc.now() differences are compared with a little slack for float rounding.
local EPS = 1e-6

local noop = helper.noop

describe("scheduler", function()
  local default_onerror = mc.onerror
  local errors, catch, release = helper.error_hooks(3)
  before_each(catch)
  after_each(release)

  describe("mc.run", function()
    it("returns true at once when there is nothing to do", function()
      assert.is_true(mc.run())
      assert.is_true(mc.run(1))
    end)

    it("runs the ready tasks and sleeping tasks to the end, then returns true", function()
      local log = {}
      mc.spawn(function()
        log[#log + 1] = "a"
        mc.sleep(0.01)
        log[#log + 1] = "c"
      end)
      mc.spawn(function() log[#log + 1] = "b" end)
      assert.is_true(mc.run(5))
      assert.same({ "a", "b", "c" }, log)
    end)

    it("returns false when the timeout passes first", function()
      local stop = false
      mc.spawn(function()
        while not stop do mc.sleep(0.01) end
      end)
      local t0 = mc.now()
      assert.is_false(mc.run(0.03))
      assert.is_true(mc.now() - t0 >= 0.03 - EPS)
      stop = true
      assert.is_true(mc.run(5))
    end)

    it("returns true when the work ends before the timeout", function()
      local done = false
      mc.spawn(function()
        mc.sleep(0.01)
        done = true
      end)
      assert.is_true(mc.run(10))
      assert.is_true(done)
    end)

    it("is not kept going by ports waiting for messages of this Lua state", function()
      local ch = mc.MessageChannel()
      ch.port2.onmessage = noop
      ch.port1.onmessage = noop
      ch.port1:postMessage("delivered")
      local held = mc.MessageChannel()
      held.port1:postMessage("held: port2 not started")
      assert.is_true(mc.run(5))
    end)

    it("leaves a task waiting in receive when nothing here can wake it", function()
      local ch = mc.MessageChannel()
      local got
      mc.spawn(function() got = ch.port2:receive() end)
      assert.is_true(mc.run(5))
      assert.is_nil(got)
      ch.port1:postMessage("wake")
      assert.is_true(mc.run(5))
      assert.equal("wake", got and got.data)
    end)

    it("raises when called inside a task or a listener", function()
      local results = {}
      mc.spawn(function()
        results.task = { pcall(mc.run) }
      end)
      local ch = mc.MessageChannel()
      ch.port2.onmessage = function()
        results.listener = { pcall(mc.run, 1) }
        results.step = { pcall(mc.step) }
      end
      ch.port1:postMessage(1)
      run()
      assert.is_false(results.task[1])
      assert.is_false(results.listener[1])
      assert.is_false(results.step[1])
      assert.same({}, errors)
    end)
  end)

  describe("mc.step", function()
    it("returns false when idle", function()
      assert.is_false(mc.step())
    end)

    it("runs the ready tasks and returns false when nothing is left", function()
      local ran = 0
      mc.spawn(function() ran = ran + 1 end)
      mc.spawn(function() ran = ran + 1 end)
      assert.is_false(mc.step())
      assert.equal(2, ran)
    end)

    it("returns true while work is pending, and does not run what a step made ready", function()
      local log = {}
      mc.spawn(function()
        log[#log + 1] = "first"
        mc.spawn(function() log[#log + 1] = "second" end)
      end)
      assert.is_true(mc.step())
      assert.same({ "first" }, log)
      assert.is_false(mc.step())
      assert.same({ "first", "second" }, log)
    end)

    it("does not block on a sleeping task, and reports it as pending", function()
      local done = false
      mc.spawn(function()
        mc.sleep(0.05)
        done = true
      end)
      assert.is_true(mc.step())
      assert.is_false(done)
      assert.is_true(mc.step())
      run()
      assert.is_true(done)
    end)

    it("dispatches the messages queued at started ports", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = function(e) got[#got + 1] = e.data end
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      assert.is_false(mc.step())
      assert.same({ 1, 2 }, got)
    end)

    it("raises when called inside a task", function()
      local result
      mc.spawn(function() result = { pcall(mc.step) } end)
      run()
      assert.is_false(result[1])
    end)
  end)

  describe("mc.spawn", function()
    it("returns the task's coroutine, and runs the function in it", function()
      local inside
      local co = mc.spawn(function() inside = coroutine.running() end)
      assert.equal("thread", type(co))
      run()
      assert.is_true(rawequal(co, inside))
      assert.equal("dead", coroutine.status(co))
    end)

    it("starts the task at the next turn, not inside spawn", function()
      local ran = false
      local co = mc.spawn(function() ran = true end)
      assert.is_false(ran)
      assert.equal("suspended", coroutine.status(co))
      mc.step()
      assert.is_true(ran)
    end)

    it("passes the arguments, nils included", function()
      local args
      mc.spawn(function(...) args = helper.pack(...) end, 1, nil, "three", false)
      run()
      assert.equal(4, args.n)
      assert.equal(1, args[1])
      assert.is_nil(args[2])
      assert.equal("three", args[3])
      assert.is_false(args[4])
    end)

    it("runs tasks in the order they were spawned", function()
      local log = {}
      for i = 1, 5 do mc.spawn(function() log[#log + 1] = i end) end
      run()
      assert.same({ 1, 2, 3, 4, 5 }, log)
    end)

    it("sends a task's error to mc.onerror and runs the other tasks", function()
      local ran = false
      mc.spawn(function() error("task failed", 0) end)
      mc.spawn(function() ran = true end)
      run()
      assert.is_true(ran)
      assert.equal(1, #errors)
      assert.equal("task failed", errors[1].err)
      assert.is_string(errors[1].traceback)
    end)

    it("raises a bad argument error for something that is not a function", function()
      local err = helper.error_of(mc.spawn, 42)
      assert.truthy(has(err, "bad argument #1"), err)
    end)
  end)

  describe("mc.sleep", function()
    it("suspends a task for at least that long while the others run", function()
      local log = {}
      local t0, t1
      mc.spawn(function()
        t0 = mc.now()
        mc.sleep(0.02)
        t1 = mc.now()
        log[#log + 1] = "slept"
      end)
      mc.spawn(function() log[#log + 1] = "other" end)
      run()
      assert.same({ "other", "slept" }, log)
      assert.is_true(t1 - t0 >= 0.02 - EPS)
    end)

    it("wakes sleeping tasks in deadline order", function()
      local log = {}
      mc.spawn(function() mc.sleep(0.04) log[#log + 1] = "long" end)
      mc.spawn(function() mc.sleep(0.01) log[#log + 1] = "short" end)
      run()
      assert.same({ "short", "long" }, log)
    end)

    it("with 0 lets the other ready tasks run first", function()
      local log = {}
      mc.spawn(function()
        log[#log + 1] = "a1"
        mc.sleep(0)
        log[#log + 1] = "a2"
      end)
      mc.spawn(function() log[#log + 1] = "b" end)
      run()
      assert.same({ "a1", "b", "a2" }, log)
    end)

    it("outside a task runs the scheduler until the time has passed", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e) log[#log + 1] = e.data end
      ch.port1:postMessage("message")
      mc.spawn(function() log[#log + 1] = "task" end)
      local t0 = mc.now()
      mc.sleep(0.02)
      assert.is_true(mc.now() - t0 >= 0.02 - EPS)
      assert.same({ "message", "task" }, log)
    end)
  end)

  describe("timeouts", function()
    it("must be non-negative numbers: a bad argument error otherwise", function()
      local p = mc.MessageChannel().port2
      local calls = {
        { mc.run, -1 }, { mc.run, "1" }, { mc.sleep, -1 }, { mc.sleep, "x" },
        { mc.sleep }, { p.receive, p, -1 }, { p.receive, p, "x" },
      }
      for _, c in ipairs(calls) do
        local err = helper.error_of(c[1], helper.unpack(c, 2))
        assert.truthy(has(err, "bad argument #1"), err)
      end
    end)
  end)

  describe("mc.now", function()
    it("is a float number of seconds", function()
      local t = mc.now()
      assert.is_number(t)
      if helper.math_type then
        assert.equal("float", helper.math_type(t))
      end
    end)

    it("never goes back, and moves on across a sleep", function()
      local last = mc.now()
      for _ = 1, 10000 do
        local t = mc.now()
        assert(t >= last, "mc.now() went back")
        last = t
      end
      mc.sleep(0.01)
      assert.is_true(mc.now() - last >= 0.01 - EPS)
    end)
  end)

  describe("mc.onerror", function()
    -- Calls fn with io.stderr replaced by a table that records what is
    -- written to it; returns the text and fn's pcall results.
    local function capture_stderr(fn)
      local real, out = io.stderr, {}
      io.stderr = { -- luacheck: ignore 122
        write = function(self, ...)
          for i = 1, select("#", ...) do out[#out + 1] = tostring((select(i, ...))) end
          return self
        end,
      }
      local res = helper.pack(pcall(fn))
      io.stderr = real -- luacheck: ignore 122
      return table.concat(out), res
    end

    it("is a function by default", function()
      assert.is_function(default_onerror)
    end)

    it("by default writes the error and the traceback to io.stderr, and returns", function()
      local text, res = capture_stderr(function()
        return default_onerror("spec error text", "spec traceback text")
      end)
      assert.is_true(res[1], res[2])
      assert.truthy(has(text, "spec error text"), text)
      assert.truthy(has(text, "spec traceback text"), text)
    end)

    it("by default reports a task's error on io.stderr and lets run go on", function()
      local ran = false
      mc.onerror = default_onerror
      local text, res = capture_stderr(function()
        mc.spawn(function() error("default handler got this", 0) end)
        mc.spawn(function() ran = true end)
        return mc.run(10)
      end)
      assert.is_true(res[1], res[2])
      assert.is_true(res[2])
      assert.is_true(ran)
      assert.truthy(has(text, "default handler got this"), text)
      assert.truthy(has(text, "traceback"), text)
    end)

    it("gets the raised value itself and a traceback string", function()
      local raised = { code = 7 }
      mc.spawn(function() error(raised) end)
      run()
      assert.equal(1, #errors)
      assert.is_true(rawequal(raised, errors[1].err))
      assert.is_string(errors[1].traceback)
    end)

    it("can be replaced, and the replacement is used from then on", function()
      local mine = {}
      mc.onerror = function(err) mine[#mine + 1] = err end
      mc.spawn(function() error("to mine", 0) end)
      run()
      assert.same({ "to mine" }, mine)
      assert.same({}, errors)
    end)

    it("propagates its own error out of mc.run", function()
      mc.onerror = function(err) error("onerror: " .. tostring(err), 0) end
      mc.spawn(function() error("task", 0) end)
      local ok, err = pcall(mc.run, 10)
      assert.is_false(ok)
      assert.equal("onerror: task", err)
    end)

    it("propagates its own error out of mc.step", function()
      mc.onerror = function(err) error("onerror: " .. tostring(err), 0) end
      mc.spawn(function() error("task", 0) end)
      local ok, err = pcall(mc.step)
      assert.is_false(ok)
      assert.equal("onerror: task", err)
    end)

    it("propagates its own error out of mc.sleep called outside a task", function()
      mc.onerror = function(err) error("onerror: " .. tostring(err), 0) end
      mc.spawn(function() error("task", 0) end)
      local ok, err = pcall(mc.sleep, 0.01)
      assert.is_false(ok)
      assert.equal("onerror: task", err)
    end)

    it("propagates its own error out of a receive called outside a task", function()
      local ch = mc.MessageChannel()
      mc.onerror = function(err) error("onerror: " .. tostring(err), 0) end
      mc.spawn(function() error("task", 0) end)
      mc.spawn(function() ch.port1:postMessage("after") end)
      local ok, err = pcall(ch.port2.receive, ch.port2)
      assert.is_false(ok)
      assert.equal("onerror: task", err)
      mc.onerror = noop
      run()
      assert.equal("after", ch.port2:receive(0).data)
    end)

    it("leaves the scheduler usable after its error propagated", function()
      mc.onerror = function(err) error(err, 0) end
      mc.spawn(function() error("once", 0) end)
      assert.is_false(pcall(mc.run, 10))
      mc.onerror = noop
      local ran = false
      mc.spawn(function() ran = true end)
      assert.is_true(mc.run(10))
      assert.is_true(ran)
    end)
  end)

  describe("port:receive", function()
    it("inside a task suspends it until a message comes, while other tasks run", function()
      local ch = mc.MessageChannel()
      local log = {}
      mc.spawn(function()
        log[#log + 1] = "waiting"
        local ev = ch.port2:receive()
        log[#log + 1] = "got " .. ev.data
      end)
      mc.spawn(function()
        log[#log + 1] = "posting"
        ch.port1:postMessage("x")
      end)
      run()
      assert.same({ "waiting", "posting", "got x" }, log)
    end)

    it("returns a message event with the data and the port", function()
      local ch = mc.MessageChannel()
      local ev
      mc.spawn(function() ev = ch.port2:receive() end)
      mc.spawn(function() ch.port1:postMessage({ n = 1 }) end)
      run()
      assert.equal("message", ev.type)
      assert.same({ n = 1 }, ev.data)
      assert.is_true(rawequal(ch.port2, ev.target))
      assert.same({}, ev.ports)
    end)

    it("inside a task takes the message before the port's listeners", function()
      local ch = mc.MessageChannel()
      local got, listened = nil, {}
      ch.port2.onmessage = function(e) listened[#listened + 1] = e.data end
      mc.spawn(function() got = ch.port2:receive().data end)
      mc.step()
      ch.port1:postMessage("for the task")
      ch.port1:postMessage("for the listener")
      run()
      assert.equal("for the task", got)
      assert.same({ "for the listener" }, listened)
    end)

    it("outside a task returns a queued message at once", function()
      local ch = mc.MessageChannel()
      ch.port1:postMessage("queued")
      assert.equal("queued", ch.port2:receive().data)
    end)

    it("outside a task runs the scheduler until the message comes", function()
      local ch = mc.MessageChannel()
      local log = {}
      mc.spawn(function()
        mc.sleep(0.01)
        log[#log + 1] = "posting"
        ch.port1:postMessage("late")
      end)
      mc.spawn(function() log[#log + 1] = "other task" end)
      local ev = ch.port2:receive()
      assert.equal("late", ev.data)
      assert.same({ "other task", "posting" }, log)
    end)

    it("outside a task raises when nothing could ever deliver a message", function()
      local ch = mc.MessageChannel()
      local err = helper.error_of(ch.port2.receive, ch.port2)
      assert.truthy(has(err, "would wait forever"), err)
    end)

    it("returns nil, 'timeout' when the timeout passes, inside a task", function()
      local ch = mc.MessageChannel()
      local res, elapsed
      mc.spawn(function()
        local t0 = mc.now()
        res = helper.pack(ch.port2:receive(0.02))
        elapsed = mc.now() - t0
      end)
      run()
      assert.is_nil(res[1])
      assert.equal("timeout", res[2])
      assert.is_true(elapsed >= 0.02 - EPS)
    end)

    it("returns nil, 'timeout' when the timeout passes, outside a task", function()
      local ch = mc.MessageChannel()
      local t0 = mc.now()
      local ev, why = ch.port2:receive(0.02)
      assert.is_nil(ev)
      assert.equal("timeout", why)
      assert.is_true(mc.now() - t0 >= 0.02 - EPS)
    end)

    -- (A timer left behind would keep run() going: these would return false.
    -- The timeouts are short so a failure does not spill into later specs.)
    it("that got its message in time does not keep run() going until the timeout", function()
      local ch = mc.MessageChannel()
      local got
      mc.spawn(function() got = ch.port2:receive(2) end)
      mc.spawn(function() ch.port1:postMessage("in time") end)
      assert.is_true(mc.run(0.5))
      assert.equal("in time", got and got.data)
      assert.is_false(mc.step())
    end)

    it("that was woken by the close does not keep run() going until the timeout", function()
      local ch = mc.MessageChannel()
      local why
      mc.spawn(function() why = select(2, ch.port2:receive(2)) end)
      mc.spawn(function() ch.port1:close() end)
      assert.is_true(mc.run(0.5))
      assert.equal("closed", why)
    end)

    it("hands messages to waiting tasks in the order they began to wait", function()
      local ch = mc.MessageChannel()
      local log = {}
      for i = 1, 3 do
        mc.spawn(function()
          local data = ch.port2:receive().data
          log[#log + 1] = i .. "=" .. data
        end)
      end
      mc.step()
      for _, d in ipairs({ "a", "b", "c" }) do ch.port1:postMessage(d) end
      run()
      assert.same({ "1=a", "2=b", "3=c" }, log)
    end)

    it("returns the message when it comes before the timeout", function()
      local ch = mc.MessageChannel()
      mc.spawn(function() ch.port1:postMessage("in time") end)
      local ev = ch.port2:receive(5)
      assert.equal("in time", ev.data)
    end)

    it("with 0 polls: the queued message, or nil, 'timeout'", function()
      local ch = mc.MessageChannel()
      local ev, why = ch.port2:receive(0)
      assert.is_nil(ev)
      assert.equal("timeout", why)
      ch.port1:postMessage("polled")
      assert.equal("polled", ch.port2:receive(0).data)
      local inside
      mc.spawn(function() inside = helper.pack(ch.port2:receive(0)) end)
      run()
      assert.is_nil(inside[1])
      assert.equal("timeout", inside[2])
    end)

    it("takes messages from a port that is not started, without starting it", function()
      local ch = mc.MessageChannel()
      local listened = {}
      ch.port2:addEventListener("message", function(e) listened[#listened + 1] = e.data end)
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      assert.equal(1, ch.port2:receive().data)
      run()
      assert.same({}, listened)
      ch.port2:start()
      run()
      assert.same({ 2 }, listened)
    end)

    it("takes messages in order, as many as were posted", function()
      local ch = mc.MessageChannel()
      for i = 1, 5 do ch.port1:postMessage(i) end
      local got = {}
      mc.spawn(function()
        for _ = 1, 5 do got[#got + 1] = ch.port2:receive().data end
      end)
      run()
      assert.same({ 1, 2, 3, 4, 5 }, got)
      local ev, why = ch.port2:receive(0)
      assert.is_nil(ev)
      assert.equal("timeout", why)
    end)

    it("wakes a waiting task with nil, 'closed' when the channel closes", function()
      local ch = mc.MessageChannel()
      local res
      mc.spawn(function() res = helper.pack(ch.port2:receive()) end)
      mc.spawn(function() ch.port1:close() end)
      run()
      assert.is_nil(res[1])
      assert.equal("closed", res[2])
    end)

    it("returns nil, 'closed' on a closed port with an empty queue, outside a task", function()
      local ch = mc.MessageChannel()
      ch.port2:close()
      for _, p in ipairs({ ch.port1, ch.port2 }) do
        local ev, why = p:receive()
        assert.is_nil(ev)
        assert.equal("closed", why)
      end
    end)
  end)

  describe("listeners", function()
    it("may sleep, and each keeps its own event", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = function(e)
        local before = e.data
        mc.sleep(0)
        got[#got + 1] = before .. "=" .. e.data
      end
      for i = 1, 3 do ch.port1:postMessage(i) end
      run()
      table.sort(got)
      assert.same({ "1=1", "2=2", "3=3" }, got)
    end)

    it("may sleep while the other tasks run", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function()
        log[#log + 1] = "listener sleeps"
        mc.sleep(0.01)
        log[#log + 1] = "listener woke"
      end
      ch.port1:postMessage(1)
      mc.step()
      mc.spawn(function() log[#log + 1] = "task" end)
      run()
      assert.same({ "listener sleeps", "task", "listener woke" }, log)
    end)

    it("may wait in receive on another port", function()
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      local log = {}
      a.port2.onmessage = function(e)
        log[#log + 1] = "asked " .. e.data
        local reply = b.port2:receive()
        log[#log + 1] = "answer " .. reply.data
      end
      a.port1:postMessage("question")
      mc.spawn(function()
        mc.sleep(0.01)
        b.port1:postMessage(42)
      end)
      run()
      assert.same({ "asked question", "answer 42" }, log)
    end)

    it("run by dispatchEvent inside a task may sleep and receive", function()
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      local log = {}
      a.port1:addEventListener("ping", function()
        mc.sleep(0.01)
        log[#log + 1] = "slept"
        local data = b.port2:receive().data
        log[#log + 1] = "got " .. data
      end)
      mc.spawn(function()
        a.port1:dispatchEvent({ type = "ping" })
        log[#log + 1] = "dispatched"
      end)
      mc.spawn(function() b.port1:postMessage("x") end)
      run()
      assert.same({ "slept", "got x", "dispatched" }, log)
      assert.same({}, errors)
    end)

    it("keep working for later messages after a listener blocked", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = function(e)
        if e.data == 1 then mc.sleep(0.01) end
        got[#got + 1] = e.data
      end
      ch.port1:postMessage(1)
      run()
      for i = 2, 4 do ch.port1:postMessage(i) end
      run()
      assert.same({ 1, 2, 3, 4 }, got)
      assert.same({}, errors)
    end)
  end)
end)
