-- The delivery rules of API.md sections 2 and 3 (asynchronous dispatch in
-- post order, started ports and listeners, the message event, close after
-- the queued messages, messageerror, lifetime), with receive and the
-- scheduler of section 6 and pending() of section 11, re-run over a remote
-- port (section 12: "every rule of sections 2-3 and 6 holds for it")
-- whose partner is in another process: the echo peer of
-- spec/remote/peer.lua, which posts back what it gets and obeys the
-- commands listed in its header (burst, close, registered, say, ...).
--
-- Messages arrive from the network thread whether or not the scheduler
-- runs, so "arrived but not dispatched" is observed with pending() while
-- this state waits outside the scheduler (socket.sleep). Every other wait
-- is for an event under a generous bound; nothing asserts speed.

local mc = require "messagechannel"
local helper = require "spec.helper"
local R = require "spec.remote.helper"
local socket = require "socket"

local has = helper.has

local made = {}

local function track(p)
  made[#made + 1] = p
  return p
end

-- A port linked to a new echo peer process; and the peer.
local function echo_pair(...)
  local peer, address = R.listening_peer(R.unix_address(), ...)
  return track(mc.connect(address)), peer, address
end

-- Waits, without running the scheduler, until port holds n messages.
local function arrived(port, n)
  local deadline = socket.gettime() + R.WAIT
  while port:pending() < n do
    if socket.gettime() > deadline then
      error(("only %d of %d messages arrived"):format(port:pending(), n), 2)
    end
    socket.sleep(0.005)
  end
end

-- A listener that appends tag (or the event's data) to log; with both,
-- "tag:data".
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

local function range(n, prefix)
  local t = {}
  for i = 1, n do t[i] = prefix and prefix .. ":" .. i or i end
  return t
end

local function is_closed(port)
  return tostring(port) == "MessagePort (closed)"
end

describe("delivery over a remote port (API.md 2-3 and 12)", function()
  local errors = R.specs(2, before_each, after_each, made)

  describe("asynchrony", function()
    it("dispatches a message that arrived only when the scheduler runs",
       function()
      local p = echo_pair()
      local got = {}
      p.onmessage = logger(got)
      assert.is_true(p:postMessage("x"))
      assert.is_true(p:postMessage("y"))
      arrived(p, 2)
      collectgarbage()
      p:dispatchEvent({ type = "other" })
      assert.same({}, got)
      mc.step()
      assert.same({ "x", "y" }, got)
    end)

    it("does not run the listener inside a listener that posts", function()
      local p = echo_pair()
      local log = {}
      p.onmessage = function(e)
        log[#log + 1] = "got " .. e.data
        if e.data == "hello" then
          p:postMessage("reply")
          log[#log + 1] = "posted"
        end
      end
      p:postMessage("hello")
      R.await("the echo of the reply", function() return #log == 3 end)
      assert.same({ "got hello", "posted", "got reply" }, log)
    end)

    it("runs each message as its own task: a listener that sleeps holds up "
       .. "no other port", function()
      local p1, p2 = echo_pair(), echo_pair()
      local log = {}
      p1.onmessage = function(e)
        log[#log + 1] = e.data .. " start"
        mc.sleep(0.2)
        log[#log + 1] = e.data .. " end"
      end
      p2.onmessage = function(e) log[#log + 1] = e.data end
      p1:postMessage("slow")
      arrived(p1, 1)
      p2:postMessage("fast")
      arrived(p2, 1)
      R.await("both", function() return #log == 3 end)
      assert.same({ "slow start", "fast", "slow end" }, log)
    end)

    it("an endless exchange with the peer starves no timer", function()
      local p = echo_pair()
      local fired, n = false, 0
      p.onmessage = function(e)
        n = n + 1
        if not fired then p:postMessage(e.data + 1) end
      end
      mc.spawn(function()
        mc.sleep(0.2)
        fired = true
      end)
      p:postMessage(1)
      R.await("the timer", function() return fired end)
      assert.is_true(n > 0)
    end)
  end)

  describe("order", function()
    it("delivers a peer's messages in the order it posted them", function()
      local p = echo_pair()
      local got = {}
      p.onmessage = function(e) got[#got + 1] = e.data.i end
      p:postMessage({ cmd = "burst", n = 1000 })
      R.await("1000 messages", function() return #got == 1000 end)
      assert.same(range(1000), got)
    end)

    it("keeps the order of echoes of interleaved posts", function()
      local p = echo_pair()
      local got = {}
      p.onmessage = logger(got)
      local want = {}
      for i = 1, 100 do
        p:postMessage("m" .. i)
        want[i] = "m" .. i
        if i % 10 == 0 then mc.step() end
      end
      R.await("100 echoes", function() return #got == 100 end)
      assert.same(want, got)
    end)

    it("lets a late-started port join with its held messages when it starts",
       function()
      local p = echo_pair()
      local got = {}
      p:addEventListener("message", logger(got))
      for i = 1, 5 do p:postMessage(i) end
      arrived(p, 5)
      assert.is_true(mc.run(R.WAIT))  -- not started: nothing dispatched
      assert.same({}, got)
      assert.equal(5, p:pending())
      p:start()
      p:postMessage(6)
      R.await("6 messages", function() return #got == 6 end)
      assert.same(range(6), got)
    end)

    it("delivers the echoes of two remote ports each in its own order",
       function()
      local a, b = echo_pair(), echo_pair()
      local got = { a = {}, b = {} }
      a.onmessage = logger(got.a)
      b.onmessage = logger(got.b)
      for i = 1, 50 do
        a:postMessage(i)
        b:postMessage(-i)
      end
      R.await("100 echoes", function() return #got.a + #got.b == 100 end)
      assert.same(range(50), got.a)
      for i = 1, 50 do assert.equal(-i, got.b[i]) end
    end)
  end)

  describe("started ports and listeners", function()
    it("do not dispatch after addEventListener alone, nor drop anything",
       function()
      local p = echo_pair()
      local got = {}
      p:addEventListener("message", logger(got))
      p:postMessage(1)
      p:postMessage(2)
      arrived(p, 2)
      mc.step()
      assert.same({}, got)
      p:start()
      p:start()  -- idempotent
      R.await("two", function() return #got == 2 end)
      assert.same({ 1, 2 }, got)
    end)

    it("hold the messages of a started port with no message listener",
       function()
      local p = echo_pair()
      local got = {}
      p:start()
      p.onclose = logger(got, "close")
      p.onmessageerror = logger(got, "messageerror")
      p:postMessage(1)
      p:postMessage(2)
      arrived(p, 2)
      mc.step()
      mc.step()
      assert.same({}, got)
      assert.equal(2, p:pending())
      p:addEventListener("message", logger(got))
      R.await("two", function() return #got == 2 end)
      assert.same({ 1, 2 }, got)
    end)

    it("hold the rest after a once listener, until a new listener arrives",
       function()
      local p = echo_pair()
      local got = {}
      p:addEventListener("message", logger(got), { once = true })
      p:start()
      for i = 1, 3 do p:postMessage(i) end
      arrived(p, 3)
      R.await("the first", function() return #got == 1 end)
      mc.step()
      assert.same({ 1 }, got)
      assert.equal(2, p:pending())
      p:addEventListener("message", logger(got))
      R.await("all three", function() return #got == 3 end)
      assert.same({ 1, 2, 3 }, got)
    end)

    it("starts the port when onmessage is set to a function", function()
      local p = echo_pair()
      local got = {}
      p:postMessage("a")
      arrived(p, 1)
      p.onmessage = logger(got)
      R.await("the message", function() return #got == 1 end)
      assert.same({ "a" }, got)
    end)

    it("runs listeners in registration order; onmessage keeps its place",
       function()
      local p = echo_pair()
      local log = {}
      p:addEventListener("message", logger(log, "first"))
      p.onmessage = logger(log, "on")
      local third = logger(log, "third")
      p:addEventListener("message", third)
      p:addEventListener("message", third)  -- twice: no effect
      p.onmessage = logger(log, "on2")      -- replaced: same place
      p:postMessage(1)
      R.await("three calls", function() return #log == 3 end)
      assert.same({ "first:1", "on2:1", "third:1" }, log)
      p:removeEventListener("message", third)
      p.onmessage = nil
      p.onmessage = logger(log, "last")    -- set again: appended
      p:addEventListener("message", logger(log, "after"))
      p:postMessage(2)
      R.await("more calls", function() return #log == 6 end)
      assert.same({ "first:1", "on2:1", "third:1", "first:2", "last:2",
                    "after:2" }, log)
    end)

    it("calls a table listener's handleEvent and a callable table", function()
      local p = echo_pair()
      local log = {}
      local obj = { handleEvent = function(self, e)
        log[#log + 1] = (self.name or "?") .. ":" .. e.data
      end, name = "obj" }
      local callable = setmetatable({}, { __call = function(_, e)
        log[#log + 1] = "call:" .. e.data
      end })
      p:addEventListener("message", obj)
      p:addEventListener("message", callable)
      p:start()
      p:postMessage("z")
      R.await("two calls", function() return #log == 2 end)
      assert.same({ "obj:z", "call:z" }, log)
    end)

    it("skips the later listeners after stopImmediatePropagation", function()
      local p = echo_pair()
      local log = {}
      p:addEventListener("message", function(e)
        log[#log + 1] = "first"
        e:stopImmediatePropagation()
      end)
      p:addEventListener("message", function() log[#log + 1] = "second" end)
      p:start()
      p:postMessage(1)
      p:postMessage(2)
      R.await("two messages", function() return #log == 2 end)
      mc.step()
      assert.same({ "first", "first" }, log)
    end)
  end)

  describe("the message event", function()
    it("has the fields of section 3.3, one table for all listeners",
       function()
      local p = echo_pair()
      local evs = {}
      p:addEventListener("message", function(e) evs[#evs + 1] = e end)
      p:addEventListener("message", function(e) evs[#evs + 1] = e end)
      p:start()
      p:postMessage({ k = "v" })
      R.await("two calls", function() return #evs == 2 end)
      local e = evs[1]
      assert.is_true(rawequal(e, evs[2]))
      assert.equal("message", e.type)
      assert.same({ k = "v" }, e.data)
      assert.same({}, e.ports)
      assert.is_true(rawequal(p, e.target))
      assert.is_true(rawequal(p, e.currentTarget))
      assert.equal("", e.origin)
      assert.equal("", e.lastEventId)
      assert.is_nil(e.source)
      assert.is_false(e.defaultPrevented)
      e:preventDefault()
      assert.is_true(e.defaultPrevented)
    end)

    it("dispatchEvent on a remote port stays local and synchronous",
       function()
      local p, peer = echo_pair()
      local got = {}
      p:addEventListener("ping", function(e) got[#got + 1] = e.type end)
      assert.is_true(p:dispatchEvent({ type = "ping" }))
      assert.same({ "ping" }, got)
      p:postMessage({ cmd = "say", text = "nothing else" })
      peer:expect("said nothing else")
    end)
  end)

  describe("close", function()
    it("close() here: postMessage returns false at once, both sides get a "
       .. "close, reason nil", function()
      local p, peer = echo_pair()
      local log = {}
      p.onmessage = logger(log)
      p.onclose = function(e)
        log[#log + 1] = "close " .. tostring(e.reason)
      end
      p:postMessage(1)
      R.await("the echo", function() return #log == 1 end)
      p:close()
      p:close()  -- idempotent
      assert.same({ false, "closed" }, { p:postMessage(2) })
      assert.equal("MessagePort (closed)", tostring(p))
      R.await("our close", function() return #log == 2 end)
      assert.same({ 1, "close nil" }, log)
      assert.equal("nil", peer:expect("close (%S+)"))
    end)

    it("the peer's close comes after every message it sent, as the last "
       .. "event", function()
      local p = echo_pair()
      local log = {}
      p.onmessage = function(e) log[#log + 1] = e.data.i end
      p.onclose = function(e)
        log[#log + 1] = "close"
        assert.is_nil(e.reason)
      end
      p:postMessage({ cmd = "burst", n = 200, close = true })
      R.await("the close", function() return log[#log] == "close" end)
      mc.step()
      assert.equal(201, #log)
      for i = 1, 200 do assert.equal(i, log[i]) end
    end)

    it("messages held at an unstarted port survive the close: receive() "
       .. "returns them, then nil, 'closed'", function()
      local p = echo_pair()
      p:postMessage({ cmd = "burst", n = 5, close = true })
      R.await("the pair to close", function() return is_closed(p) end)
      assert.same({ false, "closed" }, { p:postMessage("late") })
      for i = 1, 5 do
        local ev = p:receive(0)
        assert.equal("message", ev.type)
        assert.equal(i, ev.data.i)
      end
      assert.same({ nil, "closed" }, { p:receive(0) })
      assert.same({ nil, "closed" }, { p:receive(1) })
    end)

    it("a close event needs no start but waits behind held messages",
       function()
      local p = echo_pair()
      local log = {}
      p:addEventListener("message", logger(log))  -- not started
      p.onclose = logger(log, "close")
      p:postMessage({ cmd = "burst", n = 3, close = true })
      R.await("the pair to close", function() return is_closed(p) end)
      mc.run(0.2)
      assert.same({}, log)  -- the close waits behind the held messages
      p:start()
      R.await("the close", function() return log[#log] == "close" end)
      assert.equal(4, #log)
      assert.equal("close", log[4])
    end)

    it("a close with no message queued is dispatched without start()",
       function()
      local p = echo_pair()
      local log = {}
      p.onclose = logger(log, "close")
      p:postMessage({ cmd = "close" })
      R.await("the close", function() return #log == 1 end)
      assert.same({ "close" }, log)
    end)

    it("a listener sees the close once, a task in receive() gets nil, "
       .. "'closed'", function()
      local p = echo_pair()
      local res
      mc.spawn(function() res = { p:receive() } end)
      mc.step()
      p:postMessage({ cmd = "close" })
      R.await("the receive to end", function() return res ~= nil end)
      assert.same({ nil, "closed" }, res)
    end)

    it("closing under <close> (Lua 5.4) closes the link", function()
      if _VERSION ~= "Lua 5.4" then
        return pending("<close> needs Lua 5.4")
      end
      local peer, address = R.listening_peer(R.unix_address())
      local chunk = assert(load([[
        local mc, address = ...
        do
          local p <close> = mc.connect(address)
          p:postMessage({ cmd = "say", text = "in scope" })
        end
      ]]))
      chunk(mc, address)
      peer:expect("said in scope")
      assert.equal("nil", peer:expect("close (%S+)"))
    end)
  end)

  describe("errors: messageerror", function()
    it("a listener that raises gives a messageerror with the error and the "
       .. "data; the others still run and the next message comes", function()
      local p = echo_pair()
      local log = {}
      p:addEventListener("message", function(e)
        log[#log + 1] = "first:" .. e.data
        if e.data == 1 then error("boom", 0) end
      end)
      p:addEventListener("message", logger(log, "second"))
      p.onmessageerror = function(e)
        log[#log + 1] = "messageerror:" .. tostring(e.data) .. ":"
                        .. tostring(e.error)
      end
      p:start()
      p:postMessage(1)
      p:postMessage(2)
      R.await("five entries", function() return #log == 5 end)
      assert.same({ "first:1", "second:1", "messageerror:1:boom", "first:2",
                    "second:2" }, log)
      assert.same({}, errors)
    end)

    it("an error nobody takes goes to mc.onerror", function()
      local p = echo_pair()
      p.onmessage = function() error("unheard", 0) end
      p:postMessage(1)
      R.await("the report", function() return #errors == 1 end)
      assert.equal("unheard", errors[1].err)
    end)

    it("a message with a metatable name unknown here gives a messageerror "
       .. "(data nil, DataCloneError); the port keeps working", function()
      local p = echo_pair()
      local log, ev = {}, nil
      p.onmessage = logger(log)
      p.onmessageerror = function(e)
        ev = e
        log[#log + 1] = "messageerror"
      end
      p:postMessage("before")
      p:postMessage({ cmd = "registered", name = "remote.only.here" })
      p:postMessage("after")
      R.await("three events", function() return #log == 3 end)
      assert.same({ "before", "messageerror", "after" }, log)
      assert.equal("messageerror", ev.type)
      assert.is_nil(ev.data)
      assert.truthy(has(ev.error, "DataCloneError:"), tostring(ev.error))
      assert.truthy(has(ev.error, "remote.only.here"), tostring(ev.error))
      assert.same({}, errors)
    end)

    it("the same, taken by a messageerror listener added with "
       .. "addEventListener", function()
      local p = echo_pair()
      local got = {}
      p.onmessage = function() end
      p:addEventListener("messageerror", function(e) got[#got + 1] = e.error end)
      p:postMessage({ cmd = "registered", name = "remote.only.here.2" })
      R.await("the messageerror", function() return #got == 1 end)
      assert.truthy(has(got[1], "DataCloneError:"), tostring(got[1]))
      assert.same({}, errors)
    end)

    it("a metatable name registered on both sides travels by name",
       function()
      local p = echo_pair()
      local mt = { __index = { kind = function() return "point" end } }
      mc.register("remote.point", mt)
      local got
      p.onmessage = function(e) got = e.data end
      p:postMessage({ cmd = "registered", name = "remote.point" })
      R.await("the message", function() return got ~= nil end)
      assert.is_true(rawequal(mt, getmetatable(got)))
      assert.equal(1, got.x)
      assert.equal("point", got:kind())
    end)

    it("our message with a name unknown at the peer gives it a messageerror",
       function()
      local p, peer = echo_pair()
      local mt = {}
      mc.register("remote.only.local", mt)
      local got = {}
      p.onmessage = logger(got)
      p:postMessage(setmetatable({ y = 2 }, mt))
      p:postMessage("next")
      R.await("two answers", function() return #got == 2 end)
      assert.truthy(has(got[1].messageerror, "DataCloneError:"),
                    tostring(got[1].messageerror))
      assert.equal("next", got[2])
      assert.truthy(peer:find("messageerror"))
    end)
  end)

  describe("receive and the scheduler", function()
    it("receive() takes a message whether or not the port is started",
       function()
      local p = echo_pair()
      p:postMessage("pulled")
      local ev = p:receive(R.WAIT)
      assert.equal("message", ev.type)
      assert.equal("pulled", ev.data)
      assert.is_true(rawequal(p, ev.target))
      p:start()
      p:postMessage("again")
      assert.equal("again", p:receive(R.WAIT).data)
    end)

    it("receive(t) returns nil, 'timeout' when nothing comes; receive(0) "
       .. "polls", function()
      local p = echo_pair()
      assert.same({ nil, "timeout" }, { p:receive(0) })
      assert.same({ nil, "timeout" }, { p:receive(0.1) })
      p:postMessage(1)
      arrived(p, 1)
      assert.equal(1, p:receive(0).data)
    end)

    it("receive() inside a task suspends only that task", function()
      local p = echo_pair()
      local log = {}
      mc.spawn(function()
        log[#log + 1] = "waiting"
        local ev = p:receive()
        log[#log + 1] = "got " .. ev.data
      end)
      mc.spawn(function()
        log[#log + 1] = "other task"
        p:postMessage("m")
      end)
      assert.is_true(mc.run(R.WAIT))
      assert.same({ "waiting", "other task", "got m" }, log)
    end)

    it("mc.receive() takes from several remote ports, oldest first, then "
       .. "nil, 'closed' once all are closed and drained", function()
      local a, b = echo_pair(), echo_pair()
      a:postMessage("from a")
      arrived(a, 1)
      b:postMessage("from b")
      arrived(b, 1)
      local ev, port = mc.receive({ a, b }, R.WAIT)
      assert.equal("from a", ev.data)
      assert.is_true(rawequal(a, port))
      ev, port = mc.receive({ a, b }, R.WAIT)
      assert.equal("from b", ev.data)
      assert.is_true(rawequal(b, port))
      assert.same({ nil, "timeout" }, { mc.receive({ a, b }, 0.1) })
      a:postMessage({ cmd = "close" })
      b:postMessage({ cmd = "burst", n = 1, close = true })
      ev, port = mc.receive({ a, b }, R.WAIT)
      assert.equal(1, ev.data.i)
      assert.is_true(rawequal(b, port))
      assert.same({ nil, "closed" }, { mc.receive({ a, b }, R.WAIT) })
    end)

    it("mc.step() reports work while a remote port with a listener is open",
       function()
      local p = echo_pair()
      p.onmessage = function() end
      assert.is_true(mc.step())
      p:unref()
      assert.is_false(mc.step())
      p:ref()
      assert.is_true(mc.step())
      p:close()
      assert.is_true(mc.run(R.WAIT))
      assert.is_false(mc.step())
    end)

    it("pending() counts what arrived and was not taken", function()
      local p = echo_pair()
      assert.equal(0, p:pending())
      for i = 1, 4 do p:postMessage(i) end
      arrived(p, 4)
      assert.equal(4, p:pending())
      p:receive(0)
      assert.equal(3, p:pending())
    end)
  end)

  describe("lifetime", function()
    it("a port with a listener that nothing here references still gets "
       .. "its messages", function()
      local got = {}
      local peer
      do
        local p
        p, peer = echo_pair()
        made[#made] = nil  -- not kept by the spec either
        p.onmessage = function(e)
          got[#got + 1] = e.data.i
          if #got == 50 then e.target:close() end
        end
        p:postMessage({ cmd = "burst", n = 50 })
      end
      for _ = 1, 3 do
        collectgarbage()
        collectgarbage()
        mc.sleep(0.01)
      end
      R.await("50 messages", function() return #got == 50 end)
      assert.same(range(50), got)
      assert.equal("nil", peer:expect("close (%S+)"))
    end)

    it("an unreachable port with no listener is collected and the peer "
       .. "sees the close", function()
      local peer, address = R.listening_peer(R.unix_address())
      do
        local p = mc.connect(address)
        p:postMessage({ cmd = "say", text = "hello" })
      end
      peer:expect("said hello")
      R.await("the peer's close", function()
        collectgarbage()
        collectgarbage()
        return peer:find("close (%S+)") ~= nil
      end)
      assert.equal("nil", peer:find("close (%S+)"))
    end)
  end)
end)
