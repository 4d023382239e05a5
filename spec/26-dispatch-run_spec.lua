-- A run of consecutive messages to one port (API.md section 3): several
-- messages are posted first and the scheduler runs after, so that their
-- tokens follow each other in the run queue, and what a listener does while
-- it handles one of them (replace, remove or add a listener, close or
-- transfer its port, raise, block, post back, start a receive) must show in
-- the very next message. (On Lua 5.3 and 5.4 one plain listener is given
-- such a run from C, core.dispatch_on; every rule here holds on every Lua.)

local mc = require "messagechannel"
local helper = require "spec.helper"

local has = helper.has
local run = helper.run

local TIMEOUT = helper.WAIT

-- A listener that appends "tag:data" to log.
local function logger(log, tag)
  return function(e)
    log[#log + 1] = tag .. ":" .. tostring(e.data)
  end
end

-- "tag:from" .. "tag:to" appended to t (a new array when t is nil).
local function seq(tag, from, to, t)
  t = t or {}
  for i = from, to do t[#t + 1] = tag .. ":" .. i end
  return t
end

-- Posts the numbers from..to at port (a MessagePort: each one queued).
local function post(port, from, to)
  for i = from, to do
    local ok = port:postMessage(i)
    assert(ok ~= false, "postMessage returned false")
  end
end

-- Counts the entries of log equal to s.
local function count(log, s)
  local n = 0
  for _, v in ipairs(log) do
    if v == s then n = n + 1 end
  end
  return n
end

-- The index of s in log, or nil.
local function index_of(log, s)
  for i, v in ipairs(log) do
    if v == s then return i end
  end
  return nil
end

describe("a run of consecutive messages", function()
  local errors, catch, release = helper.error_hooks(2)
  before_each(catch)
  after_each(release)

  describe("onmessage replaced by its listener", function()
    it("sends the messages after the replacing one to the new function", function()
      local ch = mc.MessageChannel()
      local log = {}
      local second = logger(log, "second")
      ch.port2.onmessage = function(e)
        log[#log + 1] = "first:" .. e.data
        if e.data == 3 then ch.port2.onmessage = second end
      end
      post(ch.port1, 1, 8)
      run()
      assert.same(seq("second", 4, 8, seq("first", 1, 3)), log)
      assert.equal(0, ch.port2:pending())
    end)

    it("set to nil: holds the messages after it until a listener comes", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "first:" .. e.data
        if e.data == 3 then ch.port2.onmessage = nil end
      end
      post(ch.port1, 1, 8)
      run()
      assert.same(seq("first", 1, 3), log)
      assert.equal(5, ch.port2:pending())
      ch.port2.onmessage = logger(log, "later")
      run()
      assert.same(seq("later", 4, 8, seq("first", 1, 3)), log)
      assert.equal(0, ch.port2:pending())
    end)

    it("set to nil then to another function in one call: the new one gets the rest", function()
      local ch = mc.MessageChannel()
      local log = {}
      local second = logger(log, "second")
      ch.port2.onmessage = function(e)
        log[#log + 1] = "first:" .. e.data
        if e.data == 2 then
          ch.port2.onmessage = nil
          ch.port2.onmessage = second
        end
      end
      post(ch.port1, 1, 7)
      run()
      assert.same(seq("second", 3, 7, seq("first", 1, 2)), log)
    end)

    it("replaced by every message: each one reaches the function the one before set", function()
      local ch = mc.MessageChannel()
      local log = {}
      local function make(k)
        return function(e)
          log[#log + 1] = "fn" .. k .. ":" .. e.data
          ch.port2.onmessage = make(k + 1)
        end
      end
      ch.port2.onmessage = make(1)
      post(ch.port1, 1, 6)
      run()
      assert.same({ "fn1:1", "fn2:2", "fn3:3", "fn4:4", "fn5:5", "fn6:6" }, log)
    end)

    it("with a second listener added: both get every later message, in order", function()
      local ch = mc.MessageChannel()
      local log = {}
      local added = logger(log, "added")
      ch.port2.onmessage = function(e)
        log[#log + 1] = "on:" .. e.data
        if e.data == 3 then ch.port2:addEventListener("message", added) end
      end
      post(ch.port1, 1, 7)
      run()
      local want = seq("on", 1, 3)
      for i = 4, 7 do
        want[#want + 1] = "on:" .. i
        want[#want + 1] = "added:" .. i
      end
      assert.same(want, log)
    end)

    it("by a finalizer run while a message is read: that message goes to the new one #threads",
       function()
      -- In a worker, whose heap is small and its own: the collector ends a
      -- cycle within the run. The listeners allocate nothing, so the
      -- finalizer runs while a message is decoded or its event made:
      -- whichever message that is, the old function must get exactly the
      -- messages before the switch.
      local result
      local w = mc.Worker(helper.ON_GC .. [[
local mc = require "messagechannel"
local ROUND, ROUNDS = 300, 20
local ch = mc.MessageChannel()
local n, switched_at = 0, false
local who = {}
for i = 1, ROUND * ROUNDS do who[i] = false end
ch.port2.onmessage = function() n = n + 1; who[n] = "old" end
local function new() n = n + 1; who[n] = "new" end
local payload = {}
for i = 1, 50 do payload[i] = { i } end
local function garbage_with_finalizer()
  coroutine.wrap(function()  -- no stack slot of the main chunk keeps it
    on_gc(function()
      switched_at = n
      ch.port2.onmessage = new
    end)
  end)()
end
local rounds = 0
repeat  -- runs of ROUND messages until a cycle ends in one
  for _ = 1, ROUND do ch.port1:postMessage(payload) end
  if rounds == 0 then
    collectgarbage()
    collectgarbage()
    garbage_with_finalizer()
  end
  mc.run()
  rounds = rounds + 1
until switched_at or rounds == ROUNDS
mc.parentPort:postMessage({ n = n, expected = rounds * ROUND,
                            switched_at = switched_at, who = who })
]], { eval = true })
      w.onmessage = function(e) result = e.data end
      run()
      assert.is_table(result)
      assert.equal(result.expected, result.n)
      local switched_at = result.switched_at
      assert.is_number(switched_at)
      for i = 1, result.n do
        -- Lua 5.2 runs a collector step at every call (luaD_precall), so
        -- there the finalizer may run in the call of the listener that was
        -- chosen for the next message: that one message may go either way
        if not (_VERSION == "Lua 5.2" and i == switched_at + 1) then
          assert.equal(i <= switched_at and "old" or "new", result.who[i], "message " .. i)
        end
      end
    end)

    it("from another port's listener between two of its messages: the next one sees it", function()
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      local log = {}
      a.port2.onmessage = logger(log, "old")
      b.port2.onmessage = function()
        log[#log + 1] = "switch"
        a.port2.onmessage = logger(log, "new")
      end
      post(a.port1, 1, 3)
      b.port1:postMessage("go")
      post(a.port1, 4, 6)
      run()
      assert.same(seq("new", 4, 6, { "old:1", "old:2", "old:3", "switch" }), log)
    end)
  end)

  describe("removeEventListener by the listener itself", function()
    it("lets no later message reach it; they wait for a listener", function()
      local ch = mc.MessageChannel()
      local log = {}
      local function listener(e)
        log[#log + 1] = "l:" .. e.data
        if e.data == 3 then ch.port2:removeEventListener("message", listener) end
      end
      ch.port2:addEventListener("message", listener)
      ch.port2:start()
      post(ch.port1, 1, 8)
      run()
      assert.same(seq("l", 1, 3), log)
      assert.equal(5, ch.port2:pending())
      ch.port2:addEventListener("message", logger(log, "next"))
      run()
      assert.same(seq("next", 4, 8, seq("l", 1, 3)), log)
    end)

    it("swapped for another listener in the same call: the other gets the rest", function()
      local ch = mc.MessageChannel()
      local log = {}
      local other = logger(log, "other")
      local function listener(e)
        log[#log + 1] = "l:" .. e.data
        if e.data == 2 then
          ch.port2:removeEventListener("message", listener)
          ch.port2:addEventListener("message", other)
        end
      end
      ch.port2:addEventListener("message", listener)
      ch.port2:start()
      post(ch.port1, 1, 6)
      run()
      assert.same(seq("other", 3, 6, seq("l", 1, 2)), log)
    end)
  end)

  describe("close() inside the listener", function()
    it("of its own port: the messages queued before still come, then close, last", function()
      local ch = mc.MessageChannel()
      local log, results = {}, {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "port2:" .. e.data
        if e.data == 3 then
          ch.port2:close()
          results[#results + 1] = ch.port1:postMessage("after close")
        end
      end
      ch.port2.onclose = function() log[#log + 1] = "port2 close" end
      ch.port1.onclose = function() log[#log + 1] = "port1 close" end
      post(ch.port1, 1, 8)
      run()
      assert.same({ false }, results)
      local port2 = {}
      for _, v in ipairs(log) do
        if v ~= "port1 close" then port2[#port2 + 1] = v end
      end
      local want = seq("port2", 1, 8)
      want[#want + 1] = "port2 close"
      assert.same(want, port2)
      assert.equal(1, count(log, "port1 close"))
      -- the partner of the port that was closed gets its close first
      assert.is_true(index_of(log, "port1 close") < index_of(log, "port2 close"))
      assert.equal("port2 close", log[#log])
    end)

    it("of the partner: the same, nothing posted later arrives", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = e.data
        if e.data == 2 then
          ch.port1:close()
          log[#log + 1] = tostring(ch.port1:postMessage(99))
        end
      end
      ch.port2.onclose = function() log[#log + 1] = "close" end
      post(ch.port1, 1, 6)
      run()
      assert.same({ 1, 2, "false", 3, 4, 5, 6, "close" }, log)
    end)

    it("of a BroadcastChannel: drops what was not yet dispatched to it", function()
      local a = mc.BroadcastChannel("spec.dispatch-run: close")
      local b = mc.BroadcastChannel("spec.dispatch-run: close")
      finally(function() a:close() b:close() end)
      local log = {}
      b.onmessage = function(e)
        log[#log + 1] = e.data
        if e.data == 3 then b:close() end
      end
      b:unref()  -- a listening channel keeps mc.run() going
      post(a, 1, 8)
      run()
      assert.same({ 1, 2, 3 }, log)
    end)
  end)

  describe("a listener that raises", function()
    it("on one message: its messageerror comes before the next message, all arrive", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "message:" .. e.data
        if e.data == 3 then error("fails at " .. e.data, 0) end
      end
      ch.port2.onmessageerror = function(e)
        log[#log + 1] = "messageerror:" .. tostring(e.data) .. ":" .. tostring(e.error)
      end
      post(ch.port1, 1, 8)
      run()
      local want = seq("message", 1, 3)
      want[#want + 1] = "messageerror:3:fails at 3"
      assert.same(seq("message", 4, 8, want), log)
      assert.same({}, errors)
    end)

    it("on several, the first and the last too: one messageerror each, in place", function()
      local ch = mc.MessageChannel()
      local log = {}
      local fails = { [1] = true, [3] = true, [4] = true, [6] = true, [8] = true }
      ch.port2.onmessage = function(e)
        log[#log + 1] = "message:" .. e.data
        if fails[e.data] then error({ at = e.data }) end
      end
      ch.port2.onmessageerror = function(e)
        log[#log + 1] = "messageerror:" .. e.data .. ":" .. e.error.at
      end
      post(ch.port1, 1, 8)
      run()
      local want = {}
      for i = 1, 8 do
        want[#want + 1] = "message:" .. i
        if fails[i] then want[#want + 1] = "messageerror:" .. i .. ":" .. i end
      end
      assert.same(want, log)
      assert.same({}, errors)
    end)

    it("with no messageerror listener: each error goes to mc.onerror, all arrive", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = e.data
        if e.data % 2 == 0 then error("fails at " .. e.data, 0) end
      end
      post(ch.port1, 1, 7)
      run()
      assert.same({ 1, 2, 3, 4, 5, 6, 7 }, log)
      assert.equal(3, #errors)
      for i, want in ipairs { "fails at 2", "fails at 4", "fails at 6" } do
        assert.truthy(has(tostring(errors[i].err), want), tostring(errors[i].err))
      end
    end)

    it("when mc.onerror raises: run() raises it, and the next run() delivers the rest", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = e.data
        if e.data == 3 then error("fails at 3", 0) end
      end
      post(ch.port1, 1, 6)
      mc.onerror = function(err) error("onerror: " .. tostring(err), 0) end
      local ok, err = pcall(mc.run, TIMEOUT)
      assert.is_false(ok)
      assert.equal("onerror: fails at 3", err)
      assert.same({ 1, 2, 3 }, log)
      mc.onerror = function(e) errors[#errors + 1] = { err = e } end
      run()
      assert.same({ 1, 2, 3, 4, 5, 6 }, log)
      assert.same({}, errors)
    end)

    it("after blocking: its messageerror carries its own message's data", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "message:" .. e.data
        if e.data == 3 then
          mc.sleep(0)
          error("late", 0)
        end
      end
      ch.port2.onmessageerror = function(e)
        log[#log + 1] = "messageerror:" .. e.data .. ":" .. e.error
      end
      post(ch.port1, 1, 6)
      run()
      -- 3 blocks: 4, 5, 6 are dispatched meanwhile (each message is its own
      -- task), and its error is for message 3
      assert.same({ "message:1", "message:2", "message:3", "message:4",
                    "message:5", "message:6", "messageerror:3:late" }, log)
      assert.same({}, errors)
    end)

    it("with a yield with values: a messageerror for that message, and the rest arrive", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "message:" .. e.data
        if e.data == 3 then coroutine.yield("foreign") end
        log[#log + 1] = "after:" .. e.data
      end
      local why = {}
      ch.port2.onmessageerror = function(e)
        log[#log + 1] = "messageerror:" .. e.data
        why[#why + 1] = tostring(e.error)
      end
      post(ch.port1, 1, 6)
      run()
      local n3 = index_of(log, "message:3")
      assert.is_nil(index_of(log, "after:3"))
      assert.equal(1, count(log, "messageerror:3"))
      for i = 1, 6 do
        assert.equal(1, count(log, "message:" .. i))
        if i ~= 3 then assert.equal(1, count(log, "after:" .. i)) end
      end
      -- the messages in order
      local last = 0
      for i = 1, 6 do
        local at = index_of(log, "message:" .. i)
        assert.is_true(at > last)
        last = at
      end
      assert.is_true(index_of(log, "messageerror:3") > n3)
      assert.equal(1, #why)
      assert.truthy(has(why[1], "yield"), why[1])
      assert.same({}, errors)
    end)
  end)

  describe("the events of a run", function()
    it("are a new table per message, with its own data, ports and target", function()
      local ch = mc.MessageChannel()
      local events = {}
      ch.port2.onmessage = function(e) events[#events + 1] = e end
      local carried = {}
      for i = 1, 6 do
        local c = mc.MessageChannel()
        carried[i] = c
        ch.port1:postMessage({ n = i }, { c.port2 })
      end
      run()
      assert.equal(6, #events)
      for i = 1, 6 do
        local e = events[i]
        assert.equal("message", e.type)
        assert.same({ n = i }, e.data)
        assert.is_true(rawequal(ch.port2, e.target))
        assert.is_true(rawequal(ch.port2, e.currentTarget))
        assert.equal(1, #e.ports)
        assert.truthy(helper.is_port(e.ports[1]))
        if i > 1 then assert.is_false(rawequal(events[i - 1], e)) end
      end
      -- each carried port is entangled with its own partner
      local got = {}
      for i = 1, 6 do
        events[i].ports[1].onmessage = function(e) got[#got + 1] = e.data end
        carried[i].port1:postMessage(i * 10)
      end
      run()
      assert.same({ 10, 20, 30, 40, 50, 60 }, got)
    end)

    it("are all dispatched when the partner is collected during the run, then close", function()
      local log = {}
      local port2
      do
        local ch = mc.MessageChannel()
        port2 = ch.port2
        post(ch.port1, 1, 6)
      end
      port2.onmessage = function(e)
        log[#log + 1] = e.data
        if e.data == 2 then
          collectgarbage()
          collectgarbage()
        end
      end
      port2.onclose = function() log[#log + 1] = "close" end
      run()
      assert.same({ 1, 2, 3, 4, 5, 6, "close" }, log)
    end)
  end)

  describe("several ports", function()
    it("receive interleaved posts in post order", function()
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      local log = {}
      a.port2.onmessage = logger(log, "A")
      b.port2.onmessage = logger(log, "B")
      local want = {}
      for i = 1, 6 do
        a.port1:postMessage(i)
        want[#want + 1] = "A:" .. i
        b.port1:postMessage(i)
        want[#want + 1] = "B:" .. i
      end
      run()
      assert.same(want, log)
    end)

    it("receive runs of random length in post order", function()
      local ports, log, want, n = {}, {}, {}, { 0, 0, 0 }
      for k = 1, 3 do
        local ch = mc.MessageChannel()
        ch.port2.onmessage = logger(log, "P" .. k)
        ports[k] = ch
      end
      local g = helper.prng(26)
      for _ = 1, 40 do
        local k = g.int(1, 3)
        for _ = 1, g.int(1, 5) do
          n[k] = n[k] + 1
          ports[k].port1:postMessage(n[k])
          want[#want + 1] = "P" .. k .. ":" .. n[k]
        end
      end
      run()
      assert.same(want, log)
    end)

    it("keep post order across both directions of one channel", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port1.onmessage = logger(log, "port1")
      ch.port2.onmessage = logger(log, "port2")
      local want = {}
      for i = 1, 4 do
        ch.port1:postMessage(i)
        ch.port1:postMessage(i + 10)
        ch.port2:postMessage(i)
        want[#want + 1] = "port2:" .. i
        want[#want + 1] = "port2:" .. (i + 10)
        want[#want + 1] = "port1:" .. i
      end
      run()
      assert.same(want, log)
    end)
  end)

  describe("a listener that blocks", function()
    it("in sleep: the next messages are dispatched meanwhile, each once, in order", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "start:" .. e.data
        if e.data == 3 then mc.sleep(0) end
        log[#log + 1] = "end:" .. e.data
      end
      post(ch.port1, 1, 6)
      run()
      assert.same({ "start:1", "end:1", "start:2", "end:2", "start:3",
                    "start:4", "end:4", "start:5", "end:5", "start:6", "end:6",
                    "end:3" }, log)
    end)

    it("in several messages: each of the others runs once, in order, and every one ends", function()
      local ch = mc.MessageChannel()
      local log = {}
      local blocks = { [2] = true, [4] = true, [5] = true }
      ch.port2.onmessage = function(e)
        log[#log + 1] = "start:" .. e.data
        if blocks[e.data] then mc.sleep(0) end
        log[#log + 1] = "end:" .. e.data
      end
      post(ch.port1, 1, 7)
      run()
      local want = {}
      for i = 1, 7 do
        want[#want + 1] = "start:" .. i
        if not blocks[i] then want[#want + 1] = "end:" .. i end
      end
      for i = 1, #want do assert.equal(want[i], log[i]) end
      local ends = {}
      for i = #want + 1, #log do ends[#ends + 1] = log[i] end
      table.sort(ends)
      assert.same({ "end:2", "end:4", "end:5" }, ends)
    end)

    it("in receive on another channel: the rest run meanwhile, and it gets what comes", function()
      local ch, other = mc.MessageChannel(), mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "start:" .. e.data
        if e.data == 2 then
          local got = other.port2:receive()
          log[#log + 1] = "got:" .. got.data
        elseif e.data == 6 then
          other.port1:postMessage("wake")
        end
        log[#log + 1] = "end:" .. e.data
      end
      post(ch.port1, 1, 6)
      run()
      assert.same({ "start:1", "end:1", "start:2",
                    "start:3", "end:3", "start:4", "end:4", "start:5", "end:5",
                    "start:6", "end:6", "got:wake", "end:2" }, log)
    end)

    it("in a bare coroutine.yield(): the same as sleep(0)", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "start:" .. e.data
        if e.data == 1 then coroutine.yield() end
        log[#log + 1] = "end:" .. e.data
      end
      post(ch.port1, 1, 4)
      run()
      assert.same({ "start:1", "start:2", "end:2", "start:3", "end:3",
                    "start:4", "end:4", "end:1" }, log)
      assert.same({}, errors)
    end)
  end)

  describe("a listener that transfers its own port", function()
    it("leaves the rest of the messages to the new owner, in order, none lost or twice", function()
      local ch, carrier = mc.MessageChannel(), mc.MessageChannel()
      local log = {}
      local moved
      ch.port2.onmessage = function(e)
        log[#log + 1] = "old:" .. e.data
        if e.data == 3 then
          assert(carrier.port1:postMessage("port", { ch.port2 }))
        end
      end
      carrier.port2.onmessage = function(e)
        moved = e.ports[1]
        moved.onmessage = logger(log, "new")
      end
      post(ch.port1, 1, 8)
      run()
      assert.same(seq("new", 4, 8, seq("old", 1, 3)), log)
      assert.truthy(helper.is_port(moved))
      assert.is_false(rawequal(moved, ch.port2))
      assert.is_false((ch.port2:postMessage("from the old object")))
      assert.equal(0, ch.port2:pending())
      -- the partner is still entangled with the port that moved
      ch.port1:postMessage(9)
      run()
      assert.same(seq("new", 4, 9, seq("old", 1, 3)), log)
    end)

    it("to a worker: the worker gets the rest, in order #threads", function()
      local ch, carrier = mc.MessageChannel(), mc.MessageChannel()
      local log, got = {}, nil
      local w = mc.Worker([[
local mc = require "messagechannel"
local carrier = mc.workerData
local port = carrier:receive(30).ports[1]
local seen = {}
for _ = 1, 5 do seen[#seen + 1] = port:receive(30).data end
carrier:postMessage(seen)
]], { eval = true, data = carrier.port2, transfer = { carrier.port2 } })
      carrier.port1.onmessage = function(e) got = e.data end
      ch.port2.onmessage = function(e)
        log[#log + 1] = e.data
        if e.data == 3 then
          assert(carrier.port1:postMessage("port", { ch.port2 }))
        end
      end
      post(ch.port1, 1, 8)
      run()
      assert.same({ 1, 2, 3 }, log)
      assert.same({ 4, 5, 6, 7, 8 }, got)
      assert.truthy(w)
    end)
  end)

  describe("a listener that posts to its own port", function()
    it("gets the new messages in a later turn, after the ones queued before", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = e.data
        if e.data < 100 then ch.port1:postMessage(e.data + 100) end
      end
      post(ch.port1, 1, 5)
      mc.step()
      assert.same({ 1, 2, 3, 4, 5 }, log)
      mc.step()
      assert.same({ 1, 2, 3, 4, 5, 101, 102, 103, 104, 105 }, log)
      run()
      assert.equal(10, #log)
    end)

    it("posting back forever: each step runs one message of the chain", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = e.data
        if e.data < 1000 then ch.port1:postMessage(e.data + 1) end
      end
      ch.port1:postMessage(1)
      for i = 1, 5 do
        assert.is_true(mc.step())
        assert.equal(i, #log)
      end
      ch.port1:close()
      run()
      assert.is_true(#log < 1000)
    end)

    it("does not starve a sleeping task: it wakes at the next turn", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = e.data
        if e.data + 5 <= 200 then ch.port1:postMessage(e.data + 5) end
      end
      post(ch.port1, 1, 5)
      mc.spawn(function()
        mc.sleep(0)
        log[#log + 1] = "woke"
      end)
      run()
      local woke = index_of(log, "woke")
      assert.is_number(woke)
      table.remove(log, woke)
      local want = {}
      for i = 1, 200 do want[i] = i end
      assert.same(want, log)
      -- the first turn ran 1..5 (the task went to sleep), the second 6..10
      -- and the wake-up; 11 was posted in the second turn
      assert.is_true(woke > 5 and woke <= 11, "woke at " .. woke)
    end)

    it("does not starve another port: its message goes through at the next turn", function()
      local ch, other = mc.MessageChannel(), mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = e.data
        if e.data == 2 then other.port1:postMessage("other") end
        if e.data + 3 <= 60 then ch.port1:postMessage(e.data + 3) end
      end
      other.port2.onmessage = function(e) log[#log + 1] = e.data end
      post(ch.port1, 1, 3)
      run()
      -- in global post order: 2 posted it between 4 (posted by 1) and 5
      local want = { 1, 2, 3, 4, "other" }
      for i = 5, 60 do want[#want + 1] = i end
      assert.same(want, log)
    end)
  end)

  describe("receive", function()
    it("in a task the listener spawned: takes the messages after its start, each once", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "listener:" .. e.data
        if e.data == 3 then
          mc.spawn(function()
            for _ = 1, 2 do
              local got = ch.port2:receive()
              log[#log + 1] = "receive:" .. got.data
            end
          end)
          -- posted after the spawn: at the task's start they are queued
          post(ch.port1, 7, 9)
        end
      end
      post(ch.port1, 1, 6)
      run()
      -- 4..6 were ready in the turn of 3, the task starts at the next
      -- turn and takes 7 and 8 before their listener's dispatch
      assert.same(seq("listener", 9, 9,
                      { "listener:1", "listener:2", "listener:3", "listener:4",
                        "listener:5", "listener:6", "receive:7", "receive:8" }),
                  log)
    end)

    it("by a task already waiting: gets a message before the listener does", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "listener:" .. e.data
        if e.data == 3 then
          mc.spawn(function()
            local got = ch.port2:receive()
            log[#log + 1] = "receive:" .. got.data
          end)
        end
      end
      post(ch.port1, 1, 5)
      run()
      -- the task waits now, the queue empty: the next post is its
      post(ch.port1, 6, 8)
      run()
      assert.same({ "listener:1", "listener:2", "listener:3", "listener:4",
                    "listener:5", "receive:6", "listener:7", "listener:8" }, log)
    end)

    it("by the listener of the last message, on its port: it takes the next post", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "listener:" .. e.data
        if e.data == 6 then
          local got = ch.port2:receive()
          log[#log + 1] = "receive:" .. got.data
        end
      end
      post(ch.port1, 1, 6)
      mc.spawn(function() post(ch.port1, 7, 8) end)
      run()
      assert.same({ "listener:1", "listener:2", "listener:3", "listener:4",
                    "listener:5", "listener:6", "receive:7", "listener:8" }, log)
    end)

    it("by the listener on its own port: takes the next message, which no listener sees", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "listener:" .. e.data
        if e.data == 2 or e.data == 5 then
          local got = ch.port2:receive(0)
          log[#log + 1] = "receive:" .. got.data
        end
      end
      post(ch.port1, 1, 8)
      run()
      assert.same({ "listener:1", "listener:2", "receive:3", "listener:4",
                    "listener:5", "receive:6", "listener:7", "listener:8" }, log)
      assert.equal(0, ch.port2:pending())
    end)
  end)

  describe("a bounded port", function()
    it("makes room with each message of a run: a waiting writer sends all, in order", function()
      local ch = mc.MessageChannel({ capacity = 2 })
      local log = {}
      ch.port2.onmessage = function(e) log[#log + 1] = e.data end
      mc.spawn(function()
        for i = 1, 12 do assert(ch.port1:postMessage(i)) end
      end)
      run()
      local want = {}
      for i = 1, 12 do want[i] = i end
      assert.same(want, log)
      assert.equal(0, ch.port2:pending())
    end)
  end)

  describe("once and stopImmediatePropagation", function()
    it("a once listener before onmessage gets exactly the first message", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2:addEventListener("message", logger(log, "once"), { once = true })
      ch.port2.onmessage = logger(log, "on")
      post(ch.port1, 1, 6)
      run()
      assert.same(seq("on", 2, 6, { "once:1", "on:1" }), log)
    end)

    it("a once listener added by onmessage gets exactly the next message", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = "on:" .. e.data
        if e.data == 3 then
          ch.port2:addEventListener("message", logger(log, "once"), { once = true })
        end
      end
      post(ch.port1, 1, 7)
      run()
      assert.same({ "on:1", "on:2", "on:3", "on:4", "once:4", "on:5", "on:6",
                    "on:7" }, log)
    end)

    it("stopImmediatePropagation skips a listener added mid-run, for that message only", function()
      local ch = mc.MessageChannel()
      local log = {}
      local added = logger(log, "added")
      ch.port2.onmessage = function(e)
        log[#log + 1] = "on:" .. e.data
        if e.data == 2 then ch.port2:addEventListener("message", added) end
        if e.data % 2 == 0 then e:stopImmediatePropagation() end
      end
      post(ch.port1, 1, 6)
      run()
      assert.same({ "on:1", "on:2", "on:3", "added:3", "on:4", "on:5", "added:5",
                    "on:6" }, log)
    end)

    it("dispatchEvent inside the listener runs it at once, between two messages", function()
      local ch = mc.MessageChannel()
      local log = {}
      ch.port2.onmessage = function(e)
        log[#log + 1] = tostring(e.data)
        if e.data == 2 then
          ch.port2:dispatchEvent({ type = "message", data = "synthetic" })
        end
      end
      post(ch.port1, 1, 4)
      run()
      assert.same({ "1", "2", "synthetic", "3", "4" }, log)
    end)
  end)

  describe("a Worker #threads", function()
    it("gets every message the worker posted, in order, before its exit", function()
      local log = {}
      local w = mc.Worker([[
local mc = require "messagechannel"
for i = 1, 40 do mc.parentPort:postMessage(i) end
]], { eval = true })
      w.onmessage = function(e) log[#log + 1] = e.data end
      w.onexit = function(e) log[#log + 1] = "exit " .. e.code end
      run()
      local want = {}
      for i = 1, 40 do want[i] = i end
      want[41] = "exit 0"
      assert.same(want, log)
    end)

    it("dispatches the messages then the error then the exit of a worker that fails", function()
      local log = {}
      local w = mc.Worker([[
local mc = require "messagechannel"
for i = 1, 10 do mc.parentPort:postMessage(i) end
error("worker fails", 0)
]], { eval = true })
      w.onmessage = function(e) log[#log + 1] = e.data end
      w.onerror = function(e) log[#log + 1] = "error " .. tostring(e.error) end
      w.onexit = function(e) log[#log + 1] = "exit " .. tostring(e.code ~= 0) end
      run()
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, "error worker fails",
                    "exit true" }, log)
    end)
  end)

  describe("a BroadcastChannel", function()
    local name = "spec.dispatch-run: broadcast"

    it("receives several messages in order with one onmessage", function()
      local a, b = mc.BroadcastChannel(name), mc.BroadcastChannel(name)
      finally(function() a:close() b:close() end)
      b:unref()  -- a listening channel keeps mc.run() going
      local log = {}
      b.onmessage = function(e) log[#log + 1] = e.data end
      post(a, 1, 8)
      run()
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, log)
    end)

    it("gives a messageerror for each raising message, in place", function()
      local a, b = mc.BroadcastChannel(name), mc.BroadcastChannel(name)
      finally(function() a:close() b:close() end)
      b:unref()  -- a listening channel keeps mc.run() going
      local log = {}
      b.onmessage = function(e)
        log[#log + 1] = "message:" .. e.data
        if e.data == 2 or e.data == 5 then error("fails", 0) end
      end
      b.onmessageerror = function(e) log[#log + 1] = "messageerror:" .. e.data end
      post(a, 1, 6)
      run()
      assert.same({ "message:1", "message:2", "messageerror:2", "message:3",
                    "message:4", "message:5", "messageerror:5", "message:6" }, log)
      assert.same({}, errors)
    end)

    it("gives one messageerror in place for a message it cannot decode #threads", function()
      local b = mc.BroadcastChannel(name .. " from a worker")
      finally(function() b:close() end)
      local log = {}
      b.onmessage = function(e) log[#log + 1] = e.data end
      b.onmessageerror = function(e)
        log[#log + 1] = "messageerror " .. tostring(e.data) .. " "
                        .. tostring(has(tostring(e.error), "DataCloneError:"))
      end
      b:unref()
      local signal = mc.MessageChannel()
      -- the worker posts all of them before this thread looks, so that
      -- they come as one run
      local w = mc.Worker([[
local mc = require "messagechannel"
local mt = {}
mc.register("spec.dispatch-run: known only in a worker", mt)
local bc = mc.BroadcastChannel(]] .. string.format("%q", name .. " from a worker") .. [[)
for i = 1, 8 do
  if i == 4 then bc:postMessage(setmetatable({ i }, mt)) else bc:postMessage(i) end
end
bc:close()
mc.workerData:postMessage("posted")
]], { eval = true, data = signal.port1, transfer = { signal.port1 } })
      local deadline = mc.now() + TIMEOUT
      while signal.port2:pending() == 0 and mc.now() < deadline do end
      assert.equal(1, signal.port2:pending())
      run()
      assert.same({ 1, 2, 3, "messageerror nil true", 5, 6, 7, 8 }, log)
      assert.same({}, errors)
      assert.truthy(w)
    end)
  end)
end)
