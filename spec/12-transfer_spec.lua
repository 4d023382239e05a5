-- Transfer lists in one Lua state (API.md section 4.3, with the transfer
-- rules of section 2): what may be transferred, the DataCloneError cases
-- (after which nothing is sent or detached), what arrives (new port objects
-- in event.ports and in the data, moved Buffers), what stays behind
-- (detached objects), a port that dies in transit, and structuredClone with
-- a transfer list. Transfers between threads are in 11-threads_spec.lua.

local mc = require "messagechannel"
local helper = require "spec.helper"

local has = helper.has

local run = helper.run

local noop = helper.noop

local is_port = helper.is_port

local function is_open(port)
  return helper.is_open_port_name(tostring(port))
end

-- Asserts that fn(...) raises a DataCloneError.
local function clone_error(fn, ...)
  local err = helper.error_of(fn, ...)
  assert.truthy(has(err, "DataCloneError:"), err)
  return err
end

-- Asserts that port has nothing queued and is still open.
local function nothing_arrived(port)
  local ev, why = port:receive(0)
  assert.is_nil(ev)
  assert.equal("timeout", why)
end

-- Asserts that the two ports are still entangled, both ways.
local function entangled(a, b)
  assert.is_true(a:postMessage("a to b"))
  assert.equal("a to b", b:receive(0).data)
  assert.is_true(b:postMessage("b to a"))
  assert.equal("b to a", a:receive(0).data)
end

-- Asserts that port was detached by a transfer.
local function detached(port)
  assert.is_false(port:postMessage("to a detached port"))
  assert.equal("MessagePort (closed)", tostring(port))
end

local collect = helper.collect

-- Moves port through a new channel; returns the new port object.
local function moved(port)
  local via = mc.MessageChannel()
  assert.is_true(via.port1:postMessage(nil, { port }))
  return via.port2:receive(0).ports[1]
end

-- Bad transfer entries: each function makes one, given the sending channel.
local bad_entries = {
  { "the sending port", function(ch) return ch.port1 end, sending = true },
  { "the sending port's partner", function(ch) return ch.port2 end, sending = true },
  { "a closed port", function()
      local c = mc.MessageChannel()
      c.port1:close()
      return c.port1
    end },
  { "a detached port", function()
      local c = mc.MessageChannel()
      moved(c.port2)
      return c.port2
    end },
  { "a detached buffer", function()
      local b = mc.Buffer("gone")
      local via = mc.MessageChannel()
      via.port1:postMessage(nil, { b })
      return b
    end },
  { "a table", function() return {} end },
  { "a string", function() return "port" end },
  { "a number", function() return 1 end },
  { "a boolean", function() return true end },
  { "a function", function() return print end },
  { "a coroutine", function() return coroutine.create(noop) end },
  { "a channel object", function() return mc.MessageChannel() end },
  { "a file handle", function() return io.stdout end },
}

-- The two forms of the transfer argument.
local forms = {
  { "an array", function(list) return list end },
  { "{ transfer = array }", function(list) return { transfer = list } end },
}

describe("transfer lists", function()
  local errors, catch, release = helper.error_hooks(2)
  before_each(catch)
  after_each(release)

  describe("a bad transfer list", function()
    -- Every bad entry, first, between and last among a good port and a
    -- good buffer: the good ones must come out untouched.
    local function lists(bad, port, buf)
      return { { bad, port, buf }, { port, bad, buf }, { port, buf, bad } }
    end

    for _, case in ipairs(bad_entries) do
      it("raises DataCloneError in postMessage for " .. case[1] .. ", moving nothing",
        function()
          for _, form in ipairs(forms) do
            for pos = 1, 3 do
              local ch = mc.MessageChannel()
              local other, buf = mc.MessageChannel(), mc.Buffer("keep me")
              local bad = case[2](ch)
              local list = lists(bad, other.port2, buf)[pos]
              clone_error(ch.port1.postMessage, ch.port1,
                          { port = other.port2, buf = buf, n = pos }, form[2](list))
              nothing_arrived(ch.port2)
              entangled(ch.port1, ch.port2)
              entangled(other.port1, other.port2)
              assert.is_false(buf.detached)
              assert.equal("keep me", buf:sub())
            end
          end
        end)
    end

    for _, case in ipairs(bad_entries) do
      if not case.sending then
        it("raises DataCloneError in structuredClone for " .. case[1] .. ", moving nothing",
          function()
            for pos = 1, 3 do
              local other, buf = mc.MessageChannel(), mc.Buffer("keep me")
              local list = lists(case[2](), other.port2, buf)[pos]
              clone_error(mc.structuredClone, { port = other.port2, buf = buf },
                          { transfer = list })
              entangled(other.port1, other.port2)
              assert.is_false(buf.detached)
              assert.equal("keep me", buf:sub())
            end
          end)
      end
    end

    it("raises DataCloneError for an entry listed twice, moving nothing", function()
      for _, form in ipairs(forms) do
        local ch = mc.MessageChannel()
        local other, buf = mc.MessageChannel(), mc.Buffer("keep me")
        local data = { port = other.port2, buf = buf }
        for _, list in ipairs({
          { other.port2, other.port2 },
          { buf, buf },
          { buf, other.port2, buf },
          { other.port2, buf, other.port2 },
        }) do
          clone_error(ch.port1.postMessage, ch.port1, data, form[2](list))
          clone_error(mc.structuredClone, data, { transfer = list })
        end
        nothing_arrived(ch.port2)
        entangled(other.port1, other.port2)
        assert.is_false(buf.detached)
        assert.equal("keep me", buf:sub())
      end
    end)

    it("raises DataCloneError for a port in the data but not in the list", function()
      local ch = mc.MessageChannel()
      local other, buf = mc.MessageChannel(), mc.Buffer("keep me")
      local stray = mc.MessageChannel()
      local data = { port = other.port2, buf = buf, stray = stray.port1 }
      clone_error(ch.port1.postMessage, ch.port1, data, { other.port2, buf })
      clone_error(mc.structuredClone, data, { transfer = { other.port2, buf } })
      nothing_arrived(ch.port2)
      entangled(other.port1, other.port2)
      entangled(stray.port1, stray.port2)
      assert.is_false(buf.detached)
    end)

    it("raises DataCloneError for uncloneable data with a good list, moving nothing", function()
      local ch = mc.MessageChannel()
      local other, buf = mc.MessageChannel(), mc.Buffer("keep me")
      local data = { port = other.port2, buf = buf, f = print }
      clone_error(ch.port1.postMessage, ch.port1, data, { other.port2, buf })
      clone_error(mc.structuredClone, data, { transfer = { other.port2, buf } })
      nothing_arrived(ch.port2)
      entangled(other.port1, other.port2)
      assert.is_false(buf.detached)
      assert.equal("keep me", buf:sub())
    end)

    it("raises DataCloneError on a closed sending port too, moving nothing", function()
      local ch = mc.MessageChannel()
      local other, buf = mc.MessageChannel(), mc.Buffer("keep me")
      ch.port1:close()
      clone_error(ch.port1.postMessage, ch.port1, { buf = buf }, { other.port2, buf, {} })
      entangled(other.port1, other.port2)
      assert.is_false(buf.detached)
    end)
  end)

  describe("postMessage returning false", function()
    it("detaches nothing in the list, when this port or its partner is closed", function()
      for _, closer in ipairs({ "port1", "port2" }) do
        for _, form in ipairs(forms) do
          local ch = mc.MessageChannel()
          local other, buf = mc.MessageChannel(), mc.Buffer("keep me")
          ch[closer]:close()
          assert.is_false(ch.port1:postMessage({ port = other.port2, buf = buf },
                                               form[2]({ other.port2, buf })))
          entangled(other.port1, other.port2)
          assert.is_true(is_open(other.port2))
          assert.is_false(buf.detached)
          assert.equal("keep me", buf:sub())
        end
      end
    end)

    it("detaches nothing when the sending port itself was detached", function()
      local ch = mc.MessageChannel()
      local other, buf = mc.MessageChannel(), mc.Buffer("keep me")
      local new = moved(ch.port1)
      assert.is_false(ch.port1:postMessage({ buf = buf }, { other.port2, buf }))
      entangled(other.port1, other.port2)
      assert.is_false(buf.detached)
      entangled(new, ch.port2)
    end)
  end)

  describe("a transferred port", function()
    for _, form in ipairs(forms) do
      it("arrives as a new port object, in event.ports and in the data, transfer as "
         .. form[1], function()
        local a, via = mc.MessageChannel(), mc.MessageChannel()
        assert.is_true(via.port1:postMessage({ port = a.port2, again = { a.port2 } },
                                             form[2]({ a.port2 })))
        local ev = via.port2:receive(0)
        assert.equal(1, #ev.ports)
        local p = ev.ports[1]
        assert.is_true(is_port(p))
        assert.is_true(is_open(p))
        assert.is_false(rawequal(p, a.port2))
        assert.is_true(rawequal(p, ev.data.port))
        assert.is_true(rawequal(p, ev.data.again[1]))
        detached(a.port2)
        entangled(a.port1, p)
      end)
    end

    it("is the same object in data and event.ports for an onmessage listener", function()
      local a, via = mc.MessageChannel(), mc.MessageChannel()
      local seen = {}
      via.port2.onmessage = function(e)
        seen[#seen + 1] = rawequal(e.data, e.ports[1]) and is_open(e.data)
      end
      via.port1:postMessage(a.port2, { a.port2 })
      run()
      assert.same({ true }, seen)
    end)

    it("keeps its partner and its queued messages, in order", function()
      local a, via = mc.MessageChannel(), mc.MessageChannel()
      for i = 1, 3 do assert.is_true(a.port1:postMessage("queued " .. i)) end
      assert.is_true(via.port1:postMessage({ a.port2 }, { a.port2 }))
      local p = via.port2:receive(0).data[1]
      for i = 1, 3 do assert.equal("queued " .. i, p:receive(0).data) end
      nothing_arrived(p)
      entangled(a.port1, p)
    end)

    it("keeps its queued messages through two moves, for a listener", function()
      local a = mc.MessageChannel()
      a.port1:postMessage(1)
      local p = moved(a.port2)
      a.port1:postMessage(2)
      local q = moved(p)
      a.port1:postMessage(3)
      detached(p)
      local got = {}
      q.onmessage = function(e) got[#got + 1] = e.data end
      run()
      assert.same({ 1, 2, 3 }, got)
      entangled(a.port1, q)
    end)

    it("takes along messages queued at a started port that were not yet dispatched", function()
      local a = mc.MessageChannel()
      local old_got, new_got = {}, {}
      a.port2.onmessage = function(e) old_got[#old_got + 1] = e.data end
      a.port1:postMessage(1)
      a.port1:postMessage(2)
      local p = moved(a.port2)
      p.onmessage = function(e) new_got[#new_got + 1] = e.data end
      run()
      assert.same({}, old_got)
      assert.same({ 1, 2 }, new_got)
    end)

    it("arrives without the old object's listeners, not started", function()
      local a = mc.MessageChannel()
      local old_got = {}
      a.port2.onmessage = function(e) old_got[#old_got + 1] = e.data end
      local p = moved(a.port2)
      assert.is_nil(p.onmessage)
      a.port1:postMessage("held")
      run()
      assert.same({}, old_got)
      assert.equal("held", p:receive(0).data)
    end)

    it("can be moved with its partner in one message: the two stay entangled", function()
      local a, via = mc.MessageChannel(), mc.MessageChannel()
      via.port1:postMessage(nil, { a.port1, a.port2 })
      local ports = via.port2:receive(0).ports
      assert.equal(2, #ports)
      detached(a.port1)
      detached(a.port2)
      entangled(ports[1], ports[2])
    end)

    it("is not affected by close() on the detached old object", function()
      local a = mc.MessageChannel()
      local closes = {}
      a.port1.onclose = function() closes[#closes + 1] = "port1" end
      local p = moved(a.port2)
      p.onclose = function() closes[#closes + 1] = "moved" end
      assert.is_true(pcall(a.port2.close, a.port2))
      run()
      assert.same({}, closes)
      entangled(a.port1, p)
      a.port1:close()
      run()
      table.sort(closes)
      assert.same({ "moved", "port1" }, closes)
    end)

    it("closes its partner when it dies in transit, never received #gc", function()
      local closes = {}
      local port1 = (function()
        local a = mc.MessageChannel()
        a.port1.onclose = function(e) closes[#closes + 1] = e.type end
        local b = mc.MessageChannel()
        assert.is_true(b.port1:postMessage({ port = a.port2 }, { a.port2 }))
        b.port2:close()
        return a.port1
      end)()
      collect()
      assert.same({ "close" }, closes)
      assert.is_false(port1:postMessage("nobody"))
      assert.same({}, errors)
    end)

    it("closes its partner when the receiving channel is dropped unread #gc", function()
      local closes = {}
      local port1 = (function()
        local a = mc.MessageChannel()
        a.port1.onclose = function(e) closes[#closes + 1] = e.type end
        local b = mc.MessageChannel()
        b.port1:postMessage(nil, { a.port2 })
        return a.port1
      end)()
      collect()
      assert.same({ "close" }, closes)
      assert.is_false(port1:postMessage("nobody"))
    end)

    it("still arrives when the receiving port was closed but not collected", function()
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      b.port1:postMessage(nil, { a.port2 })
      b.port2:close()
      local ev = b.port2:receive(0)
      assert.is_table(ev)
      entangled(a.port1, ev.ports[1])
    end)
  end)

  describe("event.ports", function()
    it("lists the ports in transfer-list order, whatever the order in the data", function()
      local chans, ports = {}, {}
      for i = 1, 3 do
        chans[i] = mc.MessageChannel()
        chans[i].port1:postMessage("channel " .. i)
        ports[i] = chans[i].port2
      end
      local via = mc.MessageChannel()
      via.port1:postMessage({ ports[3], ports[1], ports[2] }, { ports[1], ports[2], ports[3] })
      local ev = via.port2:receive(0)
      assert.equal(3, #ev.ports)
      for i = 1, 3 do
        assert.equal("channel " .. i, ev.ports[i]:receive(0).data)
      end
      assert.is_true(rawequal(ev.data[1], ev.ports[3]))
      assert.is_true(rawequal(ev.data[2], ev.ports[1]))
      assert.is_true(rawequal(ev.data[3], ev.ports[2]))
    end)

    it("holds a port that is in the list but not in the data", function()
      local a, via = mc.MessageChannel(), mc.MessageChannel()
      via.port1:postMessage("no port in here", { a.port2 })
      local ev = via.port2:receive(0)
      assert.equal("no port in here", ev.data)
      assert.equal(1, #ev.ports)
      entangled(a.port1, ev.ports[1])
    end)

    it("holds only the ports, not the buffers, of the list", function()
      local a, b, via = mc.MessageChannel(), mc.MessageChannel(), mc.MessageChannel()
      local buf = mc.Buffer("x")
      via.port1:postMessage({ buf = buf }, { a.port2, buf, b.port2 })
      local ev = via.port2:receive(0)
      assert.equal(2, #ev.ports)
      entangled(a.port1, ev.ports[1])
      entangled(b.port1, ev.ports[2])
      assert.equal("x", ev.data.buf:sub())
    end)

    it("is {} when no port is transferred, with or without a list", function()
      local via = mc.MessageChannel()
      local buf = mc.Buffer("x")
      via.port1:postMessage("none")
      via.port1:postMessage("empty list", {})
      via.port1:postMessage({ buf = buf }, { buf })
      for _ = 1, 3 do
        local ports = via.port2:receive(0).ports
        assert.is_table(ports)
        assert.is_nil(next(ports))
      end
    end)
  end)

  describe("a transferred Buffer", function()
    for _, form in ipairs(forms) do
      it("moves: the old one is detached and empty, the new one has the bytes, transfer as "
         .. form[1], function()
        local via = mc.MessageChannel()
        local buf = mc.Buffer(helper.all_bytes)
        assert.is_true(via.port1:postMessage({ buf = buf, again = buf }, form[2]({ buf })))
        assert.is_true(buf.detached)
        assert.equal(0, #buf)
        -- every read and write raises, and the write changes nothing (API.md 5)
        for _, access in ipairs { function() return buf:sub() end,
                                function() return buf:sub(1, 1) end,
                                function() return buf:byte() end,
                                function() return buf:byte(1, 2) end,
                                function() return buf:write(1, "x") end } do
          local err = helper.error_of(access)
          assert.truthy(has(err, "InvalidStateError:"), err)
        end
        assert.equal(0, #buf)
        local data = via.port2:receive(0).data
        assert.truthy(helper.is_buffer(data.buf))
        assert.is_false(rawequal(buf, data.buf))
        assert.is_true(rawequal(data.buf, data.again))
        assert.is_false(data.buf.detached)
        assert.equal(256, #data.buf)
        assert.equal(helper.all_bytes, data.buf:sub())
      end)
    end

    it("not in the list is copied and the original stays", function()
      local via = mc.MessageChannel()
      local buf = mc.Buffer("copy me")
      via.port1:postMessage({ buf = buf })
      assert.is_false(buf.detached)
      local copy = via.port2:receive(0).data.buf
      assert.equal("copy me", copy:sub())
      copy:write(1, "C")
      assert.equal("copy me", buf:sub())
    end)

    it("can be transferred again from where it arrived", function()
      local via = mc.MessageChannel()
      local buf = mc.Buffer("twice")
      via.port1:postMessage(buf, { buf })
      local once = via.port2:receive(0).data
      via.port2:postMessage(once, { once })
      assert.is_true(once.detached)
      assert.equal("twice", via.port1:receive(0).data:sub())
    end)
  end)

  describe("mc.structuredClone with a transfer list", function()
    it("returns new port objects that work, with their queued messages", function()
      local a = mc.MessageChannel()
      a.port1:postMessage("queued")
      local c = mc.structuredClone({ p = a.port2, again = a.port2 }, { transfer = { a.port2 } })
      assert.is_true(is_port(c.p))
      assert.is_false(rawequal(c.p, a.port2))
      assert.is_true(rawequal(c.p, c.again))
      detached(a.port2)
      assert.equal("queued", c.p:receive(0).data)
      entangled(a.port1, c.p)
    end)

    it("moves both ports of a channel, which stay entangled", function()
      local a = mc.MessageChannel()
      local c = mc.structuredClone({ a.port1, a.port2 }, { transfer = { a.port1, a.port2 } })
      detached(a.port1)
      detached(a.port2)
      entangled(c[1], c[2])
    end)

    it("moves a Buffer", function()
      local buf = mc.Buffer("moved")
      local c = mc.structuredClone({ b = buf }, { transfer = { buf } })
      assert.is_true(buf.detached)
      assert.equal(0, #buf)
      assert.equal("moved", c.b:sub())
      assert.is_false(c.b.detached)
    end)
  end)

  describe("mc.serialize", function()
    it("raises DataCloneError for a port, alone or inside a table", function()
      local ch = mc.MessageChannel()
      clone_error(mc.serialize, ch.port1)
      clone_error(mc.serialize, { nested = { ch.port1 } })
      entangled(ch.port1, ch.port2)
    end)

    it("copies a Buffer and leaves it attached", function()
      local buf = mc.Buffer("bytes")
      local copy = mc.deserialize(mc.serialize(buf))
      assert.is_false(buf.detached)
      assert.equal("bytes", buf:sub())
      assert.equal("bytes", copy:sub())
    end)
  end)
end)
