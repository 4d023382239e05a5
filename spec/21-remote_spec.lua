-- Remote ports (API.md section 12, over Unix and TCP sockets; NATS is not
-- covered), with the rules they inherit from sections 2 (postMessage,
-- transfer lists), 3.4 (close after the queued messages), 6.2 (what keeps
-- mc.run() going) and 11 (bounded queues): mc.listen and mc.connect, the
-- listener, addresses and options, close reasons ("disconnected",
-- "timeout", "auth", "refused", "protocol", nil), heartbeats,
-- maxMessageSize, hostile bytes on the socket, Buffers and ports in
-- transfer lists, in-band close, capacity and back-pressure, mc.run()
-- draining closed links, close-on-exec descriptors, and remote ports moved
-- to workers and through local channels.
--
-- The partner is mostly another process: spec/remote/peer.lua (see its
-- header), spec/remote/proxy.lua (a throttling LuaSocket proxy) or a raw
-- LuaSocket client speaking the wire format; some rules are checked on a
-- link within this process too. Every wait is for an event, a line of a
-- peer's output or a condition, under a generous bound (R.WAIT), with the
-- scheduler running. Nothing asserts speed but one spec, which gives 16 MiB
-- over a local socket 10 s (a writer that stalls until a timer between
-- batches needs far more). Heartbeats of 0.2 s are used where a timeout is
-- the point, 0.3 s where a link must stay open through many of them. Every
-- peer is killed and reaped after each spec, every listener and port
-- closed.

local mc = require "messagechannel"
local helper = require "spec.helper"
local R = require "spec.remote.helper"

local has = helper.has

-- Listeners and ports a spec made, closed after it.
local made = {}

local function track(x)
  made[#made + 1] = x
  return x
end

local function listen(address, options)
  return track(mc.listen(address, options))
end

local function connect(address, options)
  return track(mc.connect(address, options))
end

local function close_made()
  for i = #made, 1, -1 do
    pcall(made[i].close, made[i])
    made[i] = nil
  end
end

local function is_closed(port)
  return tostring(port) == "MessagePort (closed)"
end

-- Records what reaches port: rec.data (each message's data), rec.log
-- ("message" / "close" in order), rec.closed, rec.reason and rec.event
-- (the close event). Starts the port unless `hold`.
local function watch(port, hold)
  local rec = { data = {}, log = {}, closed = false }
  if not hold then
    port.onmessage = function(e)
      rec.data[#rec.data + 1] = e.data
      rec.log[#rec.log + 1] = "message"
    end
  end
  port.onclose = function(e)
    rec.closed = true
    rec.reason = e.reason
    rec.event = e
    rec.log[#rec.log + 1] = "close"
  end
  return rec
end

local function await_close(rec, timeout)
  R.await("the close event", function() return rec.closed end, timeout)
end

local function await_count(rec, n)
  R.await(n .. " messages", function() return #rec.data >= n end)
end

-- Accepts the links of listener l: acc.ports, each port kept and closed
-- after the spec.
local function accepting(l)
  local acc = { ports = {} }
  l.onconnect = function(e)
    acc.ports[#acc.ports + 1] = track(e.port)
  end
  return acc
end

local function await_link(acc, n)
  n = n or 1
  R.await("a link at the listener", function() return #acc.ports >= n end)
  return acc.ports[n]
end

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

-- The frames a raw client got, as "H", "P", "C<reason>" tags.
local function tags(bytes)
  local t = {}
  for _, f in ipairs((R.frames(bytes))) do
    t[#t + 1] = f.type .. (f.type == "C" and f.body:byte() or "")
  end
  return t
end

-- The address kinds every basic rule runs over.
local kinds = {
  unix = function() return R.unix_address() end,
  tcp = function() return "tcp:127.0.0.1:0" end,
}
local kind_names = { "unix", "tcp" }

describe("remote ports (API.md 12)", function()
  local errors, catch, release = helper.error_hooks(2)

  before_each(catch)

  after_each(function()
    R.close_raw()
    close_made()
    R.cleanup()
    release()
  end)

  ---------------------------------------------------------------------------
  describe("mc.listen and mc.connect", function()
    it("listen on tcp port 0 reports the port the system chose", function()
      local l = listen("tcp:127.0.0.1:0")
      local port = l.address:match("^tcp:127%.0%.0%.1:(%d+)$")
      assert.truthy(port, l.address)
      assert.is_true(tonumber(port) > 0)
      assert.truthy(has(tostring(l), l.address), tostring(l))
      -- another process reaches it there
      local acc = accepting(l)
      local peer = R.peer("connect", l.address)
      local p = await_link(acc)
      local rec = watch(p)
      p:postMessage({ cmd = "say", text = "reached" })
      peer:expect("said reached")
      await_count(rec, 1)
      assert.same({ said = "reached" }, rec.data[1])
    end)

    it("listen on a unix path reports the address as given", function()
      local address = R.unix_address()
      local l = listen(address)
      assert.equal(address, l.address)
      assert.is_true(R.exists(address:sub(6)))
    end)

    it("listen on a host name keeps the name, with the chosen port", function()
      local l = listen("tcp:localhost:0")
      assert.truthy(l.address:match("^tcp:localhost:%d+$"), l.address)
      assert.is_nil(l.address:match(":0$"))
    end)

    it("connect tries each address a host name resolves to, in order: a "
       .. "name that resolves to ::1 first reaches a listener on 127.0.0.1 "
       .. "(cf. nodejs/node#40702)", function()
      -- the peer resolves mc-two-addresses.test to ::1, then 127.0.0.1
      -- (spec/remote/resolve.c, which make builds)
      local shim = "build/test/resolve.so"
      if not R.exists(shim) then
        return pending("needs " .. shim .. ": run make specs")
      end
      local l = listen("tcp:127.0.0.1:0")
      local acc = accepting(l)
      local preload = ((os.getenv("LD_PRELOAD") or "") .. " "
                       .. shim):gsub("^ ", "")
      R.spawn_env("LD_PRELOAD=" .. R.quote(preload), "spec/remote/peer.lua",
                  "connect", "tcp:mc-two-addresses.test:"
                  .. l.address:match(":(%d+)$"))
      local p = await_link(acc)
      local rec = watch(p)
      p:postMessage("through the second address")
      await_count(rec, 1)
      assert.equal("through the second address", rec.data[1])
    end)

    it("a host name whose every address refuses closes the port with "
       .. "'refused'", function()
      local l = listen("tcp:127.0.0.1:0")
      local port = l.address:match(":(%d+)$")
      l:close()
      mc.sleep(0.05)  -- let the listener's socket go (mc.run() would too)
      local p = connect("tcp:localhost:" .. port)
      local rec = watch(p)
      await_close(rec)
      assert.equal("refused", rec.reason)
    end)

    for _, kind in ipairs(kind_names) do
      describe("over " .. kind, function()
        it("carries messages both ways, in order, to a listening peer", function()
          local _, address = R.listening_peer(kinds[kind]())
          local p = connect(address)
          local rec = watch(p)
          for i = 1, 200 do assert.is_true(p:postMessage(i)) end
          await_count(rec, 200)
          assert.same(range(200), rec.data)
          assert.is_false(rec.closed)
        end)

        it("carries messages both ways, in order, from a connecting peer",
           function()
          local l = listen(kinds[kind]())
          local acc = accepting(l)
          R.peer("connect", l.address)
          local p = await_link(acc)
          local rec = watch(p)
          for i = 1, 200 do assert.is_true(p:postMessage("m" .. i)) end
          await_count(rec, 200)
          for i = 1, 200 do assert.equal("m" .. i, rec.data[i]) end
        end)

        it("keeps tables, integers, floats and strings through a round trip",
           function()
          local _, address = R.listening_peer(kinds[kind]())
          local p = connect(address)
          local rec = watch(p)
          local shared = { "shared" }
          local cyclic = { name = "cycle" }
          cyclic.self = cyclic
          local values = {
            0, 1, -1, 42, 2 ^ 53, 1.5, -0.25, helper.negzero, helper.nan,
            math.huge, -math.huge, 1e308, 5e-324,
            "", "bytes\0\1\255", string.rep("long ", 1000), true, false,
            { 1, 2, 3, n = 3, [1.5] = "float key", [true] = "bool key" },
            { a = shared, b = shared, list = { shared } },
            cyclic,
            { [shared] = "table as key", other = shared },
          }
          if helper.maxinteger then
            values[#values + 1] = helper.maxinteger
            values[#values + 1] = helper.mininteger
            values[#values + 1] = 3.0      -- a float stays a float
            values[#values + 1] = { i = 7, f = 7.0 }
          end
          for _, v in ipairs(values) do assert.is_true(p:postMessage(v)) end
          await_count(rec, #values)
          for i, v in ipairs(values) do
            local ok, err = helper.same_graph(v, rec.data[i])
            assert(ok, ("value %d (%s): %s"):format(i, tostring(v), tostring(err)))
          end
          if helper.math_type then
            assert.equal("float", helper.math_type(rec.data[#values].f))
            assert.equal("integer", helper.math_type(rec.data[#values].i))
          end
        end)
      end)
    end

    it("postMessage() with no argument sends nil", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local got = {}
      p.onmessage = function(e) got[#got + 1] = { e.data } end
      p:postMessage()
      p:postMessage("after")
      R.await("two echoes", function() return #got == 2 end)
      assert.is_nil(got[1][1])
      assert.equal("after", got[2][1])
    end)

    it("connect returns a port at once; what is posted before the link is up "
       .. "waits in its queue", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      assert.truthy(helper.is_open_port_name(tostring(p)), tostring(p))
      for i = 1, 10 do assert.is_true(p:postMessage(i)) end
      local rec = watch(p)
      await_count(rec, 10)
      assert.same(range(10), rec.data)
    end)

    it("gives a connect event to onconnect and to connect listeners, with "
       .. "event.port", function()
      local l = listen(R.unix_address())
      local log = {}
      local kept = {}
      l.onconnect = function(e)
        log[#log + 1] = "onconnect"
        kept[#kept + 1] = track(e.port)
        assert.equal("connect", e.type)
        assert.is_true(rawequal(l, e.target))
        assert.truthy(helper.is_port(e.port))
      end
      l:addEventListener("connect", function(e)
        log[#log + 1] = "listener " .. tostring(helper.is_port(e.port))
      end)
      R.peer("connect", l.address)
      R.await("the connect event", function() return #log >= 2 end)
      assert.same({ "onconnect", "listener true" }, log)
      -- the port works
      local rec = watch(kept[1])
      kept[1]:postMessage("hi")
      await_count(rec, 1)
      assert.equal("hi", rec.data[1])
    end)

    it("a Listener rejects unknown fields and a non-function onconnect",
       function()
      local l = listen(R.unix_address())
      local err = helper.error_of(function() l.onconect = function() end end)
      assert.truthy(has(err, "onconect"), err)
      err = helper.error_of(function() l.onconnect = 42 end)
      assert.truthy(has(err, "TypeError:"), err)
      l.onconnect = function() end
      l.onconnect = nil
      assert.is_nil(l.onconnect)
    end)

    for _, kind in ipairs(kind_names) do
      it("listener:close() keeps the links made, takes no new ones (" .. kind
         .. ")", function()
        local l = listen(kinds[kind]())
        local acc = accepting(l)
        R.peer("connect", l.address)
        local p = await_link(acc)
        local rec = watch(p)
        l:close()
        assert.truthy(has(tostring(l), "closed"), tostring(l))
        p:postMessage("still linked")
        await_count(rec, 1)
        assert.equal("still linked", rec.data[1])
        -- a new connection finds nobody
        local late = connect(l.address)
        local lrec = watch(late)
        await_close(lrec)
        assert.equal("refused", lrec.reason)
        assert.equal(1, #acc.ports)
        p:postMessage("again")
        await_count(rec, 2)
        assert.is_false(rec.closed)
      end)
    end

    it("removes a unix socket's path once the listener is closed", function()
      local address = R.unix_address()
      local l = listen(address)
      local path = address:sub(6)
      assert.is_true(R.exists(path))
      l:close()
      R.await("the socket path to go",
              function() return not R.exists(path) end)
      -- the address can be listened on again then
      local l2 = listen(address)
      assert.equal(address, l2.address)
    end)

    for _, kind in ipairs(kind_names) do
      it("frees the address when listener:close() returns: listening there "
         .. "again works at once (" .. kind .. ")", function()
        local l = listen(kinds[kind]())
        local address = l.address
        l:close()
        local ok, l2 = pcall(mc.listen, address)
        assert(ok, l2)
        track(l2)
        assert.equal(address, l2.address)
        local acc = accepting(l2)
        local p = connect(address)
        await_link(acc)
        assert.is_false(is_closed(p))
      end)
    end

    for _, kind in ipairs(kind_names) do
      it("raises for an address in use, naming it (" .. kind .. ")", function()
        local l = listen(kinds[kind]())
        local err = helper.error_of(mc.listen, l.address)
        assert.truthy(has(err, l.address), err)
        assert.truthy(has(err, "in use"), err)
        -- the first listener still works
        local acc = accepting(l)
        local p = connect(l.address)
        await_link(acc)
        assert.is_false(is_closed(p))
      end)
    end

    it("raises for an address a peer process listens on", function()
      local _, address = R.listening_peer(R.unix_address())
      local err = helper.error_of(mc.listen, address)
      assert.truthy(has(err, address), err)
    end)

    it("raises bad argument for a malformed address", function()
      local bad = { "", "foo", "unix:", "tcp:", "tcp:127.0.0.1",
                    "tcp:127.0.0.1:", "tcp:127.0.0.1:x", "tcp:127.0.0.1:-1",
                    "tcp:127.0.0.1:70000", "tcp:127.0.0.1:123456",
                    "tcp::80", "udp:127.0.0.1:80", "http://x",
                    -- brackets: an IPv6 address in them, nothing else
                    "tcp:[::1:80", "tcp:[::1]]:0", "tcp:a]:0", "tcp:[a:0",
                    "tcp:[127.0.0.1]:0", "tcp:[]:0", "tcp:::1:0",
                    "tcp:[[::1]]:0",
                    "unix:/" .. string.rep("a", 120), "unix:/a\0b" }
      for _, f in ipairs { "listen", "connect" } do
        for _, a in ipairs(bad) do
          local err = helper.error_of(mc[f], a)
          assert.truthy(has(err, "bad argument #1 to '" .. f .. "'"),
                        ("%s(%q): %s"):format(f, a, err))
        end
        for _, v in ipairs { 42, true, {} } do
          local err = helper.error_of(mc[f], v)
          assert.truthy(has(err, "bad argument #1 to '" .. f .. "'"), err)
        end
        local err = helper.error_of(mc[f])
        assert.truthy(has(err, "bad argument #1 to '" .. f .. "'"), err)
      end
    end)

    it("names the malformed address in the error", function()
      for _, a in ipairs { "foo", "tcp:127.0.0.1:x", "unix:", "tcp::80" } do
        local err = helper.error_of(mc.connect, a)
        assert.truthy(has(err, "'" .. a .. "'"), ("%q: %s"):format(a, err))
      end
    end)

    it("raises for an unknown option, naming it", function()
      for _, f in ipairs { "listen", "connect" } do
        local address = f == "listen" and "tcp:127.0.0.1:0"
                                      or "tcp:127.0.0.1:1"
        local err = helper.error_of(mc[f], address, { tokn = "x" })
        assert.truthy(has(err, "tokn"), err)
        assert.truthy(has(err, "bad argument #2"), err)
        err = helper.error_of(mc[f], address, { "positional" })
        assert.truthy(has(err, "bad argument #2"), err)
        err = helper.error_of(mc[f], address, 5)
        assert.truthy(has(err, "bad argument #2"), err)
      end
    end)

    it("raises for bad option values", function()
      local bad = {
        capacity = { 0, -1, 1.5, "3", true, 0 / 0, math.huge },
        heartbeat = { 0, -1, "5", true, 0 / 0, math.huge },
        maxMessageSize = { 0, -1, 1.5, "10", true, 0 / 0, math.huge },
        token = { 5, true, {}, string.rep("t", 5000) },
      }
      for _, f in ipairs { "listen", "connect" } do
        local address = f == "listen" and "tcp:127.0.0.1:0"
                                      or "tcp:127.0.0.1:1"
        for name, values in pairs(bad) do
          for _, v in ipairs(values) do
            local err = helper.error_of(mc[f], address, { [name] = v })
            assert.truthy(has(err, "bad argument #2 to '" .. f .. "'"),
                          ("%s %s=%s: %s"):format(f, name, tostring(v), err))
            assert.truthy(has(err, name), err)
          end
        end
      end
      -- good values are taken
      local l = listen("tcp:127.0.0.1:0", { token = "t", capacity = 1,
                                            heartbeat = 0.5,
                                            maxMessageSize = 1 })
      assert.truthy(l.address)
    end)

    it("connect and listen with options work together", function()
      local opts = { token = "tok", capacity = 3, heartbeat = 10,
                     maxMessageSize = 100000 }
      local l = listen(R.unix_address(), opts)
      local acc = accepting(l)
      local p = connect(l.address, opts)
      local rec = watch(p)
      local q = await_link(acc)
      local qrec = watch(q)
      p:postMessage("to listener")
      q:postMessage("to connector")
      await_count(rec, 1)
      await_count(qrec, 1)
      assert.same({ "to connector" }, rec.data)
      assert.same({ "to listener" }, qrec.data)
    end)
  end)

  ---------------------------------------------------------------------------
  describe("a peer killed with SIGKILL", function()
    it("closes the pair with reason 'disconnected', after the messages it "
       .. "sent", function()
      local l = listen(R.unix_address())
      local acc = accepting(l)
      local peer = R.peer("connect", l.address)
      local p = await_link(acc)
      local rec = watch(p, true)  -- held: nothing dispatched yet
      p:postMessage({ cmd = "burst", n = 100 })
      R.await("100 messages at the port", function() return p:pending() == 100 end)
      assert.is_true(peer:signal("KILL"))
      R.await("the pair to close", function() return is_closed(p) end)
      assert.is_false(rec.closed)  -- the close waits behind the messages
      local got = {}
      p.onmessage = function(e) got[#got + 1] = e.data.i end
      await_close(rec)
      assert.same(range(100), got)
      assert.equal("disconnected", rec.reason)
      assert.same({ false, "closed" }, { p:postMessage("late") })
    end)

    it("closes a connected port with 'disconnected' when the listening peer "
       .. "dies", function()
      local peer, address = R.listening_peer("tcp:127.0.0.1:0")
      local p = connect(address)
      local rec = watch(p)
      p:postMessage("ping")
      await_count(rec, 1)
      peer:signal("KILL")
      await_close(rec)
      assert.equal("disconnected", rec.reason)
      assert.same({ "message", "close" }, rec.log)
      assert.is_true(is_closed(p))
    end)

    it("never resumes the link: a new peer at the address is a new link",
       function()
      local address = R.unix_address()
      local peer = R.listening_peer(address)
      local p = connect(address)
      local rec = watch(p)
      p:postMessage(1)
      await_count(rec, 1)
      peer:signal("KILL")
      await_close(rec)
      assert.is_true(peer:wait_end())
      -- the dead listener left its socket file; a new peer takes a new path
      local _, address2 = R.listening_peer(R.unix_address())
      local p2 = connect(address2)
      local rec2 = watch(p2)
      p2:postMessage(2)
      await_count(rec2, 1)
      assert.same({ false, "closed" }, { p:postMessage(3) })
      assert.same({ 1 }, rec.data)
    end)
  end)

  ---------------------------------------------------------------------------
  describe("heartbeats", function()
    it("a stopped peer (SIGSTOP) closes the pair with 'timeout'; continued, "
       .. "it sees a close too", function()
      -- 3 heartbeats of silence close the link: a stall that long
      -- before the STOP would too
      local l = listen(R.unix_address(), { heartbeat = R.SLOW })
      local acc = accepting(l)
      local peer = R.peer("connect", l.address)
      local p = await_link(acc)
      local rec = watch(p)
      p:postMessage("up")
      await_count(rec, 1)
      assert.is_true(peer:signal("STOP"))
      await_close(rec)
      assert.equal("timeout", rec.reason)
      assert.is_true(peer:signal("CONT"))
      local reason = peer:expect("close (%S+)")
      assert.equal("timeout", reason)  -- we told it first
    end)

    it("a stopped listening peer times out a connected port", function()
      local peer, address = R.listening_peer("tcp:127.0.0.1:0")
      local p = connect(address, { heartbeat = R.SLOW })
      local rec = watch(p)
      p:postMessage("up")
      await_count(rec, 1)
      peer:signal("STOP")
      await_close(rec)
      assert.equal("timeout", rec.reason)
      peer:signal("CONT")
      assert.truthy(peer:expect("close (%S+)"))
    end)

    it("keeps an idle link open for many heartbeats, whichever side has the "
       .. "shorter one", function()
      local hb = R.SLOW  -- a stall of 3 heartbeats would close the link
      local l = listen(R.unix_address(), { heartbeat = 5 * R.SLOW })
      local acc = accepting(l)
      local p = connect(l.address, { heartbeat = hb })
      local rec = watch(p)
      local q = await_link(acc)
      local qrec = watch(q)
      mc.sleep(4 * hb)  -- 4 of the short heartbeats, silent but for pings
      assert.is_false(rec.closed, "closed: " .. tostring(rec.reason))
      assert.is_false(qrec.closed, "closed: " .. tostring(qrec.reason))
      p:postMessage("still there")
      await_count(qrec, 1)
    end)

    it("a peer whose Lua state computes for many heartbeats keeps its link",
       function()
      local _, address = R.listening_peer(R.unix_address())
      local hb = R.SLOW  -- a stall of 3 heartbeats would close the link
      local p = connect(address, { heartbeat = hb })
      local rec = watch(p)
      p:postMessage({ cmd = "busy", seconds = 4 * hb })  -- > 3 heartbeats
      await_count(rec, 1)
      assert.same({ busy = "done" }, rec.data[1])
      assert.is_false(rec.closed)
    end)

    it("this Lua state computing for many heartbeats keeps its link",
       function()
      if R.sanitizer == "valgrind" then
        return pending("valgrind runs one thread at a time: a busy state "
                       .. "starves the network thread")
      end
      local hb = R.SLOW  -- a stall of 3 heartbeats would close the link
      local _, address = R.listening_peer(R.unix_address(), "heartbeat=" .. hb)
      local p = connect(address, { heartbeat = hb })
      local rec = watch(p)
      p:postMessage("before")
      await_count(rec, 1)
      local t = os.clock()
      while os.clock() - t < 4 * hb do end  -- no turn for > 3 heartbeats
      p:postMessage("after")
      await_count(rec, 2)
      assert.same({ "before", "after" }, rec.data)
      assert.is_false(rec.closed)
    end)

    it("each side announces its own heartbeat in its HELLO, 5 s by default",
       function()
      for _, case in ipairs { { nil, 5000 }, { 0.25, 250 }, { 2, 2000 } } do
        local l = listen(R.unix_address(), { heartbeat = case[1] })
        local acc = accepting(l)
        local c = R.raw(l.address)
        R.send_all(c, R.hello(nil, 60000))
        local bytes = R.read_until(c, function(s) return #R.frames(s) >= 1 end)
        local f = R.frames(bytes)[1]
        assert.equal("H", f.type)
        assert.equal("mcl1", f.body:sub(1, 4))
        assert.equal(case[2], R.get_u32(f.body, 5))
        assert.equal(8, #f.body)  -- no token
        await_link(acc)
      end
    end)

    it("a raw client that sends HELLO and then nothing times out", function()
      local l = listen(R.unix_address(), { heartbeat = 0.2 })
      local acc = accepting(l)
      local c = R.raw(l.address)
      R.send_all(c, R.hello(nil, 200))
      local p = await_link(acc)
      local rec = watch(p)
      local bytes = R.read_to_end(c)
      await_close(rec)
      assert.equal("timeout", rec.reason)
      local t = tags(bytes)
      assert.equal("H", t[1])
      assert.equal("C1", t[#t])  -- the reason told first: 1 is timeout
    end)
  end)

  ---------------------------------------------------------------------------
  describe("tokens", function()
    it("a peer with the wrong token gets 'auth' and never reaches onconnect",
       function()
      local l = listen(R.unix_address(), { token = "right" })
      local acc = accepting(l)
      local bad = R.peer("connect", l.address, "token=wrong")
      assert.equal("auth", bad:expect("close (%S+)"))
      assert.equal(0, #acc.ports)
      -- the listener keeps working for the right token
      local good = R.peer("connect", l.address, "token=right")
      local p = await_link(acc)
      local rec = watch(p)
      p:postMessage({ cmd = "say", text = "ok" })
      good:expect("said ok")
      await_count(rec, 1)
      mc.sleep(0.2)
      assert.equal(1, #acc.ports)
    end)

    it("a connecting port with the wrong token, or none, closes with 'auth'",
       function()
      local peer, address = R.listening_peer(R.unix_address(), "token=right")
      for _, opts in ipairs { { token = "wrong" }, {}, { token = "" },
                              { token = "right\0" } } do
        local p = connect(address, opts)
        local rec = watch(p)
        p:postMessage("never delivered")
        await_close(rec)
        assert.equal("auth", rec.reason)
        assert.same({}, rec.data)
      end
      assert.is_nil(peer:find("connect"))
      local p = connect(address, { token = "right" })
      local rec = watch(p)
      p:postMessage("delivered")
      await_count(rec, 1)
    end)

    it("a token at the connecting side only is a mismatch", function()
      local l = listen(R.unix_address())
      local acc = accepting(l)
      local p = connect(l.address, { token = "extra" })
      local rec = watch(p)
      await_close(rec)
      assert.equal("auth", rec.reason)
      assert.equal(0, #acc.ports)
    end)

    it("a client without the token cannot learn it from the listener, nor "
       .. "get through by replaying what it says", function()
      local token = "s3cret-token"
      local l = listen(R.unix_address(), { token = token })
      local acc = accepting(l)
      -- what the listener says before the client has presented anything
      local c = R.raw(l.address)
      local first = R.read_until(c, function(s) return #R.frames(s) >= 1 end,
                                 0.5)
      assert.is_nil(first:find(token, 1, true),
                    "the listener sent its token to an unauthenticated client")
      -- sent back as the client's own HELLO (or an empty one)
      local f = R.frames(first)[1]
      R.send_all(c, f and f.type == "H" and R.frame("H", f.body) or R.hello())
      local rest = R.read_to_end(c)
      assert.is_nil(rest:find(token, 1, true))
      assert.equal(0, #acc.ports,
                   "a client that never knew the token reached onconnect")
      -- a wrong guess: no HELLO back, the reason instead
      c = R.raw(l.address)
      R.send_all(c, R.hello("guess"))
      local bytes, ended = R.read_to_end(c)
      assert.is_true(ended)
      assert.is_nil(bytes:find(token, 1, true))
      assert.same({ "C3" }, tags(bytes))
      assert.equal(0, #acc.ports)
    end)
  end)

  ---------------------------------------------------------------------------
  describe("nobody listening", function()
    it("closes a unix port with 'refused' when the path does not exist",
       function()
      local p = connect("unix:" .. R.tmpdir() .. "/nobody")
      local rec = watch(p)
      await_close(rec)
      assert.equal("refused", rec.reason)
      assert.same({ false, "closed" }, { p:postMessage("x") })
    end)

    it("closes a unix port with 'refused' at a socket nobody listens on",
       function()
      local unix = require "socket.unix"
      local path = R.tmpdir() .. "/stale"
      local s = assert((unix.stream or unix)())
      assert(s:bind(path))
      s:close()  -- the file stays, nobody listens
      assert.is_true(R.exists(path))
      local p = connect("unix:" .. path)
      local rec = watch(p)
      await_close(rec)
      assert.equal("refused", rec.reason)
    end)

    it("closes a tcp port with 'refused' when the port is closed", function()
      local socket = require "socket"
      local s = assert(socket.bind("127.0.0.1", 0))
      local _, port = s:getsockname()
      s:close()
      local p = connect("tcp:127.0.0.1:" .. port)
      local rec = watch(p)
      p:postMessage("queued, never sent")
      await_close(rec)
      assert.equal("refused", rec.reason)
      assert.same({}, rec.data)
    end)

    it("a refused port's receive() ends with nil, 'closed'", function()
      local p = connect("unix:" .. R.tmpdir() .. "/nobody")
      assert.same({ nil, "closed" }, { p:receive(R.WAIT) })
    end)
  end)

  ---------------------------------------------------------------------------
  describe("maxMessageSize", function()
    it("raises DataCloneError at postMessage for a larger message; nothing "
       .. "is sent", function()
      local _, address = R.listening_peer(R.unix_address())
      local limit = 1000
      local p = connect(address, { maxMessageSize = limit })
      local rec = watch(p)
      -- a string whose clone is exactly `limit` bytes
      local over = #mc.serialize("") -- the format's overhead for a string
      local fits = string.rep("a", limit - over)
      while #mc.serialize(fits) > limit do fits = fits:sub(2) end
      while #mc.serialize(fits .. "a") <= limit do fits = fits .. "a" end
      local err = helper.error_of(p.postMessage, p, fits .. "a")
      assert.truthy(has(err, "DataCloneError:"), err)
      assert.truthy(has(err, "maxMessageSize"), err)
      -- a Buffer counts too; a post that raises detaches nothing
      local b = mc.Buffer(limit + 1)
      err = helper.error_of(p.postMessage, p, { b = b }, { b })
      assert.truthy(has(err, "DataCloneError:"), err)
      assert.is_false(b.detached)
      err = helper.error_of(p.postMessage, p, { b = b }, { transfer = { b },
                                                           timeout = 0 })
      assert.truthy(has(err, "DataCloneError:"), err)
      assert.is_false(b.detached)
      assert.is_true(p:postMessage(fits))  -- exactly the limit passes
      assert.is_true(p:postMessage("next"))
      await_count(rec, 2)
      assert.same({ fits, "next" }, rec.data)
      assert.is_false(rec.closed)
    end)

    it("has a default of 16 MiB", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local big = string.rep("x", 16 * 1024 * 1024)
      local err = helper.error_of(p.postMessage, p, big)
      assert.truthy(has(err, "DataCloneError:"), err)
      big = nil  -- luacheck: ignore
      collectgarbage()
      local rec = watch(p)
      local under = string.rep("y", 1024 * 1024)
      assert.is_true(p:postMessage(under))
      await_count(rec, 1)
      assert.equal(#under, #rec.data[1])
    end)

    it("a peer's larger message closes the pair with 'protocol' on both "
       .. "sides", function()
      local peer, address = R.listening_peer(R.unix_address())
      local p = connect(address, { maxMessageSize = 1000 })
      local rec = watch(p)
      p:postMessage({ cmd = "big", size = 500 })
      await_count(rec, 1)
      p:postMessage({ cmd = "big", size = 5000 })
      await_close(rec)
      assert.equal("protocol", rec.reason)
      assert.equal(1, #rec.data)
      assert.equal("protocol", peer:expect("close (%S+)"))
    end)

    it("a larger frame from a raw client closes its port with 'protocol'",
       function()
      local l = listen(R.unix_address(), { maxMessageSize = 100 })
      local acc = accepting(l)
      local c = R.raw(l.address)
      R.send_all(c, R.hello())
      local p = await_link(acc)
      local rec = watch(p)
      R.send_all(c, R.msg(string.rep("z", 50)))
      await_count(rec, 1)
      R.send_all(c, R.msg(string.rep("z", 200)))
      local bytes = R.read_to_end(c)
      await_close(rec)
      assert.equal("protocol", rec.reason)
      assert.equal(1, #rec.data)
      assert.equal("C2", tags(bytes)[#tags(bytes)])
    end)

    it("a frame head announcing a huge length closes the link with "
       .. "'protocol' at once", function()
      local l = listen(R.unix_address(), { maxMessageSize = 100 })
      local acc = accepting(l)
      local c = R.raw(l.address)
      R.send_all(c, R.hello())
      local p = await_link(acc)
      local rec = watch(p)
      R.send_all(c, R.u32(1000000) .. "M")  -- no body follows
      await_close(rec)
      assert.equal("protocol", rec.reason)
    end)
  end)

  ---------------------------------------------------------------------------
  describe("hostile bytes at a listener", function()
    local openings = {
      ["text instead of frames"] = "GET / HTTP/1.0\r\n\r\n",
      ["a HELLO with the wrong magic"] = R.frame("H", "mcl2" .. R.u32(1000)),
      ["a HELLO with heartbeat 0"] = R.frame("H", "mcl1" .. R.u32(0)),
      ["a HELLO too short"] = R.frame("H", "mcl"),
      ["a HELLO with a 5000-byte token"] =
        R.frame("H", "mcl1" .. R.u32(1000) .. string.rep("t", 5000)),
      ["a message before HELLO"] = R.msg("early"),
      ["a PING before HELLO"] = R.PING,
      ["an unknown frame type"] = R.frame("Z", "abc"),
      ["a zero length"] = R.u32(0) .. "H",
      ["a 4 GiB length"] = "\255\255\255\255H",
    }
    local names = {}
    for name in pairs(openings) do names[#names + 1] = name end
    table.sort(names)

    for _, name in ipairs(names) do
      it(name .. ": the link never reaches onconnect, is told 'protocol', "
         .. "and the listener keeps working", function()
        local l = listen(R.unix_address(), { heartbeat = 2 })
        local acc = accepting(l)
        local c = R.raw(l.address)
        R.send_all(c, openings[name])
        local bytes, ended = R.read_to_end(c)
        assert.is_true(ended, "the listener did not close the link")
        local t = tags(bytes)
        assert.equal("C2", t[#t], table.concat(t, ","))
        assert.equal(0, #acc.ports)
        -- a good peer next
        local peer = R.peer("connect", l.address)
        local p = await_link(acc)
        local rec = watch(p)
        p:postMessage({ cmd = "say", text = "fine" })
        peer:expect("said fine")
        await_count(rec, 1)
        assert.equal(1, #acc.ports)
      end)
    end

    it("a client that hangs up in the middle of its HELLO never reaches "
       .. "onconnect", function()
      local l = listen(R.unix_address())
      local acc = accepting(l)
      for cut = 1, 12 do
        local c = R.raw(l.address)
        R.send_all(c, R.hello("", 1000):sub(1, cut))
        c:close()
      end
      local p = connect(l.address)
      await_link(acc)
      mc.sleep(0.2)
      assert.equal(1, #acc.ports)
      assert.is_false(is_closed(p))
    end)

    it("a client that connects and says nothing never reaches onconnect",
       function()
      local l = listen(R.unix_address(), { heartbeat = 0.2 })
      local acc = accepting(l)
      local c = R.raw(l.address)
      local bytes, ended = R.read_to_end(c)
      assert.is_true(ended)
      local t = tags(bytes)
      assert.equal("C1", t[#t], table.concat(t, ","))  -- timeout
      assert.equal(0, #acc.ports)
    end)

    local later = {
      ["a second HELLO"] = { R.hello(), "protocol", "C2" },
      ["an unknown frame type"] = { R.frame("Z", ""), "protocol", "C2" },
      ["a CLOSE with an unknown reason"] = { R.frame("C", "\9"), "protocol" },
      ["a CLOSE with a long body"] = { R.frame("C", "\0\0"), "protocol",
                                       "C2" },
      ["a PING with a body"] = { R.frame("P", "x"), "protocol", "C2" },
      ["a MSG whose buffer lengths overrun it"] =
        { R.frame("M", R.u32(1) .. R.u64(1000) .. "x"), "protocol", "C2" },
      ["a MSG with no message bytes"] = { R.frame("M", R.u32(0)), "protocol",
                                          "C2" },
      ["a CLOSE with reason auth"] = { R.close_frame(3), "auth" },
      ["a CLOSE with no reason"] = { R.close_frame(0), nil },
      ["end of file"] = { "", "disconnected" },
    }
    local lnames = {}
    for name in pairs(later) do lnames[#lnames + 1] = name end
    table.sort(lnames)

    for _, name in ipairs(lnames) do
      local case = later[name]
      it("after a good HELLO, " .. name .. " closes the port with "
         .. tostring(case[2]), function()
        local l = listen(R.unix_address(), { heartbeat = 2 })
        local acc = accepting(l)
        local c = R.raw(l.address)
        R.send_all(c, R.hello(nil, 2000) .. R.msg("first"))
        local p = await_link(acc)
        local rec = watch(p)
        await_count(rec, 1)
        if case[1] == "" then c:shutdown("send") else R.send_all(c, case[1]) end
        await_close(rec)
        assert.equal(case[2], rec.reason)
        assert.same({ "first" }, rec.data)
        if case[3] then
          local bytes = R.read_to_end(c)
          local t = tags(bytes)
          assert.equal(case[3], t[#t], table.concat(t, ","))
        end
      end)
    end

    it("an undecodable message gives a messageerror; the port keeps working",
       function()
      local l = listen(R.unix_address())
      local acc = accepting(l)
      local c = R.raw(l.address)
      R.send_all(c, R.hello())
      local p = await_link(acc)
      local rec = watch(p)
      local errs = {}
      p.onmessageerror = function(e)
        errs[#errs + 1] = { data = e.data, error = e.error }
      end
      R.send_all(c, R.frame("M", R.u32(0) .. "\255\255")
                   .. R.frame("M", R.u32(0) .. mc.serialize("x"):sub(1, -2))
                   .. R.msg("good"))
      await_count(rec, 1)
      assert.same({ "good" }, rec.data)
      assert.equal(2, #errs)
      for _, e in ipairs(errs) do
        assert.is_nil(e.data)
        assert.truthy(has(e.error, "DataCloneError:"), e.error)
      end
      assert.is_false(rec.closed)
    end)

    it("a MSG frame's buffers arrive as Buffers, as its TRANSFER slots say",
       function()
      local l = listen(R.unix_address())
      local acc = accepting(l)
      local c = R.raw(l.address)
      R.send_all(c, R.hello())
      local p = await_link(acc)
      local rec = watch(p)
      local errs = {}
      p.onmessageerror = function(e) errs[#errs + 1] = e.error end
      -- version 1, TRANSFER 1: the message is the frame's second Buffer
      R.send_all(c, R.frame("M", R.u32(2) .. R.u64(5) .. R.u64(3)
                                 .. "\1\10\1" .. "hello" .. "abc")
                   -- TRANSFER 0 in a frame without buffers
                   .. R.frame("M", R.u32(0) .. "\1\10\0")
                   .. R.msg("last"))
      await_count(rec, 2)
      assert.truthy(helper.is_buffer(rec.data[1]))
      assert.equal("abc", rec.data[1]:sub())
      assert.equal("last", rec.data[2])
      assert.equal(1, #errs)
      assert.truthy(has(errs[1], "DataCloneError:"), errs[1])
      assert.is_false(rec.closed)
    end)
  end)

  ---------------------------------------------------------------------------
  describe("transfer lists", function()
    it("a Buffer in the list is copied over and detached here", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local rec = watch(p)
      local b = mc.Buffer("buffer bytes \0\255")
      assert.is_true(p:postMessage({ buf = b, again = b }, { b }))
      assert.is_true(b.detached)
      assert.equal(0, #b)
      await_count(rec, 1)
      local back = rec.data[1]
      assert.truthy(helper.is_buffer(back.buf))
      assert.equal("buffer bytes \0\255", back.buf:sub())
      assert.is_true(rawequal(back.buf, back.again))  -- one Buffer, twice
    end)

    it("a Buffer in the options form's list is detached too", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local rec = watch(p)
      local b = mc.Buffer(100000)
      b:write(1, "head")
      assert.is_true(p:postMessage(b, { transfer = { b } }))
      assert.is_true(b.detached)
      await_count(rec, 1)
      assert.equal(100000, #rec.data[1])
      assert.equal("head", rec.data[1]:sub(1, 4))
    end)

    it("a Buffer not in the list is copied and kept here", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local rec = watch(p)
      local b = mc.Buffer("kept")
      assert.is_true(p:postMessage({ buf = b }))
      assert.is_false(b.detached)
      b:write(1, "KEPT")  -- the clone was a snapshot
      await_count(rec, 1)
      assert.equal("kept", rec.data[1].buf:sub())
    end)

    it("the peer's transferred Buffer is detached there and arrives here",
       function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local rec = watch(p)
      p:postMessage({ cmd = "buffer", size = 10, transfer = true })
      await_count(rec, 2)
      assert.equal("xyzxyzxyzx", rec.data[1].buf:sub())
      assert.same({ detached = true }, rec.data[2])
    end)

    it("a MessagePort in the list raises DataCloneError and leaves both "
       .. "ports usable", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local rec = watch(p)
      local ch = mc.MessageChannel()
      local b = mc.Buffer("not moved")
      local err = helper.error_of(p.postMessage, p, { port = ch.port1, b = b },
                                  { ch.port1, b })
      assert.truthy(has(err, "DataCloneError:"), err)
      assert.is_false(b.detached)
      assert.truthy(helper.is_open_port_name(tostring(ch.port1)))
      assert.is_true(ch.port1:postMessage("local"))
      assert.equal("local", ch.port2:receive(0).data)
      -- a port in the data without the list raises too
      err = helper.error_of(p.postMessage, p, { port = ch.port1 })
      assert.truthy(has(err, "DataCloneError:"), err)
      assert.is_true(p:postMessage("after"))
      await_count(rec, 1)
      assert.same({ "after" }, rec.data)
    end)

    it("a remote port cannot cross another remote link", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local other = connect(address)
      local err = helper.error_of(p.postMessage, p, { other }, { other })
      assert.truthy(has(err, "DataCloneError:"), err)
      local rec, orec = watch(p), watch(other)
      assert.is_true(other:postMessage("other still works"))
      assert.is_true(p:postMessage("p still works"))
      await_count(rec, 1)
      await_count(orec, 1)
      assert.same({ "p still works" }, rec.data)
      assert.same({ "other still works" }, orec.data)
    end)
  end)

  ---------------------------------------------------------------------------
  describe("close()", function()
    for _, kind in ipairs(kind_names) do
      it("travels after the queued messages; the peer gets them all, then a "
         .. "close with reason nil (" .. kind .. ")", function()
        local peer, address = R.listening_peer(kinds[kind](), "behave=count")
        local p = connect(address)
        local rec = watch(p)
        for i = 1, 300 do assert.is_true(p:postMessage(i)) end
        p:close()
        assert.same({ false, "closed" }, { p:postMessage(301) })
        local n, ordered = peer:expect("count (%d+) (%a+)")
        assert.equal("300", n)
        assert.equal("true", ordered)
        assert.equal("nil", peer:expect("close (%S+)"))
        await_close(rec)
        assert.is_nil(rec.reason)
        assert.is_nil(rec.event.reason)
        assert.equal("close", rec.event.type)
      end)
    end

    it("before the link is up is still in-band: the queued messages go "
       .. "first", function()
      local peer, address = R.listening_peer(R.unix_address(), "behave=count")
      local p = connect(address)
      for i = 1, 50 do p:postMessage(i) end
      p:close()
      assert.is_true(mc.run(R.WAIT))
      local n, ordered = peer:expect("count (%d+) (%a+)")
      assert.equal("50", n)
      assert.equal("true", ordered)
      assert.equal("nil", peer:expect("close (%S+)"))
    end)

    it("the peer's close arrives after its messages, as the last event, "
       .. "reason nil", function()
      local _, address = R.listening_peer("tcp:127.0.0.1:0")
      local p = connect(address)
      local rec = watch(p)
      p:postMessage({ cmd = "burst", n = 500, close = true })
      await_close(rec)
      assert.equal(500, #rec.data)
      for i = 1, 500 do assert.equal(i, rec.data[i].i) end
      assert.equal("close", rec.log[#rec.log])
      assert.equal(501, #rec.log)
      assert.is_nil(rec.reason)
      assert.same({ false, "closed" }, { p:postMessage("late") })
    end)

    it("a peer's close waits behind messages held at an unstarted port",
       function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local rec = watch(p, true)
      p:postMessage({ cmd = "burst", n = 20, close = true })
      R.await("the pair to close", function() return is_closed(p) end)
      mc.sleep(0.1)
      assert.is_false(rec.closed)
      assert.equal(20, p:pending())
      for i = 1, 20 do assert.equal(i, p:receive(0).data.i) end
      assert.same({ nil, "closed" }, { p:receive(0) })
      await_close(rec)
      assert.is_nil(rec.reason)
    end)

    it("a collected remote port closes the link; the peer sees reason nil",
       function()
      local peer, address = R.listening_peer(R.unix_address())
      do
        local p = mc.connect(address)
        p:postMessage({ cmd = "say", text = "collect me" })
      end
      peer:expect("said collect me")
      R.await("the peer's close", function()
        collectgarbage()
        collectgarbage()
        return peer:find("close (%S+)") ~= nil
      end)
      assert.equal("nil", peer:find("close (%S+)"))
    end)
  end)

  ---------------------------------------------------------------------------
  describe("bursts", function()
    for _, kind in ipairs(kind_names) do
      it("a peer's burst arrives while the peer runs no scheduler turn ("
         .. kind .. ")", function()
        local _, address = R.listening_peer(kinds[kind]())
        local p = connect(address)
        local rec = watch(p)
        local go = R.tmpdir() .. "/go"
        p:postMessage({ cmd = "burst_block", n = 200, go = go })
        await_count(rec, 200)
        for i = 1, 200 do assert.same({ i = i }, rec.data[i]) end
        R.write_file(go, "")
        await_count(rec, 201)
        assert.same({ blocked = "done" }, rec.data[201])
      end)

      it("a burst of small and large messages arrives whole and in order ("
         .. kind .. ")", function()
        local peer, address = R.listening_peer(kinds[kind](), "behave=count")
        local p = connect(address)
        local big = string.rep("L", 300 * 1024)
        for i = 1, 600 do
          assert.is_true(p:postMessage({ i = i, pad = i % 50 == 0 and big
                                                     or "s" }))
        end
        p:close()
        assert.is_true(mc.run(R.WAIT))
        local n, ordered = peer:expect("count (%d+) (%a+)")
        assert.equal("600", n)
        assert.equal("true", ordered)
      end)
    end
  end)

  ---------------------------------------------------------------------------
  describe("capacity and back-pressure", function()
    it("a peer that does not read makes postMessage time out once both "
       .. "capacities and the socket buffers are full; nothing is lost",
       function()
      local go = R.tmpdir() .. "/go"
      local peer, address = R.listening_peer(R.unix_address(), "behave=count",
                                             "capacity=2", "go=" .. go)
      local cap = 4
      local p = connect(address, { capacity = cap })
      local pad = string.rep("w", 32 * 1024)
      local posted, ok, why = 0, true, nil
      while posted < 4000 do
        -- longer than any timer of the link: only a full pipe times out
        ok, why = p:postMessage({ i = posted + 1, pad = pad },
                                { timeout = 1.5 })
        if not ok then break end
        posted = posted + 1
      end
      assert.is_false(ok, "4000 posts of 32 KiB never waited")
      assert.equal("timeout", why)
      assert.is_true(posted > cap + 2, "posted only " .. posted)
      -- while full: timeout = 0 tries once, and detaches nothing
      local b = mc.Buffer(10)
      assert.same({ false, "timeout" },
                  { p:postMessage({ i = posted + 1, b = b },
                                  { transfer = { b }, timeout = 0 }) })
      assert.is_false(b.detached)
      -- the peer reads: every message posted arrives, in order
      R.write_file(go, "")
      p:close()
      assert.is_true(mc.run(R.WAIT))
      local n, ordered = peer:expect("count (%d+) (%a+)")
      assert.equal(tostring(posted), n)
      assert.equal("true", ordered)
    end)

    it("a port reads from the network, started or not, until it holds "
       .. "capacity messages", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address, { capacity = 3 })
      local rec = watch(p, true)
      p:postMessage({ cmd = "burst", n = 10 })
      R.await("3 messages held", function() return p:pending() == 3 end)
      mc.sleep(0.3)
      assert.equal(3, p:pending())
      local got = {}
      p.onmessage = function(e) got[#got + 1] = e.data.i end
      R.await("all 10", function() return #got == 10 end)
      assert.same(range(10), got)
      assert.is_false(rec.closed)
    end)

    it("has a default capacity of 1024 messages", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local rec = watch(p, true)
      p:postMessage({ cmd = "burst", n = 1500 })
      R.await("1024 messages held", function() return p:pending() == 1024 end)
      mc.sleep(0.3)
      assert.equal(1024, p:pending())
      local got = {}
      p.onmessage = function(e) got[#got + 1] = e.data.i end
      R.await("all 1500", function() return #got == 1500 end)
      assert.same(range(1500), got)
      assert.is_false(rec.closed)
    end)

    it("writing to a reader behind a throttling proxy waits for room, "
       .. "and this process's memory stays flat", function()
      local reader, address = R.listening_peer("tcp:127.0.0.1:0",
                                               "behave=count", "once=1")
      local host, port = address:match("^tcp:(.*):(%d+)$")
      local proxy = R.spawn("spec/remote/proxy.lua", host, port,
                            tostring(64 * 1024), "0.005")
      local paddr = proxy:expect("listening (%S+)")
      local p = connect(paddr, { capacity = 4 })
      local size, n = 64 * 1024, 256                -- 16 MiB in all
      local pad = string.rep("p", size)
      collectgarbage()
      collectgarbage()
      local rss0, gc0 = R.rss(), collectgarbage("count")
      local rss_peak, gc_peak, waited = rss0, gc0, 0
      for i = 1, n do
        local msg = { i = i, pad = pad }
        if not p:postMessage(msg, { timeout = 0 }) then
          waited = waited + 1
          assert.is_true(p:postMessage(msg))  -- waits for room
        end
        rss_peak = math.max(rss_peak, R.rss())
        gc_peak = math.max(gc_peak, collectgarbage("count"))
      end
      p:close()
      assert.is_true(mc.run(R.WAIT * 3))
      local count, ordered = reader:expect("count (%d+) (%a+)", R.WAIT * 3)
      assert.equal(tostring(n), count)
      assert.equal("true", ordered)
      assert.is_true(waited > 0, "the writer never had to wait")
      -- 16 MiB went through; a writer without back-pressure would hold it
      -- (under a sanitizer freed memory stays resident: the heap only)
      local grew = (rss_peak - rss0) / 1024
      if not R.sanitizer then
        assert.is_true(grew < 8,
                       ("resident memory grew by %.1f MiB"):format(grew))
      end
      assert.is_true((gc_peak - gc0) / 1024 < 8, "the Lua heap grew")
    end)

    it("the network thread writes queued messages as the socket takes "
       .. "them, while this Lua state runs no scheduler", function()
      -- One-way traffic with long heartbeats, and this state blocked in
      -- os.execute: only the network thread can move the 16 MiB queued.
      -- Over a local socket that takes well under a second; a thread that
      -- waits for a timer between batches of its output needs one poll
      -- timeout (1 s) per 256 KiB: 64 s. The 40 s bound is a hang guard.
      if R.sanitizer == "valgrind" then
        return pending("a bound on time means nothing under valgrind")
      end
      local n = 256
      local reader, address = R.listening_peer("tcp:127.0.0.1:0",
                                               "behave=count", "heartbeat=30",
                                               "every=16")
      local p = connect(address, { heartbeat = 30 })
      local pad = string.rep("q", 64 * 1024)
      for i = 1, n do assert.is_true(p:postMessage({ i = i, pad = pad })) end
      local t0 = mc.now()
      while not reader:find("got " .. n) and mc.now() - t0 < 40 do
        R.sh("sleep 0.05")  -- not mc.sleep: no scheduler turn
      end
      local got = reader:all("got (%d+)")
      assert.truthy(reader:find("got " .. n),
                    ("the peer got %s of %d messages in 40 s"):format(
                      tostring(got[#got] or 0), n))
    end)
  end)

  ---------------------------------------------------------------------------
  describe("what keeps mc.run() going", function()
    it("a remote port with a message listener, until unref() or close()",
       function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local rec = watch(p)
      p:postMessage("hi")
      await_count(rec, 1)
      assert.same({ "hi" }, rec.data)
      assert.is_false(mc.run(0.3))  -- still going
      assert.is_true(p:hasRef())
      p:unref()
      assert.is_false(p:hasRef())
      assert.is_true(mc.run(R.WAIT))
      p:ref()
      assert.is_true(p:hasRef())
      assert.is_false(mc.run(0.3))
      p:close()
      assert.is_true(mc.run(R.WAIT))
    end)

    it("a remote port with a task waiting in receive()", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local got
      mc.spawn(function() got = p:receive() end)
      assert.is_false(mc.run(0.3))
      p:postMessage("wake")
      assert.is_true(mc.run(R.WAIT))
      assert.equal("wake", got.data)
    end)

    it("not a remote port without a message listener", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      p.onclose = function() end
      p:addEventListener("messageerror", function() end)
      assert.is_true(mc.run(R.WAIT))
    end)

    it("an open listener, until unref() or close()", function()
      local l = listen(R.unix_address())
      assert.is_true(l:hasRef())
      assert.is_false(mc.run(0.3))
      l:unref()
      assert.is_false(l:hasRef())
      assert.is_true(mc.run(R.WAIT))
      l:ref()
      assert.is_false(mc.run(0.3))
      l:close()
      assert.is_true(mc.run(R.WAIT))
    end)

    it("an unref'd listener still takes links while mc.run() goes", function()
      local l = listen(R.unix_address())
      l:unref()
      local acc = accepting(l)
      R.peer("connect", l.address)
      local p = await_link(acc)
      local rec = watch(p)
      p:postMessage("hello")
      await_count(rec, 1)
    end)

    it("a listener the program dropped stays open until close(), as "
       .. "Node's net.Server", function()
      local address = R.unix_address()
      local kept = setmetatable({}, { __mode = "v" })
      local acc
      do
        local l = mc.listen(address)
        l:unref()
        acc = accepting(l)
        kept[1] = l
      end
      for _ = 1, 3 do collectgarbage() end
      assert.is_true(mc.run(0))
      for _ = 1, 3 do collectgarbage() end
      assert.is_not_nil(kept[1])
      track(kept[1])
      assert.error_matches(function() mc.listen(address) end,
                           "address in use", 1, true)
      -- it still dispatches connect events
      local p = connect(address)
      local rec = watch(p)
      local q = await_link(acc)
      q:postMessage("through")
      await_count(rec, 1)
      assert.same({ "through" }, rec.data)
      kept[1]:close()
      track(mc.listen(address)):close()
    end)

    it("mc.run() returns only once a closed port's queued messages were "
       .. "written: a peer that exits right after it loses none", function()
      local l = listen(R.unix_address(), { capacity = 4 })
      local acc = accepting(l)
      local n = 200
      local sender = R.peer("connect", l.address, "behave=send",
                            "n=" .. n, "size=16384")  -- 3 MiB
      local p = await_link(acc)
      local rec = watch(p, true)  -- we read nothing yet
      sender:expect("said posted")
      mc.sleep(0.5)
      -- the sender's mc.run() is still writing: we hold back the data
      assert.is_nil(sender:find("end"), "mc.run() returned before writing")
      local got = {}
      p.onmessage = function(e) got[#got + 1] = e.data.i end
      await_close(rec)
      assert.same(range(n), got)
      assert.is_nil(rec.reason)
      assert.equal("true", sender:expect("end (%S+)"))
      assert.is_true(sender:wait_end())
    end)

    it("the same for a closed port of a worker that ended: the parent's "
       .. "mc.run() writes it before returning", function()
      local l = listen(R.unix_address(), { capacity = 4 })
      local acc = accepting(l)
      local n = 200
      local sender = R.peer("connect", l.address, "behave=worker-send",
                            "n=" .. n, "size=16384")
      local p = await_link(acc)
      local rec = watch(p, true)
      sender:expect("said moved")
      mc.sleep(0.5)
      assert.is_nil(sender:find("end"), "mc.run() returned before writing")
      local got = {}
      p.onmessage = function(e) got[#got + 1] = e.data.i end
      await_close(rec)
      assert.same(range(n), got)
      assert.is_nil(rec.reason)
      assert.equal("true", sender:expect("end (%S+)"))
    end)
  end)

  ---------------------------------------------------------------------------
  describe("descriptors", function()
    it("every descriptor of listeners, links and the scheduler is "
       .. "close-on-exec", function()
      -- the peer first: the pipe io.popen gives us is not the module's
      local _, address = R.listening_peer(R.unix_address())
      local before = R.fds()
      local l1 = listen(R.unix_address())
      local l2 = listen("tcp:127.0.0.1:0")
      local acc1, acc2 = accepting(l1), accepting(l2)
      local c1, c2 = connect(l1.address), connect(l2.address)
      local c3 = connect(address)
      local rec = watch(c3)
      c3:postMessage("up")
      await_count(rec, 1)
      await_link(acc1)
      await_link(acc2)
      assert.is_false(is_closed(c1) or is_closed(c2))
      local after = R.fds()
      local mine = {}  -- descriptors opened since `before`
      local nsockets = 0
      for fd, what in pairs(after) do
        if before[fd] ~= what then
          mine[fd] = what
          if what:find("^socket:") then nsockets = nsockets + 1 end
        end
      end
      -- 2 listeners, 3 connecting and 2 accepted links
      assert.is_true(nsockets >= 7, "only " .. nsockets .. " new sockets")
      local pollfd = mc.pollfd()
      mine[pollfd] = after[pollfd]
      -- A descriptor that is not close-on-exec, to show the check works.
      local socket = require "socket"
      local control = assert(socket.bind("127.0.0.1", 0))
      local cfd = control:getfd()
      local ctarget = R.fds()[cfd]
      local function inherited(lines)
        local seen = {}
        for line in lines:gmatch("[^\n]+") do
          local fd, what = line:match("^(%d+) (.*)$")
          if fd then seen[tonumber(fd)] = what end
        end
        assert.equal(ctarget, seen[cfd], "the check sees no inherited socket")
        local leaked = {}
        for fd, what in pairs(mine) do
          if seen[fd] == what then leaked[#leaked + 1] = fd .. " " .. what end
        end
        table.sort(leaked)
        return leaked
      end
      local list = "for f in /proc/self/fd/*; do echo \"${f##*/} "
                   .. "$(readlink $f)\"; done"
      local pipe = assert(io.popen(list))
      local out = pipe:read("*a")
      pipe:close()
      assert.same({}, inherited(out))
      local file = R.tmpdir() .. "/fds"
      R.sh(list .. " > " .. R.quote(file))
      assert.same({}, inherited(R.read_file(file)))
      control:close()
    end)
  end)

  ---------------------------------------------------------------------------
  describe("moving a remote port", function()
    local workers = {}
    after_each(function() helper.terminate_all(workers) end)

    it("to a worker: it keeps its link and its queued messages", function()
      local peer, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      p:postMessage("queued before the move")
      R.await("the echo to be queued", function() return p:pending() == 1 end)
      local rec = helper.record_worker(workers, [[
        local p = mc.workerData.port
        local got = {}
        p.onmessage = function(e)
          got[#got + 1] = e.data
          if #got == 1 then
            p:postMessage("from the worker")
          else
            mc.parentPort:postMessage(got)
            p:close()
          end
        end
      ]], { data = { port = p }, transfer = { p } })
      assert.is_true(is_closed(p))
      assert.same({ false, "closed" }, { p:postMessage("old object") })
      assert.is_true(mc.run(R.WAIT))
      assert.equal(0, rec.code)
      assert.same({ { "queued before the move", "from the worker" } },
                  rec.messages)
      assert.equal("nil", peer:expect("close (%S+)"))
    end)

    it("through a local MessageChannel, with its queued messages", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      p:postMessage("queued")
      R.await("the echo to be queued", function() return p:pending() == 1 end)
      local ch = mc.MessageChannel()
      assert.is_true(ch.port1:postMessage({ p = p }, { p }))
      assert.is_true(is_closed(p))
      p:close()  -- does nothing to the port that moved
      local ev = ch.port2:receive(R.WAIT)
      local moved = ev.data.p
      assert.is_true(rawequal(moved, ev.ports[1]))
      track(moved)
      assert.equal("queued", moved:receive(R.WAIT).data)
      assert.is_true(moved:postMessage("again"))
      assert.equal("again", moved:receive(R.WAIT).data)
    end)

    it("to a worker that sends it back", function()
      local _, address = R.listening_peer(R.unix_address())
      local p = connect(address)
      local rec = helper.record_worker(workers, [[
        local p = mc.workerData
        mc.parentPort:postMessage(p, { p })
      ]], { data = p, transfer = { p } })
      assert.is_true(mc.run(R.WAIT))
      assert.equal(0, rec.code)
      local back = rec.messages[1]
      assert.truthy(helper.is_port(back))
      track(back)
      back:postMessage("home")
      assert.equal("home", back:receive(R.WAIT).data)
    end)
  end)

  it("leaves no error for mc.onerror in a plain round trip", function()
    local _, address = R.listening_peer(R.unix_address())
    local p = connect(address)
    local rec = watch(p)
    p:postMessage("x")
    await_count(rec, 1)
    p:close()
    await_close(rec)
    assert.same({}, errors)
  end)
end)
