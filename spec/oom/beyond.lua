-- API.md 11 under allocation failure: a bounded post that waits for room,
-- mc.receive on several ports, a BroadcastChannel post and its dispatch.
-- Each completes or raises (or reports) with nothing delivered twice,
-- nothing half-sent, and the objects still usable.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

-- A post at a full partner that waits, in a task, for a reader task.
cases[#cases + 1] = {
  name = "bounded-wait",
  setup = function()
    local ch = mc.MessageChannel({ capacity = 1 })
    local c = { p1 = ch.port1, p2 = ch.port2, rec = H.recorder(2),
                posted = false }
    mc.onerror = c.rec.on_report
    assert(ch.port1:postMessage(1))
    mc.spawn(function() c.posted = ch.port1:postMessage(2) end)
    mc.step()  -- the writer waits now
    mc.spawn(function()
      for _ = 1, 2 do
        local ev = ch.port2:receive(H.BOUND)
        if ev then c.rec.on_message(ev) end
      end
    end)
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    pcall(mc.run, H.BOUND)
    -- drained, then run again: a post still waiting for room goes in
    -- first (posts keep their turn, ahead of the fresh one below)
    for _ = 1, 2 do
      for _, v in ipairs(H.drain(c.p2, "bounded-wait")) do
        c.rec.on_message({ data = v })
      end
      pcall(mc.run, H.BOUND)
    end
    for i = 1, 2 do
      H.expect(c.rec.count[i] <= 1, "message %d delivered %d times", i,
               c.rec.count[i])
    end
    H.expect(c.rec.count[1] == 1 or c.rec.reported > 0,
             "the queued message was lost without a report")
    if c.posted == true then
      H.expect(c.rec.count[2] == 1, "the waiting post returned true and "
               .. "its message arrived %d times", c.rec.count[2])
    end
    H.delivers(c.p1, c.p2, "p1 -> p2 after")
  end,
}

-- A bounded post with a transfer list that times out: nothing detached.
cases[#cases + 1] = {
  name = "bounded-timeout",
  setup = function()
    local ch = mc.MessageChannel({ capacity = 1 })
    assert(ch.port1:postMessage(0))
    return { p1 = ch.port1, p2 = ch.port2, buf = mc.Buffer("xyz") }
  end,
  action = function(c)
    return c.p1:postMessage(c.buf, { transfer = { c.buf }, timeout = 0 })
  end,
  check = function(c, ok, r)
    H.expect(not ok or r == false, "a post to a full port gave %s",
             tostring(r))
    H.expect(not c.buf.detached, "the Buffer was detached by a post that "
             .. "did not happen")
    local got = H.drain(c.p2, "bounded-timeout")
    H.expect(#got == 1 and got[1] == 0, "the port holds %s", H.show(got))
    H.delivers(c.p1, c.p2, "p1 -> p2 after")
  end,
}

-- A task waits in mc.receive on two ports; a post reaches one of them.
cases[#cases + 1] = {
  name = "receive-many",
  setup = function()
    local a, b = mc.MessageChannel(), mc.MessageChannel()
    local c = { a1 = a.port1, a2 = a.port2, b1 = b.port1, b2 = b.port2,
                rec = H.recorder(2), from = false }
    mc.onerror = c.rec.on_report
    mc.spawn(function()
      local ev, port = mc.receive({ a.port2, b.port2 })
      if ev then
        c.rec.on_message(ev)
        c.from = port
      end
    end)
    mc.step()  -- it waits now
    assert(b.port1:postMessage(1))
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    pcall(mc.run, H.BOUND)
    local left = H.drain(c.b2, "receive-many")
    H.expect(c.rec.count[1] + #left == 1 or c.rec.reported > 0,
             "the message arrived %d times and %d wait (%d reports)",
             c.rec.count[1], #left, c.rec.reported)
    if c.rec.count[1] == 1 then
      H.expect(c.from == c.b2, "mc.receive named the wrong port")
    end
    -- the waiter left both ports: a new message waits for a reader
    H.delivers(c.a1, c.a2, "a after")
    H.delivers(c.b1, c.b2, "b after")
  end,
}

-- A broadcast to two other channels here, dispatched to their listeners.
cases[#cases + 1] = {
  name = "broadcast",
  setup = function()
    local name = "oom-broadcast"
    local c = { a = mc.BroadcastChannel(name), b = mc.BroadcastChannel(name),
                d = mc.BroadcastChannel(name), rb = H.recorder(2),
                rd = H.recorder(2) }
    c.b.onmessage, c.d.onmessage = c.rb.on_message, c.rd.on_message
    c.b.onmessageerror, c.d.onmessageerror = c.rb.on_error, c.rd.on_error
    mc.onerror = c.rb.on_report
    c.b:unref()
    c.d:unref()
    return c
  end,
  action = function(c)
    c.a:postMessage(1)
    return mc.run(H.BOUND)
  end,
  check = function(c)
    pcall(mc.run, H.BOUND)
    -- out of memory a receiver may miss a broadcast (README: as a closed
    -- one would), never get it twice
    for _, rec in ipairs { c.rb, c.rd } do
      H.expect(rec.count[1] <= 1, "a broadcast arrived %d times",
               rec.count[1])
    end
    -- still working afterwards
    c.a:postMessage(2)
    pcall(mc.run, H.BOUND)
    H.expect(c.rb.count[2] == 1 and c.rd.count[2] == 1,
             "a later broadcast arrived %d and %d times", c.rb.count[2],
             c.rd.count[2])
    for _, bc in ipairs { c.a, c.b, c.d } do bc:close() end
  end,
}

return cases
