-- Dispatch by the scheduler under allocation failure: mc.run() may raise,
-- but every message is delivered exactly once, in order, or an error says
-- so (a messageerror event, or a report to mc.onerror); the next mc.run()
-- delivers what is left.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

local N = 4

-- A channel whose port2 has a message listener (rec) and N messages.
local function loaded(rec)
  local ch = mc.MessageChannel()
  ch.port2.onmessage = rec.on_message
  ch.port2.onmessageerror = rec.on_error
  mc.onerror = rec.on_report
  for i = 1, N do ch.port1:postMessage(i) end
  return ch
end

local function run_action()
  return mc.run(H.BOUND)
end

-- After the action: mc.run() goes idle, each message arrived once, and a
-- fresh one (N + 1) arrives once too.
local function check_all(c, what)
  H.run(what)
  H.delivered_once(c.rec, what, N, c.rec.reported)
  for _, p in ipairs(c.idle or {}) do H.idle(p, what) end
  c.p1:postMessage(N + 1)
  H.run("a fresh message")
  H.expect(c.rec.count[N + 1] == 1, "a fresh message arrived %d times",
           c.rec.count[N + 1])
end

cases[#cases + 1] = {
  name = "messages",
  setup = function()
    local rec = H.recorder(N + 1)
    local ch = loaded(rec)
    return { rec = rec, p1 = ch.port1, p2 = ch.port2, idle = { ch.port2 } }
  end,
  action = run_action,
  check = function(c) check_all(c, "dispatch") end,
}

cases[#cases + 1] = {
  name = "step",
  setup = function()
    local rec = H.recorder(N + 1)
    local ch = loaded(rec)
    return { rec = rec, p1 = ch.port1, p2 = ch.port2, idle = { ch.port2 } }
  end,
  action = function() return mc.step() end,
  check = function(c) check_all(c, "mc.step") end,
}

-- Several listeners, one of them once: each is called once per message.
cases[#cases + 1] = {
  name = "listeners",
  setup = function()
    local a, b, once = H.recorder(N + 1), H.recorder(N + 1), H.recorder(N + 1)
    local ch = mc.MessageChannel()
    mc.onerror = a.on_report
    ch.port2:addEventListener("message", a.on_message)
    ch.port2:addEventListener("message", once.on_message, { once = true })
    ch.port2:addEventListener("message", b.on_message)
    ch.port2:start()
    for i = 1, N do ch.port1:postMessage(i) end
    return { rec = a, b = b, once = once, p1 = ch.port1 }
  end,
  action = run_action,
  check = function(c)
    check_all(c, "listener a")
    H.delivered_once(c.b, "listener b", N + 1, c.rec.reported)
    H.expect(c.once.n == 1, "a once listener was called %d times", c.once.n)
  end,
}

-- A listener that raises for odd messages: each of those gets one
-- messageerror, and the others go on.
cases[#cases + 1] = {
  name = "errors",
  setup = function()
    local rec = H.recorder(N + 1)
    local ch = mc.MessageChannel()
    local on_message = rec.on_message
    ch.port2.onmessage = function(ev)
      on_message(ev)
      if ev.data % 2 == 1 then error("odd", 0) end
    end
    ch.port2.onmessageerror = rec.on_error
    mc.onerror = rec.on_report
    for i = 1, N do ch.port1:postMessage(i) end
    return { rec = rec, p1 = ch.port1 }
  end,
  action = run_action,
  check = function(c)
    check_all(c, "raising listener")
    local missing = 0
    for i = 1, N, 2 do
      if c.rec.errors[i] == 0 then missing = missing + 1 end
    end
    H.expect(missing <= c.rec.reported, "%d messageerror events missing "
             .. "and %d reports (errors %s)", missing, c.rec.reported,
             H.show(c.rec.errors, N))
  end,
}

-- Two ports of one state: messages arrive in global post order.
cases[#cases + 1] = {
  name = "order",
  setup = function()
    local rec = H.recorder(N + 1)
    local a, b = mc.MessageChannel(), mc.MessageChannel()
    for _, p in ipairs({ a.port2, b.port2 }) do
      p.onmessage = rec.on_message
      p.onmessageerror = rec.on_error
    end
    mc.onerror = rec.on_report
    for i = 1, N do
      (i % 2 == 1 and a or b).port1:postMessage(i)
    end
    return { rec = rec, p1 = a.port1, idle = { a.port2, b.port2 } }
  end,
  action = run_action,
  check = function(c) check_all(c, "two ports") end,
}

-- A listener that posts back: a chain of messages between two ports.
cases[#cases + 1] = {
  name = "chain",
  setup = function()
    local rec = H.recorder(N + 1)
    local ch = mc.MessageChannel()
    local on_message = rec.on_message
    ch.port2.onmessage = function(ev)
      on_message(ev)
      if ev.data < N then ch.port2:postMessage(ev.data + 1) end
    end
    ch.port1.onmessage = function(ev) ch.port1:postMessage(ev.data) end
    ch.port2.onmessageerror = rec.on_error
    mc.onerror = rec.on_report
    ch.port1:postMessage(1)
    return { rec = rec, p1 = ch.port1, p2 = ch.port2, idle = { ch.port2 } }
  end,
  action = run_action,
  check = function(c, ok)
    H.run("a chain")
    -- a broken link ends the chain: it must have been reported
    local last = 0
    for i = 1, N do
      H.expect(c.rec.count[i] <= 1, "message %d arrived %d times", i,
               c.rec.count[i])
      if c.rec.count[i] == 1 then last = i end
    end
    -- the listener's error was reported, or raised out of mc.run()
    H.expect(last == N or not ok or c.rec.reported > 0
             or (last > 0 and c.rec.errors[last] > 0),
             "the chain stopped at %d with no error reported", last)
    H.idle(c.p1, "port1")
    H.idle(c.p2, "port2")
  end,
}

-- A close as the first token of a fresh scheduler, to one onclose: its
-- listener is called from C one level below the runner (Lua 5.2 and
-- later), whose call frame must exist before the close is taken.
cases[#cases + 1] = {
  name = "close-first",
  setup = function()
    local ch = mc.MessageChannel()
    local c = { closes = 0, reported = 0 }
    mc.onerror = function() c.reported = c.reported + 1 end
    ch.port2.onclose = function() c.closes = c.closes + 1 end
    ch.port1:close()
    return c
  end,
  action = run_action,
  check = function(c)
    H.run("the close")
    H.expect(c.closes == 1, "close events: %d (reported %d)", c.closes,
             c.reported)
  end,
}

return cases
