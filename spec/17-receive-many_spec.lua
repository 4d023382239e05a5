-- Receive from many (API.md section 11, with the blocking rules of 6.3):
-- mc.receive(ports [, timeout]) and port:pending().
--
-- mc.receive takes the first message to arrive at any of the listed ports,
-- the oldest by arrival in this state when several already wait; it
-- returns nil, "timeout" when the time passes (0 tries once) and
-- nil, "closed" once every listed port is closed (or moved away) and
-- drained. port:pending() counts the messages queued at a port and not
-- yet taken.
--
-- Nothing here checks a duration. Single-thread specs are sequenced by
-- tasks and mc.step(); the thread specs by messages, closes and worker
-- ends under mc.run() with a generous timeout, so a bug fails a spec
-- instead of hanging the suite.

local mc = require "messagechannel"
local helper = require "spec.helper"

local has, pack, error_of = helper.has, helper.pack, helper.error_of

local TIMEOUT = helper.WAIT

local run = helper.run  -- until idle, or fails after helper.WAIT s

-- Two channels: the specs wait on a.port2 and b.port2 and post through
-- a.port1 and b.port1.
local function two()
  return mc.MessageChannel(), mc.MessageChannel()
end

-- Asserts that ev is the message event of `data` received at `port`,
-- and that `from` (mc.receive's second result) is that port.
local function is_message(ev, from, data, port)
  assert.is_table(ev)
  assert.equal("message", ev.type)
  assert.same(data, ev.data)
  assert.is_true(rawequal(port, ev.target), "event target is not the port")
  assert.is_true(rawequal(port, from), "second result is not the port")
end

-- Asserts that the packed results r are nil, why.
local function is_nil_why(r, why)
  assert.is_table(r)
  assert.equal(2, r.n)
  assert.is_nil(r[1])
  assert.equal(why, r[2])
end

-- Asserts that fn(...) raises an error containing needle (plainly).
local function raises(needle, fn, ...)
  local err = error_of(fn, ...)
  assert.truthy(err:find(needle, 1, true), ("expected %q in %q"):format(needle, err))
  return err
end

describe("mc.receive", function()
  local errors, catch, release = helper.error_hooks(3)
  before_each(catch)
  after_each(release)

  describe("results", function()
    it("returns the message event and the port it came through", function()
      local a, b = two()
      b.port1:postMessage({ n = 1, s = "x" })
      local ev, from = mc.receive({ a.port2, b.port2 }, 0)
      is_message(ev, from, { n = 1, s = "x" }, b.port2)
      assert.same({}, ev.ports)
      a.port1:postMessage("for a")
      ev, from = mc.receive({ a.port2, b.port2 }, 0)
      is_message(ev, from, "for a", a.port2)
    end)

    it("carries the ports transferred with the message", function()
      local a, b = two()
      local extra = mc.MessageChannel()
      a.port1:postMessage("with a port", { extra.port2 })
      local ev, from = mc.receive({ a.port2, b.port2 }, 0)
      is_message(ev, from, "with a port", a.port2)
      assert.equal(1, #ev.ports)
      assert.is_true(helper.is_port(ev.ports[1]))
      extra.port1:postMessage("through the moved port")
      assert.equal("through the moved port", ev.ports[1]:receive(0).data)
    end)

    it("takes the message: it is not received again, nor dispatched", function()
      local a, b = two()
      local listened = {}
      a.port2.onmessage = function(e) listened[#listened + 1] = e.data end
      a.port1:postMessage("once")
      local ev = mc.receive({ a.port2, b.port2 }, 0)
      assert.equal("once", ev.data)
      run()
      assert.same({}, listened)
      local r = pack(mc.receive({ a.port2, b.port2 }, 0))
      is_nil_why(r, "timeout")
    end)

    it("does not start a port that is not started", function()
      local a, b = two()
      local listened = {}
      a.port2:addEventListener("message", function(e) listened[#listened + 1] = e.data end)
      a.port1:postMessage(1)
      a.port1:postMessage(2)
      assert.equal(1, mc.receive({ a.port2, b.port2 }).data)
      run()
      assert.same({}, listened)
      a.port2:start()
      run()
      assert.same({ 2 }, listened)
    end)
  end)

  describe("order", function()
    it("takes the oldest first when several ports already have messages", function()
      local a, b = two()
      b.port1:postMessage("b1")
      a.port1:postMessage("a1")
      b.port1:postMessage("b2")
      local got = {}
      for _ = 1, 3 do
        local ev, from = mc.receive({ a.port2, b.port2 }, 0)
        got[#got + 1] = ev.data .. (rawequal(from, a.port2) and "@a" or "@b")
      end
      assert.same({ "b1@b", "a1@a", "b2@b" }, got)
    end)

    it("takes the oldest first whatever the order of the list", function()
      local a, b = two()
      a.port1:postMessage("a1")
      b.port1:postMessage("b1")
      a.port1:postMessage("a2")
      local got = {}
      for _ = 1, 3 do
        got[#got + 1] = mc.receive({ b.port2, a.port2 }, 0).data
      end
      assert.same({ "a1", "b1", "a2" }, got)
    end)

    it("keeps the order of each port, as many as were posted", function()
      local a, b, c = mc.MessageChannel(), mc.MessageChannel(), mc.MessageChannel()
      local senders = { a = a.port1, b = b.port1, c = c.port1 }
      local posted = {}
      for i = 1, 30 do
        local name = ({ "a", "b", "c" })[i % 3 + 1]
        if i % 7 == 0 then name = "a" end
        senders[name]:postMessage(name .. i)
        posted[#posted + 1] = name .. i
      end
      local got = {}
      for _ = 1, 30 do
        got[#got + 1] = mc.receive({ a.port2, b.port2, c.port2 }, 0).data
      end
      assert.same(posted, got)
      is_nil_why(pack(mc.receive({ a.port2, b.port2, c.port2 }, 0)), "timeout")
    end)

    it("takes what another task posted, in post order, inside a task", function()
      local a, b = two()
      local got = {}
      mc.spawn(function()
        for _ = 1, 4 do
          local ev, from = mc.receive({ a.port2, b.port2 })
          got[#got + 1] = ev.data .. (rawequal(from, a.port2) and "@a" or "@b")
        end
      end)
      mc.spawn(function()
        b.port1:postMessage("1")
        a.port1:postMessage("2")
        a.port1:postMessage("3")
        b.port1:postMessage("4")
      end)
      run()
      assert.same({ "1@b", "2@a", "3@a", "4@b" }, got)
    end)
  end)

  describe("timeout", function()
    it("0 polls outside a task: the oldest queued message, or nil, 'timeout'", function()
      local a, b = two()
      is_nil_why(pack(mc.receive({ a.port2, b.port2 }, 0)), "timeout")
      a.port1:postMessage("polled")
      local ev, from = mc.receive({ a.port2, b.port2 }, 0)
      is_message(ev, from, "polled", a.port2)
      is_nil_why(pack(mc.receive({ a.port2, b.port2 }, 0)), "timeout")
    end)

    it("0 polls inside a task without waiting for later messages", function()
      local a, b = two()
      local first, second
      mc.spawn(function()
        first = pack(mc.receive({ a.port2, b.port2 }, 0))
        mc.sleep(0)
        second = pack(mc.receive({ a.port2, b.port2 }, 0))
      end)
      mc.spawn(function() b.port1:postMessage("late") end)
      run()
      is_nil_why(first, "timeout")
      is_message(second[1], second[2], "late", b.port2)
    end)

    it("0 on closed and drained ports gives 'closed', not 'timeout'", function()
      local a, b = two()
      a.port1:close()
      b.port2:close()
      is_nil_why(pack(mc.receive({ a.port2, b.port2 }, 0)), "closed")
    end)

    it("passes with nil, 'timeout' inside a task, and the task goes on", function()
      local a, b = two()
      local res, after
      mc.spawn(function()
        res = pack(mc.receive({ a.port2, b.port2 }, 0.05))
        after = true
      end)
      run()
      is_nil_why(res, "timeout")
      assert.is_true(after)
    end)

    it("passes with nil, 'timeout' outside a task", function()
      local a, b = two()
      is_nil_why(pack(mc.receive({ a.port2, b.port2 }, 0.05)), "timeout")
    end)

    it("outside a task, with a timeout, does not raise when nothing could post", function()
      local a, b = two()
      local r = pack(pcall(mc.receive, { a.port2, b.port2 }, 0.02))
      assert.is_true(r[1], tostring(r[2]))
      assert.is_nil(r[2])
      assert.equal("timeout", r[3])
    end)

    it("is not reached when a message comes first, inside a task", function()
      local a, b = two()
      local res
      mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2 }, TIMEOUT)) end)
      mc.spawn(function() b.port1:postMessage("in time") end)
      run()
      is_message(res[1], res[2], "in time", b.port2)
    end)

    it("is not reached when a message comes first, outside a task", function()
      local a, b = two()
      mc.spawn(function() a.port1:postMessage("in time") end)
      local ev, from = mc.receive({ a.port2, b.port2 }, TIMEOUT)
      is_message(ev, from, "in time", a.port2)
    end)

    -- (A timer left behind would keep mc.step() true and mc.timeout() a
    -- number. The timeouts are a few seconds so that such a failure does
    -- not spill into later specs: after_each runs the scheduler a while.
    -- Garbage of earlier specs is collected first and the collector is
    -- stopped meanwhile: a port finalized during the spec queues a close,
    -- which is work for mc.step() and mc.timeout() too.)
    local function quiet_collector()
      helper.collect()
      collectgarbage("stop")
      finally(function() collectgarbage("restart") end)
    end

    it("that got its message leaves no timer behind", function()
      quiet_collector()
      local a, b = two()
      local res
      mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2 }, 5)) end)
      mc.spawn(function() a.port1:postMessage("in time") end)
      mc.step()
      mc.step()
      mc.step()
      assert.is_table(res)
      assert.equal("in time", res[1].data)
      assert.is_false(mc.step())
      assert.is_nil(mc.timeout())
    end)

    it("that was ended by the closes leaves no timer behind", function()
      quiet_collector()
      local a, b = two()
      local res
      mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2 }, 5)) end)
      mc.spawn(function()
        a.port1:close()
        b.port1:close()
      end)
      for _ = 1, 5 do mc.step() end
      is_nil_why(res, "closed")
      assert.is_false(mc.step())
      assert.is_nil(mc.timeout())
    end)
  end)

  describe("closed", function()
    it("is returned once every port is closed, outside a task", function()
      local a, b = two()
      a.port1:close()
      b.port2:close()
      is_nil_why(pack(mc.receive({ a.port2, b.port2 })), "closed")
    end)

    it("comes after the messages queued before the closes", function()
      local a, b = two()
      a.port1:postMessage("a1")
      b.port1:postMessage("b1")
      a.port1:postMessage("a2")
      a.port1:close()
      b.port1:close()
      local got = {}
      for _ = 1, 3 do
        got[#got + 1] = mc.receive({ a.port2, b.port2 }).data
      end
      assert.same({ "a1", "b1", "a2" }, got)
      is_nil_why(pack(mc.receive({ a.port2, b.port2 })), "closed")
      is_nil_why(pack(mc.receive({ a.port2, b.port2 }, 0)), "closed")
    end)

    it("comes after messages still queued at a port that closed itself", function()
      local a, b = two()
      a.port1:postMessage("kept")
      a.port2:close()
      b.port1:close()
      local ev, from = mc.receive({ a.port2, b.port2 })
      is_message(ev, from, "kept", a.port2)
      is_nil_why(pack(mc.receive({ a.port2, b.port2 })), "closed")
    end)

    it("is not returned while one port is closed and another open", function()
      local a, b = two()
      a.port1:close()
      is_nil_why(pack(mc.receive({ a.port2, b.port2 }, 0)), "timeout")
      b.port1:postMessage("from the open one")
      local ev, from = mc.receive({ a.port2, b.port2 }, 0)
      is_message(ev, from, "from the open one", b.port2)
    end)

    it("inside a task keeps waiting when one port closes, for the other's message", function()
      local a, b = two()
      local res
      mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2 })) end)
      mc.spawn(function() a.port1:close() end)
      run()
      assert.is_nil(res)                -- still waiting: b is open
      mc.spawn(function() b.port1:postMessage("b after a closed") end)
      run()
      is_message(res[1], res[2], "b after a closed", b.port2)
    end)

    it("inside a task, with a port closed before the wait, ends at the other's close", function()
      local a, b = two()
      a.port1:close()
      run()                             -- a's close event is long gone
      local res
      mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2 })) end)
      run()
      assert.is_nil(res)                -- still waiting: b is open
      mc.spawn(function() b.port1:close() end)
      run()
      is_nil_why(res, "closed")
    end)

    it("inside a task is woken with nil, 'closed' once the last port closes", function()
      local a, b, c = mc.MessageChannel(), mc.MessageChannel(), mc.MessageChannel()
      local res, log = nil, {}
      mc.spawn(function()
        res = pack(mc.receive({ a.port2, b.port2, c.port2 }))
        log[#log + 1] = "woken"
      end)
      mc.spawn(function()
        a.port1:close()
        mc.sleep(0)
        log[#log + 1] = "a closed"
        b.port2:close()
        mc.sleep(0)
        log[#log + 1] = "b closed"
        c.port1:close()
      end)
      run()
      is_nil_why(res, "closed")
      assert.same({ "a closed", "b closed", "woken" }, log)
    end)

    it("inside a task gets the message posted just before the close, then 'closed'", function()
      local a, b = two()
      local got = {}
      mc.spawn(function()
        for i = 1, 3 do
          local r = pack(mc.receive({ a.port2, b.port2 }))
          got[i] = r
        end
      end)
      mc.spawn(function()
        b.port1:close()
        a.port1:postMessage("last words")
        a.port1:close()
      end)
      run()
      is_message(got[1][1], got[1][2], "last words", a.port2)
      is_nil_why(got[2], "closed")
      is_nil_why(got[3], "closed")
    end)

    it("counts a port transferred away as closed", function()
      local a, b, carrier = mc.MessageChannel(), mc.MessageChannel(), mc.MessageChannel()
      a.port1:postMessage("goes with the port")
      assert.is_true(carrier.port1:postMessage(nil, { a.port2 }))
      b.port1:close()
      is_nil_why(pack(mc.receive({ a.port2, b.port2 })), "closed")
      is_nil_why(pack(mc.receive({ a.port2 }, 0)), "closed")
      -- the message went with the port: the moved port has it
      local moved = carrier.port2:receive(0).ports[1]
      assert.equal("goes with the port", moved:receive(0).data)
    end)

    it("with a port transferred away keeps waiting on the others", function()
      local a, b, carrier = mc.MessageChannel(), mc.MessageChannel(), mc.MessageChannel()
      carrier.port1:postMessage(nil, { a.port2 })
      is_nil_why(pack(mc.receive({ a.port2, b.port2 }, 0)), "timeout")
      local res
      mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2 })) end)
      mc.spawn(function() b.port1:postMessage("still open") end)
      run()
      is_message(res[1], res[2], "still open", b.port2)
      -- and the wait ends with 'closed' when the other one closes
      res = nil
      mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2 })) end)
      run()
      assert.is_nil(res)
      mc.spawn(function() b.port1:close() end)
      run()
      is_nil_why(res, "closed")
    end)
  end)

  describe("blocking", function()
    it("inside a task suspends it while other tasks run, until a later post", function()
      local a, b = two()
      local log = {}
      mc.spawn(function()
        log[#log + 1] = "waiting"
        local ev, from = mc.receive({ a.port2, b.port2 })
        log[#log + 1] = "got " .. ev.data .. (rawequal(from, b.port2) and "@b" or "@a")
      end)
      mc.spawn(function()
        log[#log + 1] = "other task"
        mc.sleep(0)
        log[#log + 1] = "posting"
        b.port1:postMessage("x")
      end)
      run()
      assert.same({ "waiting", "other task", "posting", "got x@b" }, log)
    end)

    it("inside a task takes the message before the port's listeners", function()
      local a, b = two()
      local got, listened = nil, {}
      b.port2.onmessage = function(e) listened[#listened + 1] = e.data end
      mc.spawn(function() got = mc.receive({ a.port2, b.port2 }).data end)
      mc.step()
      b.port1:postMessage("for the task")
      b.port1:postMessage("for the listener")
      run()
      assert.equal("for the task", got)
      assert.same({ "for the listener" }, listened)
    end)

    it("inside a listener suspends the listener until a message comes", function()
      local a, b, trigger = mc.MessageChannel(), mc.MessageChannel(), mc.MessageChannel()
      local log = {}
      trigger.port2.onmessage = function(e)
        log[#log + 1] = "listener " .. e.data
        local ev, from = mc.receive({ a.port2, b.port2 })
        log[#log + 1] = "listener got " .. ev.data
          .. (rawequal(from, a.port2) and "@a" or "@b")
      end
      trigger.port1:postMessage("start")
      mc.spawn(function()
        mc.sleep(0)
        mc.sleep(0)
        log[#log + 1] = "posting"
        a.port1:postMessage("y")
      end)
      run()
      assert.same({ "listener start", "posting", "listener got y@a" }, log)
      assert.same({}, errors)
    end)

    it("hands messages to waiting tasks in the order they began to wait", function()
      local a, b = two()
      local log = {}
      for i = 1, 3 do
        mc.spawn(function()
          local ev = mc.receive({ a.port2, b.port2 })
          log[#log + 1] = i .. "=" .. ev.data
        end)
      end
      mc.step()
      a.port1:postMessage("x")
      b.port1:postMessage("y")
      a.port1:postMessage("z")
      run()
      assert.same({ "1=x", "2=y", "3=z" }, log)
    end)

    it("shares a port with a task waiting in port:receive, first waiter first", function()
      local a, b = two()
      local log = {}
      mc.spawn(function()
        local ev = a.port2:receive()
        log[#log + 1] = "single " .. ev.data
      end)
      mc.spawn(function()
        local ev = mc.receive({ a.port2, b.port2 })
        log[#log + 1] = "many " .. ev.data
      end)
      mc.step()
      a.port1:postMessage("first")
      a.port1:postMessage("second")
      run()
      assert.same({ "single first", "many second" }, log)
    end)

    it("outside a task runs the scheduler until a message comes", function()
      local a, b = two()
      local log = {}
      mc.spawn(function()
        mc.sleep(0)
        log[#log + 1] = "posting"
        a.port1:postMessage("late")
      end)
      mc.spawn(function() log[#log + 1] = "other task" end)
      local ev, from = mc.receive({ a.port2, b.port2 })
      is_message(ev, from, "late", a.port2)
      assert.same({ "other task", "posting" }, log)
    end)

    it("outside a task runs the scheduler until the last close", function()
      local a, b = two()
      mc.spawn(function()
        a.port1:close()
        mc.sleep(0)
        b.port1:close()
      end)
      is_nil_why(pack(mc.receive({ a.port2, b.port2 })), "closed")
    end)

    it("outside a task raises when nothing could ever post to the ports", function()
      local a, b = two()
      raises("receive() would wait forever: no task, timer or other thread can post to these ports",
             mc.receive, { a.port2, b.port2 })
      -- nor after one of them closed
      a.port1:close()
      raises("would wait forever", mc.receive, { a.port2, b.port2 })
      -- and the ports still work after it
      b.port1:postMessage("after")
      assert.equal("after", mc.receive({ a.port2, b.port2 }).data)
    end)

    it("inside a task stays suspended when nothing here posts, and wakes on a post", function()
      local a, b = two()
      local res
      mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2 })) end)
      run()
      assert.is_nil(res)
      a.port1:postMessage("wake")
      run()
      is_message(res[1], res[2], "wake", a.port2)
    end)
  end)

  describe("after the wait is satisfied through one port", function()
    it("a later message at another started port goes to its listener", function()
      local a, b = two()
      local res, listened = nil, {}
      b.port2.onmessage = function(e) listened[#listened + 1] = e.data end
      mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2 })) end)
      mc.step()
      a.port1:postMessage("to the waiter")
      run()
      is_message(res[1], res[2], "to the waiter", a.port2)
      b.port1:postMessage("to the listener")
      run()
      assert.same({ "to the listener" }, listened)
      assert.equal(0, b.port2:pending())
    end)

    it("a later message at another port that is not started stays queued", function()
      local a, b = two()
      local res
      mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2 })) end)
      mc.step()
      b.port1:postMessage("to the waiter")
      run()
      is_message(res[1], res[2], "to the waiter", b.port2)
      a.port1:postMessage("stays")
      run()
      assert.equal(1, a.port2:pending())
      assert.equal("stays", a.port2:receive(0).data)
    end)

    it("messages posted in the same turn at both ports: one to the waiter, none lost", function()
      local a, b = two()
      local res, listened = nil, {}
      a.port2.onmessage = function(e) listened[#listened + 1] = "a:" .. e.data end
      b.port2.onmessage = function(e) listened[#listened + 1] = "b:" .. e.data end
      mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2 })) end)
      mc.step()
      b.port1:postMessage("1")
      a.port1:postMessage("2")
      b.port1:postMessage("3")
      run()
      is_message(res[1], res[2], "1", b.port2)
      assert.same({ "a:2", "b:3" }, listened)
    end)

    it("the other port's close does not end the task's next wait", function()
      local a, b = two()
      local first, second
      mc.spawn(function()
        first = pack(mc.receive({ a.port2, b.port2 }))
        second = pack(mc.receive({ a.port2 }))
      end)
      mc.step()
      a.port1:postMessage("first")
      run()
      is_message(first[1], first[2], "first", a.port2)
      b.port1:close()
      run()
      assert.is_nil(second)             -- still waiting at a
      a.port1:postMessage("second")
      run()
      is_message(second[1], second[2], "second", a.port2)
    end)
  end)

  describe("a port listed twice", function()
    it("counts once: its message is taken once", function()
      local a = mc.MessageChannel()
      a.port1:postMessage("x")
      local ev, from = mc.receive({ a.port2, a.port2 }, 0)
      is_message(ev, from, "x", a.port2)
      is_nil_why(pack(mc.receive({ a.port2, a.port2 }, 0)), "timeout")
    end)

    it("counts once: a waiting task takes one message, the next stays queued", function()
      local a = mc.MessageChannel()
      local res
      mc.spawn(function() res = pack(mc.receive({ a.port2, a.port2 })) end)
      mc.step()
      a.port1:postMessage("x")
      a.port1:postMessage("y")
      run()
      is_message(res[1], res[2], "x", a.port2)
      assert.equal(1, a.port2:pending())
      assert.equal("y", a.port2:receive(0).data)
    end)

    it("counts once: its close alone ends the wait", function()
      local a, b = two()
      local res
      mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2, a.port2 })) end)
      mc.step()
      b.port1:close()
      a.port1:close()
      run()
      is_nil_why(res, "closed")
    end)
  end)

  describe("argument errors", function()
    it("when the list is not a table", function()
      raises("bad argument #1 to 'receive' (array of MessagePorts expected, got number)",
             mc.receive, 5)
      raises("bad argument #1 to 'receive' (array of MessagePorts expected, got nil)",
             mc.receive, nil)
      raises("bad argument #1 to 'receive' (array of MessagePorts expected, got no value)",
             mc.receive)
      raises("bad argument #1 to 'receive' (array of MessagePorts expected, got string)",
             mc.receive, "ports")
    end)

    it("when a port itself is given instead of a list", function()
      local a = mc.MessageChannel()
      raises("bad argument #1 to 'receive' (array of MessagePorts expected, got MessagePort)",
             mc.receive, a.port2)
    end)

    it("when an entry is not a port, naming its index", function()
      local a = mc.MessageChannel()
      raises("bad argument #1 to 'receive' (MessagePort expected at index 2, got string)",
             mc.receive, { a.port2, "x" })
      raises("bad argument #1 to 'receive' (MessagePort expected at index 1, got table)",
             mc.receive, { {}, a.port2 })
      raises("bad argument #1 to 'receive' (MessagePort expected at index 3, got Buffer)",
             mc.receive, { a.port2, a.port1, mc.Buffer(1) })
    end)

    it("when the list is empty", function()
      raises("bad argument #1 to 'receive' (empty array of MessagePorts)", mc.receive, {})
    end)

    it("when the timeout is not a non-negative number", function()
      local a = mc.MessageChannel()
      raises("bad argument #2 to 'receive' (non-negative number expected, got -1)",
             mc.receive, { a.port2 }, -1)
      raises("bad argument #2 to 'receive' (non-negative number expected, got string)",
             mc.receive, { a.port2 }, "1")
      raises("bad argument #2 to 'receive' (non-negative number expected, got boolean)",
             mc.receive, { a.port2 }, true)
      raises("bad argument #2 to 'receive' (non-negative number expected",
             mc.receive, { a.port2 }, 0 / 0)
    end)

    it("raise inside a task too, and take nothing", function()
      local a = mc.MessageChannel()
      a.port1:postMessage("kept")
      local err
      mc.spawn(function()
        err = select(2, pcall(mc.receive, { a.port2 }, -1))
      end)
      run()
      assert.truthy(has(err, "bad argument #2 to 'receive' (non-negative number expected"),
                    tostring(err))
      raises("MessagePort expected at index 2", mc.receive, { a.port2, false })
      assert.equal(1, a.port2:pending())
      assert.equal("kept", mc.receive({ a.port2 }, 0).data)
    end)
  end)
end)

describe("port:pending", function()
  local errors, catch, release = helper.error_hooks(3)
  before_each(catch)
  after_each(release)

  it("is 0 for a fresh port", function()
    local ch = mc.MessageChannel()
    assert.equal(0, ch.port1:pending())
    assert.equal(0, ch.port2:pending())
  end)

  it("counts the messages posted while the port is not started", function()
    local ch = mc.MessageChannel()
    ch.port2:addEventListener("message", helper.noop)
    for i = 1, 5 do
      ch.port1:postMessage(i)
      assert.equal(i, ch.port2:pending())
    end
    run()
    assert.equal(5, ch.port2:pending())
    assert.equal(0, ch.port1:pending())
  end)

  it("counts each message once, whatever it holds", function()
    local ch = mc.MessageChannel()
    ch.port1:postMessage()
    ch.port1:postMessage({ 1, 2, 3, { 4 } })
    ch.port1:postMessage(mc.Buffer("bytes"))
    assert.equal(3, ch.port2:pending())
  end)

  it("drops as port:receive takes them", function()
    local ch = mc.MessageChannel()
    for i = 1, 3 do ch.port1:postMessage(i) end
    assert.equal(3, ch.port2:pending())
    ch.port2:receive(0)
    assert.equal(2, ch.port2:pending())
    ch.port2:receive()
    assert.equal(1, ch.port2:pending())
    ch.port2:receive(0)
    assert.equal(0, ch.port2:pending())
  end)

  it("drops as mc.receive takes them, at the port they came through", function()
    local a, b = two()
    b.port1:postMessage("b1")
    a.port1:postMessage("a1")
    b.port1:postMessage("b2")
    assert.equal(1, a.port2:pending())
    assert.equal(2, b.port2:pending())
    mc.receive({ a.port2, b.port2 }, 0)
    assert.equal(1, a.port2:pending())
    assert.equal(1, b.port2:pending())
    mc.receive({ a.port2, b.port2 }, 0)
    assert.equal(0, a.port2:pending())
    assert.equal(1, b.port2:pending())
    mc.receive({ a.port2, b.port2 }, 0)
    assert.equal(0, b.port2:pending())
  end)

  it("drops as dispatch takes them: the listener sees the rest", function()
    local ch = mc.MessageChannel()
    local seen = {}
    for i = 1, 3 do ch.port1:postMessage(i) end
    ch.port2.onmessage = function(e)
      seen[#seen + 1] = e.data .. ":" .. ch.port2:pending()
    end
    assert.equal(3, ch.port2:pending())
    run()
    assert.same({ "1:2", "2:1", "3:0" }, seen)
    assert.equal(0, ch.port2:pending())
    assert.same({}, errors)
  end)

  it("does not count a message handed to a waiting receive", function()
    local a, b = two()
    local single, many
    mc.spawn(function() single = a.port2:receive() end)
    mc.spawn(function() many = mc.receive({ a.port2, b.port2 }) end)
    mc.step()
    a.port1:postMessage("to the single")
    b.port1:postMessage("to the many")
    run()
    assert.equal("to the single", single.data)
    assert.equal("to the many", many.data)
    assert.equal(0, a.port2:pending())
    assert.equal(0, b.port2:pending())
  end)

  it("counts the messages queued before a close, and 0 once they are taken", function()
    local a, b = two()
    a.port1:postMessage(1)
    a.port1:postMessage(2)
    a.port1:close()
    b.port1:postMessage(3)
    b.port2:close()
    run()
    assert.equal(2, a.port2:pending())
    assert.equal(1, b.port2:pending())
    assert.equal(0, a.port1:pending())
    a.port2:receive()
    assert.equal(1, a.port2:pending())
    a.port2:receive()
    assert.equal(0, a.port2:pending())
    mc.receive({ b.port2 })
    assert.equal(0, b.port2:pending())
    is_nil_why(pack(mc.receive({ a.port2, b.port2 })), "closed")
    assert.equal(0, a.port2:pending())
  end)

  it("is 0 after the port is transferred away; the moved port counts them", function()
    local ch, carrier = mc.MessageChannel(), mc.MessageChannel()
    ch.port1:postMessage("x")
    ch.port1:postMessage("y")
    assert.equal(2, ch.port2:pending())
    carrier.port1:postMessage(nil, { ch.port2 })
    assert.equal(0, ch.port2:pending())
    local moved = carrier.port2:receive(0).ports[1]
    assert.equal(2, moved:pending())
    ch.port1:postMessage("z")
    assert.equal(3, moved:pending())
    assert.equal(0, ch.port2:pending())
    assert.equal("x", moved:receive(0).data)
    assert.equal(2, moved:pending())
  end)

  it("raises a bad argument error when called on something that is not a port", function()
    local p = mc.MessageChannel().port1
    raises("bad argument #1", p.pending, 5)
    raises("bad argument #1", p.pending, {})
    raises("bad argument #1", p.pending)
  end)
end)

describe("mc.receive across threads #threads", function()
  local errors, catch, release = helper.error_hooks(5)
  local workers, records = {}, {}
  before_each(catch)
  after_each(function()
    helper.terminate_all(workers)
    for i = #records, 1, -1 do records[i] = nil end
    release()
  end)

  -- A worker on `body`, with `port` moved to it as mc.workerData.port
  -- (and `extra`, when given, as mc.workerData.extra); its record.
  local function worker_with(body, port, extra)
    local rec = helper.record_worker(workers, body,
      { data = { port = port, extra = extra },
        transfer = extra and { port, extra } or { port } })
    records[#records + 1] = rec
    return rec
  end

  -- ev, why as a receive returned them when ev is an event; else fails
  -- with both (nil, "closed" or "timeout") and what the spec's workers
  -- logged by then (their errors and exits), where indexing the nil
  -- would tell neither.
  local function received(ev, why)
    if type(ev) ~= "table" then
      local logs = {}
      for i, rec in ipairs(records) do
        logs[i] = ("worker %d: %s"):format(i, #rec.log > 0
                                           and table.concat(rec.log, ", ")
                                           or "nothing logged")
      end
      error(("no message: %s, %s; %s"):format(tostring(ev), tostring(why),
                                              table.concat(logs, "; ")), 2)
    end
    return ev, why
  end

  it("waits on ports of two workers until both close, order kept, nothing lost", function()
    local N = 200
    local body = ([[
      local port = mc.workerData.port
      for i = 1, %d do port:postMessage(i) end
      port:close()
    ]]):format(N)
    local a, b = two()
    local ra = worker_with(body, a.port1)
    local rb = worker_with(body, b.port1)
    local got = { [a.port2] = {}, [b.port2] = {} }
    local total, res = 0
    repeat
      res = pack(mc.receive({ a.port2, b.port2 }, TIMEOUT))
      if res[1] then
        assert.is_true(rawequal(res[1].target, res[2]))
        local list = got[res[2]]
        list[#list + 1] = res[1].data
        total = total + 1
      end
    until not res[1] or total > 2 * N
    is_nil_why(res, "closed")
    local want = {}
    for i = 1, N do want[i] = i end
    assert.same(want, got[a.port2])
    assert.same(want, got[b.port2])
    run()
    assert.equal(0, ra.code)
    assert.equal(0, rb.code)
    assert.same({}, errors)
  end)

  it("inside a task waits on worker ports until both workers end", function()
    local N = 50
    local body = ([[
      local port = mc.workerData.port
      for i = 1, %d do port:postMessage(i) end
    ]]):format(N)   -- the worker's end closes its port
    local a, b = two()
    worker_with(body, a.port1)
    worker_with(body, b.port1)
    local got, final = { [a.port2] = {}, [b.port2] = {} }, nil
    mc.spawn(function()
      while true do
        local r = pack(mc.receive({ a.port2, b.port2 }))
        if not r[1] then
          final = r
          return
        end
        local list = got[r[2]]
        list[#list + 1] = r[1].data
      end
    end)
    run()
    is_nil_why(final, "closed")
    local want = {}
    for i = 1, N do want[i] = i end
    assert.same(want, got[a.port2])
    assert.same(want, got[b.port2])
    assert.same({}, errors)
  end)

  it("takes the message that arrived here first, from whichever worker", function()
    -- Each worker posts one message on its port, then says so on its
    -- signal port; the second worker posts only when told to.
    local a, b = two()
    local sa, sb = mc.MessageChannel(), mc.MessageChannel()
    worker_with([[
      mc.workerData.port:postMessage("first, from worker a")
      mc.workerData.extra:postMessage("posted")
    ]], a.port1, sa.port1)
    worker_with([[
      local signal = mc.workerData.extra
      signal:receive()
      mc.workerData.port:postMessage("second, from worker b")
      signal:postMessage("posted")
    ]], b.port1, sb.port1)
    assert.equal("posted", received(sa.port2:receive(TIMEOUT)).data)
    sb.port2:postMessage("go")
    assert.equal("posted", received(sb.port2:receive(TIMEOUT)).data)
    assert.equal(1, a.port2:pending())
    assert.equal(1, b.port2:pending())
    local ev, from = received(mc.receive({ b.port2, a.port2 }, 0))
    is_message(ev, from, "first, from worker a", a.port2)
    ev, from = received(mc.receive({ b.port2, a.port2 }, 0))
    is_message(ev, from, "second, from worker b", b.port2)
    run()
    assert.same({}, errors)
  end)

  it("outside a task is woken by a worker's post while the other port stays quiet", function()
    local a, b = two()
    local rec = worker_with([[
      mc.workerData.port:postMessage("from the worker")
    ]], b.port1)
    local ev, from = received(mc.receive({ a.port2, b.port2 }, TIMEOUT))
    is_message(ev, from, "from the worker", b.port2)
    run()
    assert.equal(0, rec.code)
  end)

  describe("a message that cannot be decoded here", function()
    -- The worker registers a metatable that this thread does not know,
    -- posts a table with it, then a good message.
    local body = [[
      local mt = {}
      mc.register("spec.receive-many: known only in a worker", mt)
      local port, signal = mc.workerData.port, mc.workerData.extra
      if signal then signal:receive() end
      port:postMessage(setmetatable({ x = 1 }, mt))
      port:postMessage("good")
      if signal then signal:postMessage("posted") end
    ]]

    local function record_errors(port)
      local got = {}
      port.onmessageerror = function(e)
        got[#got + 1] = { type = e.type, data_nil = e.data == nil,
                          clone_error = has(e.error, "DataCloneError:"),
                          target = rawequal(e.target, port) }
      end
      return got
    end

    local want = { { type = "messageerror", data_nil = true, clone_error = true,
                     target = true } }

    it("already queued: is dispatched as messageerror and the next good one is returned",
      function()
        local a, b = two()
        local signal = mc.MessageChannel()
        local rec = worker_with(body, b.port1, signal.port1)
        local got = record_errors(b.port2)
        signal.port2:postMessage("go")
        assert.equal("posted", received(signal.port2:receive(TIMEOUT)).data)
        assert.equal(2, b.port2:pending())
        local ev, from = received(mc.receive({ a.port2, b.port2 }, 0))
        is_message(ev, from, "good", b.port2)
        run()
        assert.same(want, got)
        assert.equal(0, b.port2:pending())
        assert.equal(0, rec.code)
        assert.same({}, errors)
      end)

    it("arriving while a task waits: is dispatched as messageerror, the wait goes on",
      function()
        local a, b = two()
        local signal = mc.MessageChannel()
        local got = record_errors(b.port2)
        local res
        mc.spawn(function() res = pack(mc.receive({ a.port2, b.port2 })) end)
        mc.step()
        local rec = worker_with(body, b.port1, signal.port1)
        signal.port2:postMessage("go")
        run()
        local ev, from = received(res and res[1], res and res[2])
        is_message(ev, from, "good", b.port2)
        assert.same(want, got)
        assert.equal(0, rec.code)
        assert.same({}, errors)
      end)

    it("arriving while waiting outside a task: the same", function()
      local a, b = two()
      local got = record_errors(b.port2)
      local rec = worker_with(body, b.port1)
      local ev, from = received(mc.receive({ a.port2, b.port2 }, TIMEOUT))
      is_message(ev, from, "good", b.port2)
      run()
      assert.same(want, got)
      assert.equal(0, rec.code)
      assert.same({}, errors)
    end)
  end)
end)
