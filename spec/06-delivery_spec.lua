-- Delivery rules in one Lua state (API.md section 3): asynchronous dispatch
-- in post order, started ports and listeners, the message event, close,
-- messageerror and fairness of the scheduler under an endless chain.

local mc = require "messagechannel"
local helper = require "spec.helper"

local has = helper.has

local run = helper.run

-- A listener that appends tag (or the event's data) to log; with both, it
-- appends "tag:data".
local function logger(log, tag)
  return function(e)
    if tag == nil then
      log[#log + 1] = e.data
    elseif e.data ~= nil then
      log[#log + 1] = tag .. ":" .. tostring(e.data)
    else
      log[#log + 1] = tag
    end
  end
end


describe("delivery", function()
  local errors, catch, release = helper.error_hooks(2)
  before_each(catch)
  after_each(release)

  describe("asynchrony", function()
    it("postMessage never runs a listener, even at a started port", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = logger(got)
      ch.port2:addEventListener("message", logger(got))
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      assert.same({}, got)
      run()
      assert.same({ 1, 1, 2, 2 }, got)
    end)

    it("dispatches nothing until the scheduler runs", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = logger(got)
      ch.port1:postMessage("x")
      collectgarbage()
      ch.port2:dispatchEvent({ type = "other" })
      assert.is_true(ch.port1:postMessage("y"))
      assert.same({}, got)
      mc.step()
      assert.same({ "x", "y" }, got)
    end)

    it("does not run the partner's listener inside a listener that posts", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port1.onmessage = function(e) log[#log + 1] = "port1 got " .. e.data end
      ch.port2.onmessage = function(e)
        log[#log + 1] = "port2 got " .. e.data
        ch.port2:postMessage("reply")
        log[#log + 1] = "port2 posted"
      end
      ch.port1:postMessage("hello")
      run()
      assert.same({ "port2 got hello", "port2 posted", "port1 got reply" }, log)
    end)

    it("runs each message as its own task: a blocked listener holds up no other", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = e.data .. " start"
        if e.data == "slow" then mc.sleep(0.02) end
        log[#log + 1] = e.data .. " end"
      end
      ch.port1:postMessage("slow")
      ch.port1:postMessage("fast")
      run()
      assert.same({ "slow start", "fast start", "fast end", "slow end" }, log)
    end)
  end)

  describe("order", function()
    it("delivers the messages to one port in the order posted", function()
      local ch = mc.MessageChannel()
      local got, want = {}, {}
      ch.port2.onmessage = logger(got)
      for i = 1, 200 do
        ch.port1:postMessage(i)
        want[i] = i
      end
      run()
      assert.same(want, got)
    end)

    it("delivers the messages to several started ports in global post order", function()
      local a, b, c = mc.MessageChannel(), mc.MessageChannel(), mc.MessageChannel()
      local got = {}
      a.port2.onmessage = logger(got, "a")
      b.port2.onmessage = logger(got, "b")
      c.port2:addEventListener("message", logger(got, "c"))
      c.port2:start()
      local plan = { a, b, a, c, c, b, a, c, b, b }
      local names = { [a] = "a", [b] = "b", [c] = "c" }
      local want = {}
      for i, ch in ipairs(plan) do
        ch.port1:postMessage(i)
        want[i] = names[ch] .. ":" .. i
      end
      run()
      assert.same(want, got)
    end)

    it("keeps global post order across both directions of a channel", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port1.onmessage = logger(got, "port1")
      ch.port2.onmessage = logger(got, "port2")
      ch.port1:postMessage(1)
      ch.port2:postMessage(2)
      ch.port2:postMessage(3)
      ch.port1:postMessage(4)
      run()
      assert.same({ "port2:1", "port1:2", "port1:3", "port2:4" }, got)
    end)

    it("lets a late-started port join with its held messages when it starts", function()
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      local got = {}
      a.port2.onmessage = logger(got, "a")
      b.port2:addEventListener("message", logger(got, "b"))
      b.port1:postMessage(1)
      a.port1:postMessage(2)
      b.port1:postMessage(3)
      b.port2:start()
      a.port1:postMessage(4)
      b.port1:postMessage(5)
      run()
      assert.same({ "a:2", "b:1", "b:3", "a:4", "b:5" }, got)
    end)
  end)

  describe("started ports and listeners", function()
    it("do not dispatch after addEventListener alone, nor drop anything", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:addEventListener("message", logger(got))
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      run()
      assert.same({}, got)
      ch.port2:start()
      run()
      assert.same({ 1, 2 }, got)
    end)

    it("hold the messages of a started port with no message listener", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:start()
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      run()
      ch.port2:addEventListener("message", logger(got))
      run()
      assert.same({ 1, 2 }, got)
    end)

    it("hold messages while only other event types have listeners", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:start()
      ch.port2.onmessageerror = logger(got, "messageerror")
      ch.port2.onclose = logger(got, "close")
      ch.port2:addEventListener("ping", logger(got, "ping"))
      ch.port1:postMessage(1)
      run()
      assert.same({}, got)
      ch.port2.onmessage = logger(got)
      run()
      assert.same({ 1 }, got)
    end)

    it("hold the rest after a once listener, until a new listener arrives", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:addEventListener("message", logger(got), { once = true })
      ch.port2:start()
      for i = 1, 3 do ch.port1:postMessage(i) end
      run()
      assert.same({ 1 }, got)
      ch.port2:addEventListener("message", logger(got))
      run()
      assert.same({ 1, 2, 3 }, got)
    end)

    it("hold messages after onmessage is set to nil, until it is set again", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = logger(got)
      ch.port1:postMessage(1)
      run()
      ch.port2.onmessage = nil
      ch.port1:postMessage(2)
      ch.port1:postMessage(3)
      run()
      assert.same({ 1 }, got)
      ch.port2.onmessage = logger(got)
      run()
      assert.same({ 1, 2, 3 }, got)
    end)
  end)

  describe("the message event", function()
    it("has the fields and methods of section 3.3", function()
      local ch = mc.MessageChannel()
      local ev
      ch.port2.onmessage = function(e) ev = e end
      ch.port1:postMessage({ x = 1 })
      run()
      assert.is_table(ev)
      assert.equal("message", ev.type)
      assert.same({ x = 1 }, ev.data)
      assert.is_table(ev.ports)
      assert.is_nil(next(ev.ports))
      assert.is_true(rawequal(ch.port2, ev.target))
      assert.is_true(rawequal(ch.port2, ev.currentTarget))
      assert.equal("", ev.origin)
      assert.equal("", ev.lastEventId)
      assert.is_nil(ev.source)
      assert.is_false(ev.defaultPrevented)
      assert.is_function(ev.preventDefault)
      assert.is_function(ev.stopImmediatePropagation)
    end)

    it("is one table for all the listeners of a message", function()
      local ch = mc.MessageChannel()
      local seen = {}
      ch.port2:addEventListener("message", function(e) seen[#seen + 1] = e end)
      ch.port2:addEventListener("message", { handleEvent = function(_, e) seen[#seen + 1] = e end })
      ch.port2.onmessage = function(e) seen[#seen + 1] = e end
      ch.port1:postMessage("x")
      run()
      assert.equal(3, #seen)
      assert.is_true(rawequal(seen[1], seen[2]))
      assert.is_true(rawequal(seen[1], seen[3]))
    end)

    it("is a new table, with a new ports table, for every message", function()
      local ch = mc.MessageChannel()
      local seen = {}
      ch.port2.onmessage = function(e) seen[#seen + 1] = e end
      ch.port1:postMessage(1)
      ch.port1:postMessage(1)
      run()
      assert.equal(2, #seen)
      assert.is_false(rawequal(seen[1], seen[2]))
      assert.is_false(rawequal(seen[1].ports, seen[2].ports))
    end)

    it("lets preventDefault set defaultPrevented for the later listeners", function()
      local ch = mc.MessageChannel()
      local seen = {}
      ch.port2:addEventListener("message", function(e) e:preventDefault() end)
      ch.port2.onmessage = function(e) seen[#seen + 1] = e.defaultPrevented end
      ch.port1:postMessage(1)
      run()
      assert.same({ true }, seen)
    end)

    it("skips the later listeners after stopImmediatePropagation, for that message only", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:addEventListener("message", function(e)
        got[#got + 1] = "first:" .. e.data
        if e.data == "stop" then e:stopImmediatePropagation() end
      end)
      ch.port2.onmessage = logger(got, "second")
      ch.port1:postMessage("stop")
      ch.port1:postMessage("go")
      run()
      assert.same({ "first:stop", "first:go", "second:go" }, got)
    end)

    it("is what receive() returns too", function()
      local ch = mc.MessageChannel()
      ch.port1:postMessage("pulled")
      local ev = ch.port2:receive(0)
      assert.equal("message", ev.type)
      assert.equal("pulled", ev.data)
      assert.same({}, ev.ports)
      assert.is_true(rawequal(ch.port2, ev.target))
      assert.is_true(rawequal(ch.port2, ev.currentTarget))
      assert.equal("", ev.origin)
      assert.equal("", ev.lastEventId)
      assert.is_false(ev.defaultPrevented)
    end)
  end)

  describe("close", function()
    it("dispatches close at both ports, the partner first, without start", function()
      for _, closer in ipairs({ "port1", "port2" }) do
        local ch = mc.MessageChannel()
        local got = {}
        ch.port1:addEventListener("close", logger(got, "port1"))
        ch.port2:addEventListener("close", logger(got, "port2"))
        ch[closer]:close()
        assert.same({}, got)
        run()
        local partner = closer == "port1" and "port2" or "port1"
        assert.same({ partner, closer }, got)
      end
    end)

    it("gives the close event its type, target and currentTarget, and no data", function()
      local ch = mc.MessageChannel()
      local seen = {}
      ch.port1.onclose = function(e) seen.port1 = e end
      ch.port2.onclose = function(e) seen.port2 = e end
      ch.port2:close()
      run()
      for name, ev in pairs(seen) do
        assert.equal("close", ev.type)
        assert.is_true(rawequal(ch[name], ev.target))
        assert.is_true(rawequal(ch[name], ev.currentTarget))
        assert.is_nil(ev.data)
      end
      assert.is_table(seen.port1)
      assert.is_table(seen.port2)
    end)

    it("comes after the messages queued at each port, the partner's first", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port1.onmessage = logger(got, "port1")
      ch.port2.onmessage = logger(got, "port2")
      ch.port1.onclose = logger(got, "port1 close")
      ch.port2.onclose = logger(got, "port2 close")
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      ch.port1:close()
      run()
      assert.same({ "port2:1", "port2:2", "port2 close", "port1 close" }, got)
    end)

    it("still delivers the messages queued at the port that closed", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = logger(got, "port2")
      ch.port2.onclose = logger(got, "port2 close")
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      ch.port2:close()
      run()
      assert.same({ "port2:1", "port2:2", "port2 close" }, got)
    end)

    it("comes after the messages queued before a listener closed its own port", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = function(e)
        got[#got + 1] = e.data
        if e.data == 1 then ch.port2:close() end
      end
      ch.port2.onclose = logger(got, "close")
      for i = 1, 3 do ch.port1:postMessage(i) end
      run()
      assert.same({ 1, 2, 3, "close" }, got)
    end)

    it("waits behind messages held at a port that is not started", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port1.onclose = logger(got, "port1 close")
      ch.port2:addEventListener("message", logger(got, "port2"))
      ch.port2:addEventListener("close", logger(got, "port2 close"))
      ch.port1:postMessage(1)
      ch.port1:close()
      run()
      for _, entry in ipairs(got) do
        assert.is_false(entry:find("^port2") ~= nil, entry)
      end
      ch.port2:start()
      run()
      local at2 = {}
      for _, entry in ipairs(got) do
        if entry:find("^port2") then at2[#at2 + 1] = entry end
      end
      assert.same({ "port2:1", "port2 close" }, at2)
      assert.truthy(has(table.concat(got, ","), "port1 close"))
    end)

    it("waits behind messages held for want of a message listener", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:start()
      ch.port2.onclose = logger(got, "close")
      ch.port1:postMessage(1)
      ch.port1:close()
      run()
      assert.same({}, got)
      ch.port2:addEventListener("message", logger(got, "message"))
      run()
      assert.same({ "message:1", "close" }, got)
    end)

    it("makes receive return the queued messages, then nil, 'closed'", function()
      local ch = mc.MessageChannel()
      ch.port1:postMessage("a")
      ch.port1:postMessage("b")
      ch.port1:close()
      assert.equal("a", ch.port2:receive().data)
      assert.equal("b", ch.port2:receive(0).data)
      for _ = 1, 2 do
        local ev, why = ch.port2:receive()
        assert.is_nil(ev)
        assert.equal("closed", why)
        ev, why = ch.port1:receive(0)
        assert.is_nil(ev)
        assert.equal("closed", why)
      end
    end)

    it("is still dispatched after receive() took the messages queued before it", function()
      local ch = mc.MessageChannel()
      local closes = 0
      ch.port2.onclose = function() closes = closes + 1 end
      ch.port1:postMessage("last")
      ch.port1:close()
      assert.equal("last", ch.port2:receive().data)
      run()
      assert.equal(1, closes)
    end)

    it("is still dispatched after receive() returned nil, 'closed'", function()
      for _, queued in ipairs({ false, true }) do
        local ch = mc.MessageChannel()
        local closes = 0
        ch.port2.onclose = function() closes = closes + 1 end
        if queued then ch.port1:postMessage("last") end
        ch.port1:close()
        if queued then assert.equal("last", ch.port2:receive().data) end
        local ev, why = ch.port2:receive()
        assert.is_nil(ev)
        assert.equal("closed", why)
        run()
        assert.equal(1, closes, queued and "with a message queued" or "with none")
      end
    end)

    it("makes postMessage return false on both ports, and nothing more arrives", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port1.onmessage = logger(got, "port1")
      ch.port2.onmessage = logger(got, "port2")
      ch.port2.onclose = function()
        got[#got + 1] = "port2 close"
        got[#got + 1] = tostring(ch.port2:postMessage("from close"))
      end
      ch.port1:close()
      assert.is_false(ch.port1:postMessage("late"))
      assert.is_false(ch.port2:postMessage("late"))
      run()
      assert.same({ "port2 close", "false" }, got)
    end)
  end)

  describe("errors in listeners", function()
    it("dispatch messageerror with the error and the data when a listener raises", function()
      local ch = mc.MessageChannel()
      local ev
      ch.port2.onmessage = function(e) error("bad " .. e.data.name, 0) end
      ch.port2.onmessageerror = function(e) ev = e end
      ch.port1:postMessage({ name = "input" })
      run()
      assert.is_table(ev)
      assert.equal("messageerror", ev.type)
      assert.equal("bad input", ev.error)
      assert.same({ name = "input" }, ev.data)
      assert.is_true(rawequal(ch.port2, ev.target))
      assert.same({}, errors)
    end)

    it("keep the raised value itself as event.error", function()
      local ch = mc.MessageChannel()
      local raised = { code = 42 }
      local got
      ch.port2.onmessage = function() error(raised) end
      ch.port2:addEventListener("messageerror", function(e) got = e.error end)
      ch.port1:postMessage(1)
      run()
      assert.is_true(rawequal(raised, got))
    end)

    it("still run the remaining listeners of that message", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:addEventListener("message", logger(got, "first"))
      ch.port2:addEventListener("message", function() error("second fails", 0) end)
      ch.port2:addEventListener("message", logger(got, "third"))
      ch.port2.onmessageerror = logger(got, "messageerror")
      ch.port2:start()
      ch.port1:postMessage(1)
      run()
      assert.same({ "first:1", "third:1", "messageerror:1" }, got)
    end)

    it("still deliver the next message, after the messageerror", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = function(e)
        got[#got + 1] = "message:" .. e.data
        if e.data == 1 then error("first fails", 0) end
      end
      ch.port2.onmessageerror = logger(got, "messageerror")
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      run()
      assert.same({ "message:1", "messageerror:1", "message:2" }, got)
    end)

    it("dispatch messageerror for a listener that blocked, then raised", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = function()
        mc.sleep(0.01)
        error("late failure", 0)
      end
      ch.port2.onmessageerror = function(e) got[#got + 1] = e.error .. ":" .. e.data end
      ch.port1:postMessage("data")
      run()
      assert.same({ "late failure:data" }, got)
      assert.same({}, errors)
    end)

    it("go to mc.onerror with a traceback when there is no messageerror listener", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = function(e)
        got[#got + 1] = e.data
        if e.data == 1 then error("nobody takes this", 0) end
      end
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      run()
      assert.same({ 1, 2 }, got)
      assert.equal(1, #errors)
      assert.equal("nobody takes this", errors[1].err)
      assert.is_string(errors[1].traceback)
    end)

    it("do not reach mc.onerror when a messageerror listener takes them", function()
      local ch = mc.MessageChannel()
      local taken = 0
      ch.port2.onmessage = function() error("taken", 0) end
      ch.port2.onmessageerror = function() taken = taken + 1 end
      ch.port1:postMessage(1)
      run()
      assert.equal(1, taken)
      assert.same({}, errors)
    end)

    it("raised by a messageerror listener go to mc.onerror", function()
      local ch = mc.MessageChannel()
      ch.port2.onmessage = function() error("in message", 0) end
      ch.port2.onmessageerror = function() error("in messageerror", 0) end
      ch.port1:postMessage(1)
      run()
      assert.equal(1, #errors)
      assert.equal("in messageerror", errors[1].err)
    end)

    it("raised by a close listener go to mc.onerror, and the other close listeners run", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:addEventListener("close", function() error("in close", 0) end)
      ch.port2:addEventListener("close", logger(got, "close"))
      ch.port2.onmessageerror = logger(got, "messageerror")
      ch.port1:close()
      run()
      assert.same({ "close" }, got)
      assert.equal(1, #errors)
      assert.equal("in close", errors[1].err)
    end)

    it("raised by a dispatchEvent listener go to mc.onerror, not messageerror", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = function() error("in dispatchEvent", 0) end
      ch.port2.onmessageerror = logger(got, "messageerror")
      ch.port2:dispatchEvent({ type = "message" })
      run()
      assert.same({}, got)
      assert.equal(1, #errors)
      assert.equal("in dispatchEvent", errors[1].err)
    end)
  end)

  describe("fairness", function()
    -- port2 answers every message of port1 and port1 every answer, until
    -- limit messages went by: an endless chain for the scheduler.
    local function ping_pong(limit)
      local ch = mc.MessageChannel()
      local state = { n = 0 }
      local function bounce(port)
        return function(e)
          state.n = state.n + 1
          if state.n < limit then port:postMessage(e.data + 1) end
        end
      end
      ch.port1.onmessage = bounce(ch.port1)
      ch.port2.onmessage = bounce(ch.port2)
      ch.port1:postMessage(0)
      state.channel = ch
      return state
    end

    it("runs one link of the chain per step: only the tasks ready when it began", function()
      local chain = ping_pong(1000)
      for i = 1, 10 do
        assert.is_true(mc.step())
        assert.equal(i, chain.n)
      end
      chain.channel.port1:close()
    end)

    it("lets another port's message through", function()
      local chain = ping_pong(100000)
      local other = mc.MessageChannel()
      local got = {}
      other.port2.onmessage = logger(got)
      for _ = 1, 5 do mc.step() end
      other.port1:postMessage("through")
      mc.step()
      assert.same({ "through" }, got)
      assert.is_true(chain.n < 100000)
      chain.channel.port1:close()
    end)

    it("lets a spawned task run", function()
      local chain = ping_pong(100000)
      for _ = 1, 5 do mc.step() end
      local ran = false
      mc.spawn(function() ran = true end)
      mc.step()
      assert.is_true(ran)
      assert.is_true(chain.n < 100000)
      chain.channel.port1:close()
    end)

    it("lets a sleeping task wake", function()
      local limit = 200000
      local chain = ping_pong(limit)
      local woke_at
      mc.spawn(function()
        mc.sleep(0.01)
        woke_at = chain.n
      end)
      local steps = 0
      while woke_at == nil and chain.n < limit and steps < 10 * limit do
        mc.step()
        steps = steps + 1
      end
      assert.is_number(woke_at)
      assert.is_true(woke_at < limit)
      chain.channel.port1:close()
    end)
  end)
end)
