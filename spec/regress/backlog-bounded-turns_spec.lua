-- With a large backlog, one poll took every message that had arrived
-- since the last, and queued a run-queue token for each before anything
-- else could run: a worker that posts faster than the main state's
-- listener takes its messages left 100,000s behind, and a poll then spent
-- tens of milliseconds, once over a second, queueing tokens (and growing
-- the run queue's table), with neither the listener nor a due timer
-- running meanwhile; the time grew with the backlog, though a listener's
-- turns are to delay a timer by a few messages only (API.md 3.1, the
-- README's Fairness). Starting a port that held such a backlog did the
-- same at once. A poll, and a kick, now queue tokens for a bounded number
-- of messages, the oldest by arrival across ports; the rest come at the
-- next polls, and a task woken meanwhile runs after a bounded number of
-- messages, however large the backlog.
--
-- A post that found its port's queue full held the queue's lock while it
-- moved the queue to a ring twice as large, one slot at a time, the new
-- ring's pages faulted in as it went: for a backlog of 256 K messages
-- 13 ms of CPU time, 190 ms at 4 M, while the receiving thread waited
-- for the lock. The writer now makes the new ring, pages and all, before
-- it takes the lock, and moves the messages in two copies (5 ms at 4 M).
--
-- While a poll's part of the backlog waited, a broadcast made in the
-- state passed the rest of it; and a turn that a timer ended early left
-- most of a poll's tokens queued while the next poll queued 1,024 more,
-- so the run queue grew to hold the backlog after all. A broadcast made
-- here now waits behind what the poll left, and a poll takes no more
-- than 1,024 less what the last ones left queued.
--
-- The backlog is there before the scheduler runs: the worker posts it
-- all and then writes a file, which this state waits for without running
-- the scheduler; what is counted does not depend on timing.

local mc = require "messagechannel"
local helper = require "spec.helper"

local N = 100000  -- the backlog
local MOST = 5000  -- messages dispatched before the task wakes, at most

local wait_for_file = helper.wait_for_file

-- Asserts that seq is a1 b1 a2 b2 ... an bn.
local function assert_interleaved(seq, n)
  local bad
  for i = 1, n do
    if seq[2 * i - 1] ~= "a" .. i or seq[2 * i] ~= "b" .. i then
      bad = i
      break
    end
  end
  assert.is_nil(bad, "out of order at message " .. tostring(bad))
end

-- A worker that posts 1..n to each port it is given, in turn (a1 b1 a2
-- b2 ...), closes them, then writes "posted" to the file at path.
local function poster(ports, n, path)
  return mc.Worker([[
    local mc = require "messagechannel"
    local d = mc.workerData
    for i = 1, d.n do
      for _, p in ipairs(d.ports) do p:postMessage(i) end
    end
    for _, p in ipairs(d.ports) do p:close() end
    local f = assert(io.open(d.path, "w"))
    f:write("posted")
    f:close()
  ]], { eval = true, data = { ports = ports, n = n, path = path },
        transfer = ports })
end

describe("regress: a backlog of messages", function()
  it("lets a task woken by sleep(0) run after a bounded number of them",
     function()
    local ch, path = mc.MessageChannel(), os.tmpname()
    local w = poster({ ch.port1 }, N, path)
    wait_for_file(path)
    local got, ordered, closed_after, at = 0, true, nil, nil
    ch.port2.onmessage = function(ev)
      got = got + 1
      if ev.data ~= got then ordered = false end
    end
    ch.port2.onclose = function() closed_after = got end
    mc.spawn(function()
      mc.sleep(0)
      at = got
    end)
    assert.is_true(mc.run(60))
    w:terminate()
    os.remove(path)
    assert.is_true(at <= MOST, "woke after " .. at .. " messages")
    assert.equal(N, got)
    assert.is_true(ordered)
    assert.equal(N, closed_after)
  end)

  it("lets a timer that is due run after a bounded number of them",
     function()
    local ch, path = mc.MessageChannel(), os.tmpname()
    local got, at, due = 0, nil, nil
    mc.spawn(function()
      due = mc.now() + 0.001
      mc.sleep(0.001)
      at = got
    end)
    mc.step()  -- the task sleeps; nothing has come yet
    assert.is_nil(at)
    local w = poster({ ch.port1 }, N, path)
    wait_for_file(path)
    repeat until mc.now() > due
    ch.port2.onmessage = function() got = got + 1 end
    assert.is_true(mc.run(60))
    w:terminate()
    os.remove(path)
    assert.is_true(at <= MOST, "woke after " .. at .. " messages")
    assert.equal(N, got)
  end)

  it("held at a port started later is queued a bounded part at a time",
     function()
    local ch = mc.MessageChannel()
    for i = 1, N do ch.port1:postMessage(i) end
    local got, ordered, at = 0, true, nil
    mc.spawn(function()
      mc.sleep(0)
      at = got
    end)
    mc.step()  -- the task sleeps
    ch.port2.onmessage = function(ev)  -- starts the port
      got = got + 1
      if ev.data ~= got then ordered = false end
    end
    ch.port1:close()
    assert.is_true(mc.run(60))
    assert.is_true(at <= MOST, "woke after " .. at .. " messages")
    assert.equal(N, got)
    assert.is_true(ordered)
  end)

  it("of an ended worker is dispatched before its exit, though older "
     .. "messages of another go first", function()
    local n, got, exits = N / 5, {}, {}
    local function start(k, path)
      local w = mc.Worker([[
        local mc = require "messagechannel"
        local d = mc.workerData
        for i = 1, d.n do mc.parentPort:postMessage(i) end
        local f = assert(io.open(d.path, "w"))
        f:write("posted")
        f:close()
      ]], { eval = true, data = { n = n, path = path } })
      got[k] = 0
      w.onmessage = function() got[k] = got[k] + 1 end
      w.onexit = function() exits[k] = got[k] end
      return w
    end
    local paths = { os.tmpname(), os.tmpname() }
    start(1, paths[1])
    wait_for_file(paths[1])
    start(2, paths[2])  -- all its messages arrive after the first's
    wait_for_file(paths[2])
    assert.is_true(mc.run(60))
    for _, path in ipairs(paths) do os.remove(path) end
    assert.same({ n, n }, got)
    assert.same({ n, n }, exits)
  end)

  it("goes before a broadcast made here after it", function()
    -- a poll takes a part of the backlog; what a listener then broadcasts
    -- here reached this state after every message of it, and waits for
    -- all of them (README, BroadcastChannel), at a channel the backlog
    -- did not reach too
    local x, path = mc.MessageChannel(), os.tmpname()
    local n = math.floor(N / 20)
    local w = poster({ x.port1 }, n, path)
    wait_for_file(path)
    local bc_a, bc_b = mc.BroadcastChannel("backlog-bounded-here"),
                       mc.BroadcastChannel("backlog-bounded-here")
    local got, seq = 0, {}
    x.port2.onmessage = function(ev)
      got = got + 1
      if ev.data == 1 then bc_a:postMessage("A") end
    end
    bc_b.onmessage = function(ev)
      seq[#seq + 1] = ev.data .. "@" .. got
      bc_b:close()
    end
    assert.is_true(mc.run(60))
    bc_a:close()
    w:terminate()
    os.remove(path)
    assert.equal("A@" .. n, table.concat(seq, " "))
  end)

  it("lets a task woken by sleep(0) run after a bounded number of them "
     .. "while a timer ends each turn early", function()
    -- each turn ends when the 0.5 ms timer falls due, after a few dozen
    -- messages; a poll still queued up to 1,024 more tokens at each turn,
    -- so the run queue grew to hold most of the backlog, and a task woken
    -- late waited behind all of it. A poll now takes no more while the
    -- tokens the last ones queued are still there.
    local ch, path = mc.MessageChannel(), os.tmpname()
    local w = poster({ ch.port1 }, N, path)
    wait_for_file(path)
    local got, done, first, woke = 0, false, nil, nil
    ch.port2.onmessage = function()
      got = got + 1
      local t = os.clock() + 20e-6  -- a listener slower than the timer's
      while os.clock() < t do end   -- period allows many of per turn
      if got == N / 5 then
        mc.spawn(function()
          first = got
          mc.sleep(0)
          woke = got
        end)
      end
    end
    ch.port2.onclose = function() done = true end
    mc.spawn(function()
      while not done do mc.sleep(0.0005) end
    end)
    assert.is_true(mc.run(120))
    w:terminate()
    os.remove(path)
    assert.equal(N, got)
    assert.is_true(first - N / 5 <= MOST, "ran after " .. first - N / 5)
    assert.is_true(woke - first <= MOST, "woke after " .. woke - first)
  end)

  it("with held messages of a port started in a listener, between two "
     .. "broadcasts here, is all dispatched in order", function()
    -- the second broadcast runs a poll's merge while the run queue still
    -- holds the tokens of the first's (it may take no message then), and
    -- the started port has messages due without tokens: that merge kept
    -- none of them by reading before its array (AddressSanitizer)
    local held = 3000
    local b, a = mc.MessageChannel(), mc.MessageChannel()
    local c1, c2 = mc.BroadcastChannel("backlog-bounded-keep"),
                   mc.BroadcastChannel("backlog-bounded-keep")
    for i = 1, held do b.port2:postMessage(i) end
    local n, path = math.floor(N / 4), os.tmpname()
    local w = poster({ a.port1 }, n, path)
    wait_for_file(path)
    local got_a, got_b, got_c, ordered = 0, 0, 0, true
    c1.onmessage = function() got_c = got_c + 1 end
    a.port2.onmessage = function(ev)
      got_a = got_a + 1
      if ev.data ~= got_a then ordered = false end
      if got_a == 100 then
        c2:postMessage("m1")
        b.port1.onmessage = function(e)  -- starts b: a kick of its held
          got_b = got_b + 1
          if e.data ~= got_b then ordered = false end
          if got_b == held then b.port1:close() end
        end
        c2:postMessage("m2")
      end
    end
    a.port2.onclose = function() c1:close(); c2:close() end
    assert.is_true(mc.run(60))
    w:terminate()
    os.remove(path)
    assert.same({ n, held, 2, true }, { got_a, got_b, got_c, ordered })
  end)

  it("keeps its order when its queue grows while wrapped around", function()
    -- the queue's ring: 4096 slots, full, its head at 1000 when it grows
    local ch = mc.MessageChannel()
    for i = 1, 4096 do ch.port1:postMessage(i) end
    for i = 1, 1000 do assert.equal(i, ch.port2:receive(0).data) end
    for i = 4097, 6000 do ch.port1:postMessage(i) end
    local bad
    for i = 1001, 6000 do
      local ev = ch.port2:receive(0)
      if not ev or ev.data ~= i then
        bad = i
        break
      end
    end
    assert.is_nil(bad, "out of order at message " .. tostring(bad))
    assert.equal(0, ch.port2:pending())
    ch.port1:close()
  end)

  it("from one thread to two ports still comes in post order", function()
    local a, b, path = mc.MessageChannel(), mc.MessageChannel(), os.tmpname()
    local n = N / 4
    local w = poster({ a.port1, b.port1 }, n, path)
    wait_for_file(path)
    local seq, closes = {}, {}
    a.port2.onmessage = function(ev) seq[#seq + 1] = "a" .. ev.data end
    b.port2.onmessage = function(ev) seq[#seq + 1] = "b" .. ev.data end
    a.port2.onclose = function() closes.a = #seq end
    b.port2.onclose = function() closes.b = #seq end
    assert.is_true(mc.run(60))
    w:terminate()
    os.remove(path)
    assert.equal(2 * n, #seq)
    assert_interleaved(seq, n)
    -- each close after its port's last message (a's may come before b's
    -- last: closes are not ordered across ports)
    assert.is_true(closes.a >= 2 * n - 1)
    assert.equal(2 * n, closes.b)
  end)

  it("cut short at a poll's bound keeps the post order of the ports past it",
     function()
    -- sized for a poll of 1,024 messages: a1..a511 d1..d511 b1 c1 fill
    -- it, c2 and b2 wait for the next; a, d, b and c are closed by then
    local path, names = os.tmpname(), { "a", "d", "b", "c" }
    local chans, fars, seq = {}, {}, {}
    for i, k in ipairs(names) do
      chans[i] = mc.MessageChannel()
      fars[i] = chans[i].port1
      chans[i].port2.onmessage = function(ev) seq[#seq + 1] = k .. ev.data end
    end
    local w = mc.Worker([[
      local mc = require "messagechannel"
      local d = mc.workerData
      local a, dd, b, c = d.ports[1], d.ports[2], d.ports[3], d.ports[4]
      for i = 1, 511 do a:postMessage(i) end
      for i = 1, 511 do dd:postMessage(i) end
      b:postMessage(1)
      c:postMessage(1)
      c:postMessage(2)
      b:postMessage(2)
      for _, p in ipairs(d.ports) do p:close() end
      local f = assert(io.open(d.path, "w"))
      f:write("posted")
      f:close()
    ]], { eval = true, data = { ports = fars, path = path },
          transfer = fars })
    wait_for_file(path)
    assert.is_true(mc.run(60))
    w:terminate()
    os.remove(path)
    local want = {}
    for i = 1, 511 do want[#want + 1] = "a" .. i end
    for i = 1, 511 do want[#want + 1] = "d" .. i end
    for _, x in ipairs({ "b1", "c1", "c2", "b2" }) do want[#want + 1] = x end
    assert.equal(table.concat(want, " "), table.concat(seq, " "))
  end)

  it("from another thread reaches channels message by message", function()
    local path, name = os.tmpname(), "backlog-bounded-bc"
    local n = N / 10
    local seq, chans = {}, {}
    for _, k in ipairs({ "a", "b" }) do
      local bc = mc.BroadcastChannel(name)
      bc.onmessage = function(ev)
        seq[#seq + 1] = k .. tostring(ev.data)
        if k == "b" and ev.data == n then
          for _, c in ipairs(chans) do c:close() end
        end
      end
      chans[#chans + 1] = bc
    end
    local w = mc.Worker([[
      local mc = require "messagechannel"
      local d = mc.workerData
      local bc = mc.BroadcastChannel(d.name)
      for i = 1, d.n do bc:postMessage(i) end
      bc:close()
      local f = assert(io.open(d.path, "w"))
      f:write("posted")
      f:close()
    ]], { eval = true, data = { name = name, n = n, path = path } })
    wait_for_file(path)
    assert.is_true(mc.run(60))
    w:terminate()
    os.remove(path)
    assert.equal(2 * n, #seq)
    assert_interleaved(seq, n)
  end)
end)
