-- MessageChannel and MessagePort in one Lua state: the members of a port
-- (API.md section 2). Delivery order and close events are in
-- 06-delivery_spec.lua, the scheduler in 07-scheduler_spec.lua.

local mc = require "messagechannel"
local helper = require "spec.helper"

local error_of = helper.error_of

local has = helper.has

-- Asserts that fn(...) raises an error containing each of the needles.
local function raises(fn, args, ...)
  local err = error_of(fn, helper.unpack(args, 1, args.n or #args))
  for i = 1, select("#", ...) do
    local needle = select(i, ...)
    assert.truthy(has(err, needle), ("expected %q in %q"):format(needle, err))
  end
  return err
end

local function set_field(port, name, value)
  port[name] = value
end

local is_port = helper.is_port

local run = helper.run

-- A listener that appends tag (or the event's data) to log.
local function logger(log, tag)
  return function(e)
    if tag == nil then log[#log + 1] = e.data else log[#log + 1] = tag end
  end
end

local noop = helper.noop

-- Empties a log in place, for the listeners that hold it.
local function clear(t)
  for k in pairs(t) do t[k] = nil end
end

describe("MessagePort", function()
  local errors, catch, release = helper.error_hooks(2)
  before_each(catch)
  after_each(release)

  describe("mc.MessageChannel", function()
    it("makes a channel of two distinct ports, called or through new()", function()
      for _, make in ipairs({ mc.MessageChannel, mc.MessageChannel.new }) do
        local ch = make()
        assert.is_true(is_port(ch.port1), tostring(ch.port1))
        assert.is_true(is_port(ch.port2), tostring(ch.port2))
        assert.is_false(rawequal(ch.port1, ch.port2))
      end
    end)

    it("gives the same two port objects on every read", function()
      local ch = mc.MessageChannel()
      local p1, p2 = ch.port1, ch.port2
      for _ = 1, 3 do
        assert.is_true(rawequal(p1, ch.port1))
        assert.is_true(rawequal(p2, ch.port2))
      end
    end)

    it("makes new ports for every channel", function()
      local a, b = mc.MessageChannel(), mc.MessageChannel.new()
      assert.is_false(rawequal(a.port1, b.port1))
      assert.is_false(rawequal(a.port2, b.port2))
    end)

    it("entangles port1 and port2 in both directions", function()
      local ch = mc.MessageChannel()
      assert.is_true(ch.port1:postMessage("to port2"))
      assert.is_true(ch.port2:postMessage("to port1"))
      assert.equal("to port2", ch.port2:receive(0).data)
      assert.equal("to port1", ch.port1:receive(0).data)
    end)

    it("keeps the ports of different channels apart", function()
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      assert.is_true(a.port1:postMessage("for a"))
      local ev, why = b.port2:receive(0)
      assert.is_nil(ev)
      assert.equal("timeout", why)
      assert.equal("for a", a.port2:receive(0).data)
    end)

    it("prints as MessageChannel (0x...)", function()
      local s = tostring(mc.MessageChannel())
      assert.truthy(s:find("^MessageChannel %(0x%x+%)$"), s)
    end)

    it("rejects a new field", function()
      local ch = mc.MessageChannel()
      assert.is_false(pcall(set_field, ch, "port3", 1))
      assert.is_nil(rawget(ch, "port3"))
    end)
  end)

  describe("mc.MessagePort", function()
    it("raises TypeError: Illegal constructor when called", function()
      raises(mc.MessagePort, {}, "TypeError: Illegal constructor")
      raises(mc.MessagePort, { "port", {} }, "TypeError: Illegal constructor")
    end)
  end)

  describe("methods", function()
    it("raise a bad argument error when called on something that is not a port", function()
      local p = mc.MessageChannel().port1
      local calls = {
        { p.postMessage, "x", "y" }, { p.start, {} }, { p.close, 1 },
        { p.addEventListener, "x", "message", noop },
        { p.removeEventListener, "x", "message", noop },
        { p.dispatchEvent, "x", { type = "message" } }, { p.receive, {}, 0 },
        { p.ref, 1 }, { p.unref, 1 }, { p.hasRef, 1 },
      }
      for _, c in ipairs(calls) do
        raises(c[1], { helper.unpack(c, 2) }, "bad argument #1")
      end
    end)
  end)

  describe("port:postMessage", function()
    it("returns true when the message is queued, started partner or not", function()
      local ch = mc.MessageChannel()
      assert.is_true(ch.port1:postMessage("a"))
      ch.port2:start()
      assert.is_true(ch.port1:postMessage("b"))
    end)

    it("sends a clone, not the table itself", function()
      local ch = mc.MessageChannel()
      local t = { x = { 1, 2 }, s = "y" }
      ch.port1:postMessage(t)
      local data = ch.port2:receive(0).data
      assert.is_false(rawequal(t, data))
      assert.is_false(rawequal(t.x, data.x))
      assert.same(t, data)
    end)

    it("takes a snapshot: later changes to the message are not sent", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = logger(got)
      local t = { n = 1, list = { "a" } }
      ch.port1:postMessage(t)
      t.n = 2
      t.list[1] = "changed"
      t.extra = true
      run()
      assert.same({ { n = 1, list = { "a" } } }, got)
    end)

    it("sends nil with no argument, and with nil", function()
      local ch = mc.MessageChannel()
      assert.is_true(ch.port1:postMessage())
      assert.is_true(ch.port1:postMessage(nil))
      for _ = 1, 2 do
        local ev = ch.port2:receive(0)
        assert.is_table(ev)
        assert.equal("message", ev.type)
        assert.is_nil(ev.data)
      end
      local ev, why = ch.port2:receive(0)
      assert.is_nil(ev)
      assert.equal("timeout", why)
    end)

    it("accepts an empty transfer list in both forms", function()
      local ch = mc.MessageChannel()
      assert.is_true(ch.port1:postMessage("a", {}))
      assert.is_true(ch.port1:postMessage("b", { transfer = {} }))
      assert.equal("a", ch.port2:receive(0).data)
      assert.equal("b", ch.port2:receive(0).data)
    end)

    it("returns false once this port is closed, and nothing arrives", function()
      local ch = mc.MessageChannel()
      ch.port1:close()
      assert.is_false(ch.port1:postMessage("lost"))
      local ev, why = ch.port2:receive(0)
      assert.is_nil(ev)
      assert.equal("closed", why)
    end)

    it("returns false once the partner is closed", function()
      local ch = mc.MessageChannel()
      ch.port2:close()
      assert.is_false(ch.port1:postMessage("lost"))
      assert.is_false(ch.port2:postMessage("lost"))
    end)

    it("raises DataCloneError at once for an uncloneable message, sending nothing", function()
      local ch = mc.MessageChannel()
      raises(ch.port1.postMessage, { ch.port1, { cb = print } },
        "DataCloneError: function is not cloneable (at .cb)")
      raises(ch.port1.postMessage, { ch.port1, coroutine.create(noop) },
        "DataCloneError:")
      local ev, why = ch.port2:receive(0)
      assert.is_nil(ev)
      assert.equal("timeout", why)
    end)

    it("raises DataCloneError for a port in the data that is not transferred", function()
      local ch, other = mc.MessageChannel(), mc.MessageChannel()
      raises(ch.port1.postMessage, { ch.port1, { port = other.port1 } }, "DataCloneError:")
      raises(ch.port1.postMessage, { ch.port1, ch.port2 }, "DataCloneError:")
      local ev, why = ch.port2:receive(0)
      assert.is_nil(ev)
      assert.equal("timeout", why)
      assert.is_true(other.port1:postMessage("still usable"))
    end)

    it("raises DataCloneError for a bad transfer list, sending nothing", function()
      local ch = mc.MessageChannel()
      local p1 = ch.port1
      raises(p1.postMessage, { p1, "x", { p1 } }, "DataCloneError:")
      raises(p1.postMessage, { p1, "x", { transfer = { p1 } } }, "DataCloneError:")
      raises(p1.postMessage, { p1, "x", { {} } }, "DataCloneError:")
      local ev, why = ch.port2:receive(0)
      assert.is_nil(ev)
      assert.equal("timeout", why)
    end)

    it("raises a bad argument error for a transfer that is not a table", function()
      local ch = mc.MessageChannel()
      raises(ch.port1.postMessage, { ch.port1, "x", 42 }, "bad argument")
      local ev, why = ch.port2:receive(0)
      assert.is_nil(ev)
      assert.equal("timeout", why)
    end)

    it("raises clone and transfer errors even on a closed port, changing nothing", function()
      local ch = mc.MessageChannel()
      local p1 = ch.port1
      p1:close()
      raises(p1.postMessage, { p1, { print } }, "DataCloneError:")
      raises(p1.postMessage, { p1, "x", { p1 } }, "DataCloneError:")
      assert.equal("MessagePort (closed)", tostring(p1))
      assert.is_false(p1:postMessage("fine but dropped"))
    end)

    it("keeps the port working after a clone error", function()
      local ch = mc.MessageChannel()
      assert.is_false(pcall(ch.port1.postMessage, ch.port1, { print }))
      assert.is_true(ch.port1:postMessage("next"))
      assert.equal("next", ch.port2:receive(0).data)
    end)
  end)

  describe("port:start", function()
    it("lets held messages be dispatched, in order, discarding none", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:addEventListener("message", logger(got))
      for i = 1, 3 do ch.port1:postMessage(i) end
      run()
      assert.same({}, got)
      ch.port2:start()
      run()
      assert.same({ 1, 2, 3 }, got)
    end)

    it("is idempotent", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:addEventListener("message", logger(got))
      ch.port1:postMessage(1)
      ch.port2:start()
      ch.port2:start()
      ch.port1:postMessage(2)
      ch.port2:start()
      run()
      ch.port2:start()
      ch.port1:postMessage(3)
      run()
      assert.same({ 1, 2, 3 }, got)
    end)
  end)

  describe("port:close", function()
    it("disentangles both ports: postMessage returns false on either", function()
      local ch = mc.MessageChannel()
      ch.port1:close()
      assert.is_false(ch.port1:postMessage(1))
      assert.is_false(ch.port2:postMessage(2))
    end)

    it("is idempotent and never raises", function()
      local ch = mc.MessageChannel()
      assert.is_true(pcall(ch.port1.close, ch.port1))
      assert.is_true(pcall(ch.port1.close, ch.port1))
      assert.is_true(pcall(ch.port2.close, ch.port2))
      assert.is_true(pcall(ch.port2.close, ch.port2))
      run()
      assert.is_true(pcall(ch.port1.close, ch.port1))
      assert.same({}, errors)
    end)

    it("dispatches one close event per port, however often close is called", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port1.onclose = logger(got, "port1")
      ch.port2.onclose = logger(got, "port2")
      ch.port1:close()
      ch.port2:close()
      ch.port1:close()
      run()
      ch.port2:close()
      run()
      table.sort(got)
      assert.same({ "port1", "port2" }, got)
    end)
  end)

  describe("handler fields", function()
    local fields = { "onmessage", "onmessageerror", "onclose" }

    it("are nil by default", function()
      local ch = mc.MessageChannel()
      for _, name in ipairs(fields) do
        assert.is_nil(ch.port1[name], name)
        assert.is_nil(ch.port2[name], name)
      end
    end)

    it("read back the function or callable table that was set", function()
      local ch = mc.MessageChannel()
      local callable = setmetatable({}, { __call = noop })
      for _, name in ipairs(fields) do
        local f = function() end
        ch.port1[name] = f
        assert.equal(f, ch.port1[name])
        ch.port1[name] = callable
        assert.is_true(rawequal(callable, ch.port1[name]))
        ch.port1[name] = nil
        assert.is_nil(ch.port1[name])
      end
    end)

    it("start the port when onmessage is set to a function", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port1:postMessage("held")
      run()
      ch.port2.onmessage = logger(got)
      run()
      assert.same({ "held" }, got)
    end)

    it("start the port for a callable onmessage, called as listener(event)", function()
      local ch = mc.MessageChannel()
      local calls = {}
      local callable = setmetatable({}, {
        __call = function(self, e) calls[#calls + 1] = { self = self, e = e } end,
      })
      ch.port2.onmessage = callable
      ch.port1:postMessage("x")
      run()
      assert.equal(1, #calls)
      assert.is_true(rawequal(callable, calls[1].self))
      assert.equal("message", calls[1].e.type)
      assert.equal("x", calls[1].e.data)
    end)

    it("do not start the port when onmessageerror or onclose is set", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessageerror = noop
      ch.port2.onclose = noop
      ch.port2:addEventListener("message", logger(got))
      ch.port1:postMessage("held")
      run()
      assert.same({}, got)
      ch.port2:start()
      run()
      assert.same({ "held" }, got)
    end)

    it("raise TypeError for any other value and keep the handler they had", function()
      local ch = mc.MessageChannel()
      local p = ch.port1
      local bad = { 42, "f", true, false, {}, { handleEvent = noop },
                    coroutine.create(noop), mc.Buffer(1) }
      for _, name in ipairs(fields) do
        local f = function() end
        p[name] = f
        for _, v in ipairs(bad) do
          raises(set_field, { p, name, v }, "TypeError:")
          assert.equal(f, p[name])
        end
      end
    end)

    it("remove the handler when set to nil", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = logger(got, "on")
      ch.port2.onmessage = nil
      ch.port2:dispatchEvent({ type = "message" })
      assert.same({}, got)
    end)

    it("leave the port started when onmessage is set back to nil", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = noop
      ch.port2.onmessage = nil
      ch.port2:addEventListener("message", logger(got))
      ch.port1:postMessage("x")
      run()
      assert.same({ "x" }, got)
    end)
  end)

  describe("field assignment", function()
    it("raises an error naming a misspelt field", function()
      local ch = mc.MessageChannel()
      raises(set_field, { ch.port1, "onmesage", noop }, "TypeError:", "onmesage")
      assert.is_nil(ch.port1.onmesage)
      assert.is_nil(ch.port1.onmessage)
    end)

    it("raises for any other field, method names included", function()
      local ch = mc.MessageChannel()
      local p = ch.port1
      raises(set_field, { p, "foo", 1 }, "foo")
      raises(set_field, { p, "data", "x" }, "data")
      raises(set_field, { p, "postMessage", noop }, "postMessage")
      raises(set_field, { p, "close", noop }, "close")
      -- the methods are still the port's own
      assert.is_true(p:postMessage("ok"))
      assert.equal("ok", ch.port2:receive(0).data)
    end)

    it("reads an unknown field as nil", function()
      local ch = mc.MessageChannel()
      assert.is_nil(ch.port1.foo)
      assert.is_nil(ch.port1.onmesage)
    end)
  end)

  describe("port:addEventListener", function()
    it("calls a function as listener(event)", function()
      local p = mc.MessageChannel().port1
      local args
      p:addEventListener("message", function(...) args = helper.pack(...) end)
      local t = { type = "message" }
      p:dispatchEvent(t)
      assert.equal(1, args.n)
      assert.is_true(rawequal(t, args[1]))
    end)

    it("calls a callable table as listener(event)", function()
      local p = mc.MessageChannel().port1
      local args
      local callable = setmetatable({}, { __call = function(...) args = helper.pack(...) end })
      p:addEventListener("message", callable)
      local t = { type = "message" }
      p:dispatchEvent(t)
      assert.equal(2, args.n)
      assert.is_true(rawequal(callable, args[1]))
      assert.is_true(rawequal(t, args[2]))
    end)

    it("calls a table's handleEvent method as listener:handleEvent(event)", function()
      local p = mc.MessageChannel().port1
      local args
      local obj = { handleEvent = function(...) args = helper.pack(...) end }
      p:addEventListener("message", obj)
      local t = { type = "message" }
      p:dispatchEvent(t)
      assert.equal(2, args.n)
      assert.is_true(rawequal(obj, args[1]))
      assert.is_true(rawequal(t, args[2]))
    end)

    it("raises TypeError for any other listener", function()
      local p = mc.MessageChannel().port1
      for _, v in ipairs({ 42, "f", true, {}, coroutine.create(noop) }) do
        raises(p.addEventListener, { p, "message", v }, "TypeError:")
      end
      assert.is_true(p:dispatchEvent({ type = "message" }))
    end)

    it("raises a bad argument error when the type is not a string", function()
      local p = mc.MessageChannel().port1
      raises(p.addEventListener, { p, nil, noop, n = 3 }, "bad argument #1", "addEventListener")
      raises(p.addEventListener, { p, 1, noop }, "bad argument #1", "addEventListener")
    end)

    it("does not start the port", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:addEventListener("message", logger(got))
      ch.port1:postMessage("held")
      run()
      assert.same({}, got)
      assert.equal("held", ch.port2:receive(0).data)
    end)

    it("ignores a second add of the same type and listener", function()
      local p = mc.MessageChannel().port1
      local got = {}
      local f = logger(got, "f")
      p:addEventListener("message", f)
      p:addEventListener("message", f)
      p:dispatchEvent({ type = "message" })
      assert.same({ "f" }, got)
    end)

    it("ignores a second add of the same listener with other options", function()
      local p = mc.MessageChannel().port1
      local got = {}
      local f = logger(got, "f")
      p:addEventListener("message", f)
      p:addEventListener("message", f, { once = true })
      p:dispatchEvent({ type = "message" })
      p:dispatchEvent({ type = "message" })
      assert.same({ "f", "f" }, got)
    end)

    it("keeps one listener added for two types apart", function()
      local p = mc.MessageChannel().port1
      local got = {}
      local f = function(e) got[#got + 1] = e.type end
      p:addEventListener("message", f)
      p:addEventListener("ping", f)
      p:dispatchEvent({ type = "ping" })
      p:dispatchEvent({ type = "message" })
      assert.same({ "ping", "message" }, got)
    end)

    it("runs a once listener one time", function()
      local p = mc.MessageChannel().port1
      local got = {}
      p:addEventListener("message", logger(got, "once"), { once = true })
      p:addEventListener("message", logger(got, "always"))
      p:dispatchEvent({ type = "message" })
      p:dispatchEvent({ type = "message" })
      assert.same({ "once", "always", "always" }, got)
    end)

    it("lets a once listener be added again after it ran", function()
      local p = mc.MessageChannel().port1
      local got = {}
      local f = logger(got, "f")
      p:addEventListener("message", f, { once = true })
      p:dispatchEvent({ type = "message" })
      p:addEventListener("message", f, { once = true })
      p:dispatchEvent({ type = "message" })
      p:dispatchEvent({ type = "message" })
      assert.same({ "f", "f" }, got)
    end)

    it("runs a once listener one time for scheduled messages too", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:addEventListener("message", logger(got, "once"), { once = true })
      ch.port2.onmessage = logger(got)
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      run()
      assert.same({ "once", 1, 2 }, got)
    end)

    it("accepts a boolean options argument and ignores it", function()
      local p = mc.MessageChannel().port1
      local got = {}
      p:addEventListener("message", logger(got, "f"), true)
      p:dispatchEvent({ type = "message" })
      p:dispatchEvent({ type = "message" })
      assert.same({ "f", "f" }, got)
    end)
  end)

  describe("port:removeEventListener", function()
    it("removes a listener", function()
      local p = mc.MessageChannel().port1
      local got = {}
      local f = logger(got, "f")
      p:addEventListener("message", f)
      p:removeEventListener("message", f)
      p:dispatchEvent({ type = "message" })
      assert.same({}, got)
    end)

    it("ignores a listener that was never added", function()
      local p = mc.MessageChannel().port1
      local got = {}
      p:addEventListener("message", logger(got, "kept"))
      assert.is_true(pcall(p.removeEventListener, p, "message", noop))
      assert.is_true(pcall(p.removeEventListener, p, "nothing", noop))
      p:dispatchEvent({ type = "message" })
      assert.same({ "kept" }, got)
    end)

    it("removes only the listener of that type", function()
      local p = mc.MessageChannel().port1
      local got = {}
      local f = function(e) got[#got + 1] = e.type end
      p:addEventListener("message", f)
      p:addEventListener("close", f)
      p:removeEventListener("close", f)
      p:dispatchEvent({ type = "close" })
      p:dispatchEvent({ type = "message" })
      assert.same({ "message" }, got)
    end)

    it("removes a once listener before it runs", function()
      local p = mc.MessageChannel().port1
      local got = {}
      local f = logger(got, "f")
      p:addEventListener("message", f, { once = true })
      p:removeEventListener("message", f)
      p:dispatchEvent({ type = "message" })
      assert.same({}, got)
    end)

    it("removes a handleEvent table and a callable table by identity", function()
      local p = mc.MessageChannel().port1
      local got = {}
      local obj = { handleEvent = function() got[#got + 1] = "obj" end }
      local callable = setmetatable({}, { __call = function() got[#got + 1] = "callable" end })
      p:addEventListener("message", obj)
      p:addEventListener("message", callable)
      p:removeEventListener("message", { handleEvent = obj.handleEvent })
      p:dispatchEvent({ type = "message" })
      p:removeEventListener("message", obj)
      p:removeEventListener("message", callable)
      p:dispatchEvent({ type = "message" })
      assert.same({ "obj", "callable" }, got)
    end)

    it("stops a port from dispatching when its last message listener goes", function()
      local ch = mc.MessageChannel()
      local got = {}
      local f = logger(got)
      ch.port2:addEventListener("message", f)
      ch.port2:start()
      ch.port1:postMessage(1)
      run()
      ch.port2:removeEventListener("message", f)
      ch.port1:postMessage(2)
      run()
      assert.same({ 1 }, got)
      assert.equal(2, ch.port2:receive(0).data)
    end)
  end)

  describe("port:dispatchEvent", function()
    it("calls the listeners synchronously, before it returns", function()
      local p = mc.MessageChannel().port1
      local got = {}
      p:addEventListener("message", logger(got, "a"))
      p.onmessage = logger(got, "on")
      p:dispatchEvent({ type = "message" })
      assert.same({ "a", "on" }, got)
    end)

    it("gives every listener the table passed in, its own fields kept", function()
      local p = mc.MessageChannel().port1
      local seen = {}
      local function f(e) seen[#seen + 1] = e end
      p:addEventListener("custom", f)
      p:addEventListener("custom", { handleEvent = function(_, e) seen[#seen + 1] = e end })
      local t = { type = "custom", detail = { 1 } }
      p:dispatchEvent(t)
      assert.equal(2, #seen)
      assert.is_true(rawequal(t, seen[1]))
      assert.is_true(rawequal(t, seen[2]))
      assert.equal("custom", t.type)
      assert.same({ 1 }, t.detail)
    end)

    it("gives the table the event fields and methods", function()
      local p = mc.MessageChannel().port1
      local seen = {}
      p:addEventListener("message", function(e)
        seen.target, seen.currentTarget = e.target, e.currentTarget
        seen.defaultPrevented = e.defaultPrevented
        seen.preventDefault = type(e.preventDefault)
        seen.stop = type(e.stopImmediatePropagation)
      end)
      local t = { type = "message" }
      p:dispatchEvent(t)
      assert.is_true(rawequal(p, seen.target))
      assert.is_true(rawequal(p, seen.currentTarget))
      assert.is_false(seen.defaultPrevented)
      assert.equal("function", seen.preventDefault)
      assert.equal("function", seen.stop)
    end)

    it("returns true, or false once a listener called preventDefault", function()
      local p = mc.MessageChannel().port1
      assert.is_true(p:dispatchEvent({ type = "message" }))
      p:addEventListener("message", noop)
      assert.is_true(p:dispatchEvent({ type = "message" }))
      p:addEventListener("message", function(e) e:preventDefault() end)
      local t = { type = "message" }
      assert.is_false(p:dispatchEvent(t))
      assert.is_true(t.defaultPrevented)
    end)

    it("shows defaultPrevented to the listeners after the one that prevented", function()
      local p = mc.MessageChannel().port1
      local before, after
      p:addEventListener("message", function(e) before = e.defaultPrevented end)
      p:addEventListener("message", function(e) e:preventDefault() end)
      p:addEventListener("message", function(e) after = e.defaultPrevented end)
      p:dispatchEvent({ type = "message" })
      assert.is_false(before)
      assert.is_true(after)
    end)

    it("calls only the listeners of event.type", function()
      local p = mc.MessageChannel().port1
      local got = {}
      p:addEventListener("message", logger(got, "message"))
      p:addEventListener("ping", logger(got, "ping"))
      p.onclose = logger(got, "close")
      p:dispatchEvent({ type = "ping" })
      assert.same({ "ping" }, got)
    end)

    it("dispatches at a port that is not started, without starting it", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:addEventListener("message", logger(got, "sync"))
      ch.port1:postMessage("held")
      ch.port2:dispatchEvent({ type = "message" })
      run()
      assert.same({ "sync" }, got)
      assert.equal("held", ch.port2:receive(0).data)
    end)

    it("raises a bad argument error for an event without a string type", function()
      local p = mc.MessageChannel().port1
      raises(p.dispatchEvent, { p, {} }, "bad argument")
      raises(p.dispatchEvent, { p, { type = 1 } }, "bad argument")
      raises(p.dispatchEvent, { p, "message" }, "bad argument")
      raises(p.dispatchEvent, { p }, "bad argument")
    end)

    it("sends a listener's error to mc.onerror and runs the other listeners", function()
      local p = mc.MessageChannel().port1
      local got = {}
      p:addEventListener("message", function() error("listener failed", 0) end)
      p:addEventListener("message", logger(got, "after"))
      assert.is_true(pcall(p.dispatchEvent, p, { type = "message" }))
      assert.same({ "after" }, got)
      assert.equal(1, #errors)
      assert.truthy(has(errors[1].err, "listener failed"),
                    tostring(errors[1].err))
    end)
  end)

  describe("listener order", function()
    local cases = {
      { field = "onmessage", type = "message" },
      { field = "onmessageerror", type = "messageerror" },
      { field = "onclose", type = "close" },
    }

    it("runs the listeners of one type in registration order", function()
      local p = mc.MessageChannel().port1
      local got = {}
      for i = 1, 5 do p:addEventListener("message", logger(got, i)) end
      p:dispatchEvent({ type = "message" })
      assert.same({ 1, 2, 3, 4, 5 }, got)
    end)

    for _, case in ipairs(cases) do
      local field, etype = case.field, case.type

      it(field .. " sits where it was first set and keeps that place when replaced", function()
        local p = mc.MessageChannel().port1
        local got = {}
        p:addEventListener(etype, logger(got, "a"))
        p[field] = logger(got, "on1")
        p:addEventListener(etype, logger(got, "b"))
        p:dispatchEvent({ type = etype })
        assert.same({ "a", "on1", "b" }, got)
        clear(got)
        p[field] = function() got[#got + 1] = "on2" end
        p:dispatchEvent({ type = etype })
        assert.same({ "a", "on2", "b" }, got)
      end)

      it(field .. " set to nil is removed, and set again is appended", function()
        local p = mc.MessageChannel().port1
        local got = {}
        p[field] = function() got[#got + 1] = "on1" end
        p:addEventListener(etype, function() got[#got + 1] = "a" end)
        p[field] = nil
        p:dispatchEvent({ type = etype })
        assert.same({ "a" }, got)
        clear(got)
        p[field] = function() got[#got + 1] = "on2" end
        p:dispatchEvent({ type = etype })
        assert.same({ "a", "on2" }, got)
      end)
    end
  end)

  describe("changes during a dispatch", function()
    it("do not call a listener removed by an earlier listener", function()
      local p = mc.MessageChannel().port1
      local got = {}
      local b = logger(got, "b")
      p:addEventListener("message", function()
        got[#got + 1] = "a"
        p:removeEventListener("message", b)
      end)
      p:addEventListener("message", b)
      p:addEventListener("message", logger(got, "c"))
      p:dispatchEvent({ type = "message" })
      assert.same({ "a", "c" }, got)
    end)

    it("do not call an on-field set to nil by an earlier listener", function()
      local p = mc.MessageChannel().port1
      local got = {}
      p:addEventListener("message", function()
        got[#got + 1] = "a"
        p.onmessage = nil
      end)
      p.onmessage = logger(got, "on")
      p:dispatchEvent({ type = "message" })
      assert.same({ "a" }, got)
    end)

    it("do not call a listener added during the dispatch, until the next one", function()
      local p = mc.MessageChannel().port1
      local got = {}
      local added = false
      p:addEventListener("message", function()
        got[#got + 1] = "a"
        if not added then
          added = true
          p:addEventListener("message", logger(got, "new"))
          p.onmessage = logger(got, "on")
        end
      end)
      p:dispatchEvent({ type = "message" })
      assert.same({ "a" }, got)
      p:dispatchEvent({ type = "message" })
      assert.same({ "a", "a", "new", "on" }, got)
    end)

    it("let a listener remove itself and the others still run", function()
      local p = mc.MessageChannel().port1
      local got = {}
      local function selfish()
        got[#got + 1] = "self"
        p:removeEventListener("message", selfish)
      end
      p:addEventListener("message", selfish)
      p:addEventListener("message", logger(got, "next"))
      p:dispatchEvent({ type = "message" })
      p:dispatchEvent({ type = "message" })
      assert.same({ "self", "next", "next" }, got)
    end)
  end)

  describe("event:stopImmediatePropagation", function()
    it("skips the listeners after the current one, for that event only", function()
      local p = mc.MessageChannel().port1
      local got = {}
      p:addEventListener("message", logger(got, "a"))
      p:addEventListener("message", function(e)
        got[#got + 1] = "b"
        if e.stop then e:stopImmediatePropagation() end
      end)
      p.onmessage = logger(got, "c")
      p:dispatchEvent({ type = "message", stop = true })
      assert.same({ "a", "b" }, got)
      clear(got)
      p:dispatchEvent({ type = "message" })
      assert.same({ "a", "b", "c" }, got)
    end)

    it("keeps the dispatch's return value", function()
      local p = mc.MessageChannel().port1
      p:addEventListener("message", function(e)
        e:preventDefault()
        e:stopImmediatePropagation()
      end)
      p:addEventListener("message", error)
      assert.is_false(p:dispatchEvent({ type = "message" }))
      assert.same({}, errors)
    end)
  end)

  describe("port:ref, port:unref, port:hasRef", function()
    it("report a ref by default, none after unref, one again after ref", function()
      local ch = mc.MessageChannel()  -- held: a collected partner closes p
      local p = ch.port1
      assert.is_true(p:hasRef())
      p:unref()
      assert.is_false(p:hasRef())
      p:unref()
      assert.is_false(p:hasRef())
      p:ref()
      assert.is_true(p:hasRef())
      p:ref()
      assert.is_true(p:hasRef())
    end)

    it("change nothing about delivery within one Lua state", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2:unref()
      ch.port2.onmessage = logger(got)
      ch.port1:postMessage("unref'd")
      run()
      ch.port2:ref()
      ch.port1:postMessage("ref'd")
      run()
      assert.same({ "unref'd", "ref'd" }, got)
    end)
  end)

  describe("<close>", function()
    if _VERSION == "Lua 5.4" then
      it("closes the port at the end of the scope (Lua 5.4)", function()
        local chunk = assert(load([[
          local ch = ...
          do
            local p <close> = ch.port1
            assert(p:postMessage("inside"))
          end
        ]]))
        local ch = mc.MessageChannel()
        chunk(ch)
        assert.equal("MessagePort (closed)", tostring(ch.port1))
        assert.is_false(ch.port2:postMessage("after"))
        assert.equal("inside", ch.port2:receive(0).data)
        local ev, why = ch.port2:receive(0)
        assert.is_nil(ev)
        assert.equal("closed", why)
      end)

      it("closes the port when the scope is left by an error (Lua 5.4)", function()
        local chunk = assert(load([[
          local ch = ...
          local p <close> = ch.port1
          error("leaving", 0)
        ]]))
        local ch = mc.MessageChannel()
        local ok, err = pcall(chunk, ch)
        assert.is_false(ok)
        assert.equal("leaving", err)
        assert.equal("MessagePort (closed)", tostring(ch.port1))
        assert.is_false(ch.port1:postMessage("x"))
      end)
    else
      it("is a Lua 5.4 feature; close() does the same here", function()
        local ch = mc.MessageChannel()
        ch.port1:close()
        assert.equal("MessagePort (closed)", tostring(ch.port1))
      end)
    end
  end)

  describe("tostring", function()
    it("gives MessagePort (0x...) for an open port, different for each port", function()
      local ch = mc.MessageChannel()
      local s1, s2 = tostring(ch.port1), tostring(ch.port2)
      assert.truthy(s1:find("^MessagePort %(0x%x+%)$"), s1)
      assert.truthy(s2:find("^MessagePort %(0x%x+%)$"), s2)
      assert.not_equal(s1, s2)
    end)

    it("gives MessagePort (closed) for both ports once either is closed", function()
      for _, which in ipairs({ "port1", "port2" }) do
        local ch = mc.MessageChannel()
        ch[which]:close()
        assert.equal("MessagePort (closed)", tostring(ch.port1))
        assert.equal("MessagePort (closed)", tostring(ch.port2))
      end
    end)
  end)
end)
