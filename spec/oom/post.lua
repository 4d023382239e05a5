-- postMessage under allocation failure: it queues the message and detaches
-- its transfer list, or raises with nothing queued and nothing detached.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

-- Whether the action posted: it completed and returned true.
local function posted(ok, r)
  return ok and r == true
end

cases[#cases + 1] = {
  name = "plain",
  setup = function()
    local ch = mc.MessageChannel()
    return { p1 = ch.port1, p2 = ch.port2, msg = H.sample(10) }
  end,
  action = function(c)
    return c.p1:postMessage(c.msg)
  end,
  check = function(c, ok, r)
    H.expect(ok and r == true or not ok, "postMessage returned %s",
             tostring(r))
    local got = H.drain(c.p2, "plain")
    if posted(ok, r) then
      H.expect(#got == 1 and H.same(got[1], c.msg),
               "postMessage returned true, and %d messages arrived", #got)
    else
      H.expect(#got == 0, "postMessage raised, and %d messages arrived later",
               #got)
    end
    H.delivers(c.p1, c.p2, "p1 -> p2")
    H.delivers(c.p2, c.p1, "p2 -> p1")
  end,
}

-- To a started port with a listener in the same state: the post kicks it.
cases[#cases + 1] = {
  name = "local",
  setup = function()
    local ch = mc.MessageChannel()
    local rec = H.recorder(2)
    ch.port2.onmessage = rec.on_message
    ch.port2.onmessageerror = rec.on_error
    return { p1 = ch.port1, p2 = ch.port2, rec = rec }
  end,
  action = function(c)
    return c.p1:postMessage(1)
  end,
  check = function(c, ok, r)
    H.run("after the post")
    H.expect(c.rec.count[1] == (posted(ok, r) and 1 or 0),
             "postMessage %s, and the message arrived %d times",
             ok and "completed" or "raised", c.rec.count[1])
    c.p1:postMessage(2)
    H.run("a fresh message")
    H.expect(c.rec.count[2] == 1, "a fresh message arrived %d times",
             c.rec.count[2])
    H.expect(c.rec.count[1] == (posted(ok, r) and 1 or 0),
             "the first message arrived later (%d times)", c.rec.count[1])
  end,
}

cases[#cases + 1] = {
  name = "buffer",
  setup = function()
    local ch = mc.MessageChannel()
    local buf = mc.Buffer("hello bytes")
    return { p1 = ch.port1, p2 = ch.port2, buf = buf,
             msg = { b = buf, n = 1 }, list = { buf } }
  end,
  action = function(c)
    return c.p1:postMessage(c.msg, c.list)
  end,
  check = function(c, ok, r)
    local got = H.drain(c.p2, "buffer")
    if posted(ok, r) then
      H.expect(c.buf.detached, "postMessage completed, and the Buffer is "
               .. "not detached")
      H.expect(#got == 1, "postMessage completed, and %d messages arrived",
               #got)
      H.expect(got[1].b:sub() == "hello bytes", "the Buffer arrived as %q",
               got[1].b:sub())
    else
      H.expect(not c.buf.detached, "postMessage %s, and the Buffer is "
               .. "detached", ok and "returned " .. tostring(r) or "raised")
      H.expect(c.buf:sub() == "hello bytes", "the Buffer holds %q",
               c.buf:sub())
      H.expect(#got == 0, "postMessage raised, and %d messages arrived later",
               #got)
    end
    H.delivers(c.p1, c.p2, "p1 -> p2")
  end,
}

-- A port moves with its queued message.
cases[#cases + 1] = {
  name = "port",
  setup = function()
    local a, b = mc.MessageChannel(), mc.MessageChannel()
    a.port1:postMessage("queued")
    return { a1 = a.port1, a2 = a.port2, b1 = b.port1, b2 = b.port2,
             msg = { p = a.port2 }, list = { a.port2 } }
  end,
  action = function(c)
    return c.b1:postMessage(c.msg, c.list)
  end,
  check = function(c, ok, r)
    local ev = H.receive(c.b2, "port", 0)
    if posted(ok, r) then
      H.dead(c.a2, "the moved port")
      H.expect(ev ~= nil, "postMessage completed, and no message arrived")
      local n = ev.ports[1]
      H.expect(n ~= nil and ev.data.p == n, "the port did not arrive")
      local got = H.drain(n, "the moved port's queue")
      H.expect(#got == 1 and got[1] == "queued", "the moved port's queue "
               .. "holds %s", H.show(got))
      H.delivers(c.a1, n, "a1 -> the moved port")
      H.delivers(n, c.a1, "the moved port -> a1")
    else
      H.expect(ev == nil, "postMessage raised, and a message arrived later")
      local got = H.drain(c.a2, "a2's queue")
      H.expect(#got == 1 and got[1] == "queued", "a2's queue holds %s",
               H.show(got))
      H.delivers(c.a1, c.a2, "a1 -> a2")
      H.delivers(c.a2, c.a1, "a2 -> a1")
    end
    H.delivers(c.b1, c.b2, "b1 -> b2")
  end,
}

-- On a closed port: false, "closed", and nothing detached.
cases[#cases + 1] = {
  name = "closed",
  setup = function()
    local ch = mc.MessageChannel()
    ch.port1:close()
    local buf = mc.Buffer("kept")
    return { p1 = ch.port1, p2 = ch.port2, buf = buf, msg = { b = buf },
             list = { buf } }
  end,
  action = function(c)
    return c.p1:postMessage(c.msg, c.list)
  end,
  check = function(c, ok, r)
    H.expect(not ok or r == false, "postMessage on a closed port returned %s",
             tostring(r))
    H.expect(not c.buf.detached and c.buf:sub() == "kept",
             "postMessage on a closed port detached the Buffer")
    H.dead(c.p1, "the closed port")
  end,
}

cases[#cases + 1] = {
  name = "channel",
  setup = function() return { ch = false } end,
  action = function(c)
    c.ch = mc.MessageChannel()
  end,
  check = function(c, ok)
    if ok then
      H.delivers(c.ch.port1, c.ch.port2, "port1 -> port2")
      H.delivers(c.ch.port2, c.ch.port1, "port2 -> port1")
    end
    local ch = mc.MessageChannel()
    H.delivers(ch.port1, ch.port2, "a new channel")
  end,
}

return cases
