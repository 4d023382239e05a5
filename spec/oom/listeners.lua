-- Handler fields and addEventListener/removeEventListener under allocation
-- failure: the listener is registered (and a handler field reads back
-- what it was set to), or the call raised and nothing changed.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

local function channel()
  local ch = mc.MessageChannel()
  local old, new = H.recorder(3), H.recorder(3)
  mc.onerror = old.on_report
  return { p1 = ch.port1, p2 = ch.port2, old = old, new = new }
end

-- Posts message i and runs: returns how many times each recorder got it.
local function deliver(c, i)
  c.p1:postMessage(i)
  H.run("a message after the change")
  return c.old.count[i], c.new.count[i]
end

cases[#cases + 1] = {
  name = "onmessage",
  setup = channel,
  action = function(c) c.p2.onmessage = c.new.on_message end,
  check = function(c, ok)
    local f = c.p2.onmessage
    if ok then
      H.expect(f == c.new.on_message, "onmessage reads back %s", tostring(f))
      local _, n = deliver(c, 1)
      H.expect(n == 1, "onmessage was set, and got a message %d times", n)
    else
      H.expect(f == nil, "setting onmessage raised, and it reads back %s",
               tostring(f))
      local _, n = deliver(c, 1)
      H.expect(n == 0, "setting onmessage raised, and it got a message")
      local got = H.drain(c.p2, "the queue")
      H.expect(#got == 1, "setting onmessage raised, and the queue holds %s",
               H.show(got))
    end
  end,
}

cases[#cases + 1] = {
  name = "replace",
  setup = function()
    local c = channel()
    c.p2.onmessage = c.old.on_message
    return c
  end,
  action = function(c) c.p2.onmessage = c.new.on_message end,
  check = function(c, ok)
    local want = ok and c.new or c.old
    H.expect(c.p2.onmessage == want.on_message, "onmessage reads back the "
             .. "%s handler", ok and "old" or "new")
    local o, n = deliver(c, 1)
    H.expect(o + n == 1 and want.count[1] == 1, "a message reached the old "
             .. "handler %d times and the new one %d times", o, n)
  end,
}

cases[#cases + 1] = {
  name = "clear",
  setup = function()
    local c = channel()
    c.p2.onmessage = c.old.on_message
    return c
  end,
  action = function(c) c.p2.onmessage = nil end,
  check = function(c, ok)
    local o = deliver(c, 1)
    if ok then
      H.expect(c.p2.onmessage == nil, "onmessage = nil, and it reads back "
               .. "a function")
      H.expect(o == 0, "onmessage = nil, and the handler still got a "
               .. "message")
    else
      H.expect(c.p2.onmessage == c.old.on_message and o == 1, "onmessage "
               .. "= nil raised, and the handler is gone")
    end
  end,
}

cases[#cases + 1] = {
  name = "add",
  setup = function()
    local c = channel()
    c.p2:start()
    return c
  end,
  action = function(c)
    return c.p2:addEventListener("message", c.new.on_message)
  end,
  check = function(c, ok)
    local _, n = deliver(c, 1)
    H.expect(n == (ok and 1 or 0), "addEventListener %s, and the listener "
             .. "got a message %d times", ok and "completed" or "raised", n)
    if not ok then
      local got = H.drain(c.p2, "the queue")
      H.expect(#got == 1, "the queue holds %s", H.show(got))
    end
  end,
}

cases[#cases + 1] = {
  name = "remove",
  setup = function()
    local c = channel()
    c.p2:addEventListener("message", c.old.on_message)
    c.p2:start()
    return c
  end,
  action = function(c)
    return c.p2:removeEventListener("message", c.old.on_message)
  end,
  check = function(c, ok)
    local o = deliver(c, 1)
    H.expect(o == (ok and 0 or 1), "removeEventListener %s, and the "
             .. "listener got a message %d times", ok and "completed"
             or "raised", o)
  end,
}

cases[#cases + 1] = {
  name = "onclose",
  setup = channel,
  action = function(c) c.p2.onclose = c.new.on_close end,
  check = function(c, ok)
    c.p1:close()
    H.run("close")
    H.expect(c.new.closes == (ok and 1 or 0), "onclose %s, and it got %d "
             .. "close events", ok and "was set" or "raised", c.new.closes)
  end,
}

-- dispatchEvent runs the listeners now.
cases[#cases + 1] = {
  name = "dispatchEvent",
  setup = function()
    local c = channel()
    c.pings = 0
    c.p2:addEventListener("ping", function() c.pings = c.pings + 1 end)
    c.ev = { type = "ping" }
    return c
  end,
  action = function(c) return c.p2:dispatchEvent(c.ev) end,
  check = function(c, ok)
    H.expect(c.pings <= 1, "a listener ran %d times", c.pings)
    if ok then H.expect(c.pings == 1, "dispatchEvent ran no listener") end
  end,
}

return cases
