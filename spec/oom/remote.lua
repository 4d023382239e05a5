-- Remote ports (API.md 12) under allocation failure: mc.listen and
-- listener:close(), mc.connect and an exchange each way over the socket,
-- postMessage with a Buffer in the transfer list, the dispatch of messages
-- that came over a link, and a close event with a reason. Both ends are in
-- this Lua state; the link goes over a Unix or TCP socket through the
-- network thread, whose own allocations are not injected. Each completes
-- or raises (or reports to mc.onerror) with nothing half-done, nothing
-- delivered twice, nothing lost silently, and the objects still usable.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

-- A fresh Unix socket path (nothing there yet): unique per process, since
-- every point runs in a process of its own.
local function socket_path()
  local path = os.tmpname()
  os.remove(path)
  return path
end

-- Whether something (a socket file) is at path: a socket cannot be opened
-- as a file, but only ENOENT (2) says that nothing is there.
local function exists(path)
  local f, _, code = io.open(path, "r")
  if f then
    f:close()
    return true
  end
  return code ~= 2
end

-- Runs the scheduler until cond() holds; a finding after H.BOUND seconds.
local function await(what, cond)
  local deadline = mc.now() + H.BOUND
  while not cond() do
    if mc.now() > deadline then H.fail("gave up waiting for %s", what) end
    local ok, err = pcall(mc.sleep, 0.005)
    if not ok then
      H.fail("waiting for %s: mc.sleep raised: %s", what, tostring(err))
    end
  end
end

local function is_closed(port)
  return tostring(port) == "MessagePort (closed)"
end

-- The next message at port within the bound: its data, or nil and why not.
local function next_data(port, what)
  local ev, why = H.receive(port, what)
  if ev then return ev.data end
  return nil, why
end

-- A fresh message reaches b from a, over the link, once and alone.
local fresh = 0
local function crosses(a, b, what)
  fresh = fresh + 1
  local token = "fresh " .. fresh
  local ok, r = pcall(a.postMessage, a, token)
  H.expect(ok and r == true, "%s: postMessage of a fresh message gave %s",
           what, tostring(r))
  local got, why = next_data(b, what)
  H.expect(got == token, "%s: a fresh message arrived as %s (%s)", what,
           tostring(got), tostring(why))
  local left = H.drain(b, what)
  H.expect(#left == 0, "%s: after a fresh message, %s arrived", what,
           H.show(left))
end

-- A listener (unref'd: it does not keep mc.run() going) whose connect
-- events put their port in c.sp, counted in c.nconn.
local function listener(c, address)
  local l = mc.listen(address)
  l:unref()
  l.onconnect = function(ev)
    c.nconn = c.nconn + 1
    c.sp = ev.port
  end
  return l
end

-- A link made before the action: c.p (the connecting side) and c.sp (the
-- port its listener got), both unref'd; reports count in c.rep.
local function linked(address)
  local c = { path = address:match("^unix:(.*)"), nconn = 0, sp = false,
              rep = 0 }
  mc.onerror = function() c.rep = c.rep + 1 end
  c.l = listener(c, address)
  c.address = c.l.address
  c.p = mc.connect(c.address)
  c.p:unref()
  await("the connect event", function() return c.sp end)
  c.sp:unref()
  crosses(c.p, c.sp, "setup: p -> sp")
  crosses(c.sp, c.p, "setup: sp -> p")
  return c
end

-- Closes what a case made: the link's close reaches the other side, and a
-- Unix socket's path goes with its listener.
local function close_all(c, what)
  if c.p then c.p:close() end
  if c.sp then c.sp:close() end
  if c.l then c.l:close() end
  local ok, r = pcall(mc.run, H.BOUND)
  H.expect(ok and r == true, "%s: mc.run() after closing everything gave %s",
           what, tostring(r))
  if c.path then
    await("the socket path to go", function() return not exists(c.path) end)
  end
end

-- 1. mc.listen on a Unix socket, then listener:close(): the path is
-- removed, and the address can be listened on again.
cases[#cases + 1] = {
  name = "listen",
  setup = function()
    local path = socket_path()
    return { path = path, address = "unix:" .. path, l = false,
             closed = false }
  end,
  action = function(c)
    c.l = mc.listen(c.address)
    c.l:close()
    c.closed = true
  end,
  check = function(c, ok)
    if c.l and not c.closed then
      -- close() raised: the listener still works, or is closed; closing
      -- it again is harmless
      H.expect(not ok, "the action completed without closing")
      c.l:close()
    end
    if not c.l then
      -- mc.listen raised. When that was after the bind, the address is
      -- freed at once when memory allows closing the port, else when the
      -- collector finds the port (a retry meanwhile gets "address in use")
      collectgarbage()
      collectgarbage()
    end
    await("the socket path to go", function() return not exists(c.path) end)
    -- nobody listens there: a connect is refused
    local q = mc.connect(c.address)
    local got, why = next_data(q, "connect after close")
    H.expect(got == nil and why == "closed", "a connect after the close "
             .. "gave %s, %s", tostring(got), tostring(why))
    -- and the address can be listened on again, and works
    local d = { nconn = 0, sp = false }
    local l2 = listener(d, c.address)
    H.expect(exists(c.path), "a second listen made no socket file")
    local p = mc.connect(c.address)
    p:unref()
    await("the connect event", function() return d.sp end)
    crosses(p, d.sp, "p -> sp")
    crosses(d.sp, p, "sp -> p")
    H.expect(d.nconn == 1, "%d connect events for one connect", d.nconn)
    close_all({ l = l2, p = p, sp = d.sp, path = c.path }, "listen")
  end,
}

-- 2. mc.connect to a listener here (TCP) and an exchange each way, driven
-- by mc.run(): the connecting side posts 1, the listener's port answers 2.
-- Each side unrefs its port once its part is done, and a report unrefs
-- both, so that mc.run() goes idle. The check finishes what the action did
-- not, then sends a marker each way: what the action sent was dispatched
-- (or reported) before its marker. The link and the listener still work.
cases[#cases + 1] = {
  name = "connect",
  setup = function()
    local c = { nconn = 0, sp = false, p = false, rep = 0, sent1 = false,
                sent2 = false, n1 = 0, n2 = 0, m1 = 0, m2 = 0, other = 0 }
    mc.onerror = function()
      c.rep = c.rep + 1
      if c.p then c.p:unref() end
      if c.sp then c.sp:unref() end
    end
    function c.serve(e)
      local d = e.data
      if d == 1 then
        c.n1 = c.n1 + 1
        c.sent2 = c.sp:postMessage(2)
        c.sp:unref()
      elseif d == "m1" then
        c.m1 = c.m1 + 1
      else
        c.other = c.other + 1
      end
    end
    function c.client(e)
      local d = e.data
      if d == 2 then
        c.n2 = c.n2 + 1
        c.p:unref()
      elseif d == "m2" then
        c.m2 = c.m2 + 1
      else
        c.other = c.other + 1
      end
    end
    c.l = mc.listen("tcp:127.0.0.1:0")
    c.l:unref()
    c.address = c.l.address
    c.l.onconnect = function(ev)
      c.nconn = c.nconn + 1
      c.sp = ev.port
      ev.port.onmessage = c.serve
    end
    return c
  end,
  action = function(c)
    c.p = mc.connect(c.address)
    c.p.onmessage = c.client
    c.sent1 = c.p:postMessage(1)
    return mc.run(H.BOUND)
  end,
  check = function(c, ok, r)
    local what = ok and "connect completed" or "connect raised"
    H.expect(not ok or r == true, "mc.run() did not go idle: a hang")
    if ok then
      H.expect(c.n1 == 1 and c.n2 == 1 or c.rep > 0, "the action "
               .. "completed, and 1 arrived %d times, 2 %d times (%d "
               .. "reports)", c.n1, c.n2, c.rep)
    end
    -- finish what the action did not: a connect that raised made no link,
    -- a post that raised sent nothing
    if not c.p then c.p = mc.connect(c.address) end
    -- set again: an assignment that raised may have left the handler set
    -- with the port not started (port:start() raised after it)
    c.p.onmessage = c.client
    if c.sent1 ~= true then
      c.sent1 = c.p:postMessage(1)
      H.expect(c.sent1 == true, "a post after the action gave %s",
               tostring(c.sent1))
    end
    c.p:ref()
    -- the link comes up (a connect event that could not be dispatched is
    -- reported, and its port, once collected, closes the link)
    await("the link", function()
      collectgarbage()
      return c.sp or is_closed(c.p)
    end)
    H.expect(c.nconn == (c.sp and 1 or 0), "%s: %d connect events for one "
             .. "connect", what, c.nconn)
    if not c.sp then
      H.expect(c.rep > 0, "%s: the link closed with no connect event and no "
               .. "report", what)
      H.expect(c.n1 == 0 and c.n2 == 0 and c.other == 0, "%s: no link, "
               .. "and messages arrived", what)
    else
      c.sp.onmessage = c.serve  -- again, as for p
      c.sp:ref()
      H.expect(c.p:postMessage("m1") == true, "%s: a marker to sp failed",
               what)
      await("the marker at sp", function() return c.m1 > 0 end)
      H.expect(c.sp:postMessage("m2") == true, "%s: a marker to p failed",
               what)
      await("the marker at p", function() return c.m2 > 0 end)
      H.expect(c.m1 == 1 and c.m2 == 1 and c.other == 0, "%s: markers "
               .. "arrived %d and %d times, %d other messages", what, c.m1,
               c.m2, c.other)
      H.expect(c.n1 <= 1 and c.n2 <= 1, "%s: 1 arrived %d times, 2 %d "
               .. "times", what, c.n1, c.n2)
      H.expect(c.n1 == 1 or c.rep > 0, "%s: 1 was lost with no report",
               what)
      if c.sent2 == true then
        H.expect(c.n2 == 1 or c.rep > 0, "%s: 2 was sent and lost with no "
                 .. "report", what)
      else
        H.expect(c.n2 == 0, "%s: 2 was not sent, and arrived", what)
      end
      -- the link still works each way
      c.p.onmessage, c.sp.onmessage = nil, nil
      crosses(c.p, c.sp, "p -> sp after")
      crosses(c.sp, c.p, "sp -> p after")
    end
    -- the listener still takes links
    local d = { nconn = 0, sp = false }
    c.l.onconnect = function(ev)
      d.nconn = d.nconn + 1
      d.sp = ev.port
    end
    local p = mc.connect(c.address)
    p:unref()
    await("a new link", function() return d.sp end)
    crosses(p, d.sp, "new p -> sp")
    crosses(d.sp, p, "new sp -> p")
    H.expect(d.nconn == 1 and c.nconn <= 1, "%d connect events for a new "
             .. "connect, %d for the first", d.nconn, c.nconn)
    close_all(c, "connect")
    close_all({ p = p, sp = d.sp }, "connect, the new link")
  end,
}

-- 3. postMessage over a remote port with a Buffer in the transfer list:
-- sent and detached, or raised with the Buffer intact and nothing sent.
cases[#cases + 1] = {
  name = "buffer",
  setup = function()
    local c = linked("unix:" .. socket_path())
    c.buf = mc.Buffer("hello bytes")
    c.msg = { b = c.buf, n = 1 }
    c.list = { c.buf }
    return c
  end,
  action = function(c)
    return c.p:postMessage(c.msg, c.list)
  end,
  check = function(c, ok, r)
    H.expect(not ok or r == true, "postMessage returned %s", tostring(r))
    -- a fresh message after it: whatever the action sent comes before it
    local got = {}
    H.expect(c.p:postMessage("marker") == true, "a post after the action "
             .. "failed")
    repeat
      local v, why = next_data(c.sp, "buffer")
      H.expect(v ~= nil, "the marker did not arrive (%s)", tostring(why))
      if v ~= "marker" then got[#got + 1] = v end
    until v == "marker"
    if ok then
      H.expect(c.buf.detached, "postMessage completed, and the Buffer is "
               .. "not detached")
      H.expect(#got == 1, "postMessage completed, and %d messages arrived",
               #got)
      local m = got[1]
      H.expect(type(m) == "table" and m.n == 1 and type(m.b) == "userdata"
               and m.b:sub() == "hello bytes", "the message arrived as %s",
               tostring(m))
    else
      H.expect(not c.buf.detached, "postMessage raised, and the Buffer is "
               .. "detached")
      H.expect(c.buf:sub() == "hello bytes", "the Buffer holds %q",
               c.buf:sub())
      H.expect(#got == 0, "postMessage raised, and %d messages arrived",
               #got)
      -- the Buffer can still be sent
      H.expect(c.p:postMessage(c.msg, c.list) == true, "a second post of "
               .. "the Buffer failed")
      local m = next_data(c.sp, "the Buffer, again")
      H.expect(type(m) == "table" and m.b:sub() == "hello bytes",
               "the Buffer arrived as %s", tostring(m))
      H.expect(c.buf.detached, "a second post did not detach the Buffer")
    end
    crosses(c.p, c.sp, "p -> sp after")
    crosses(c.sp, c.p, "sp -> p after")
    close_all(c, "buffer")
  end,
}

-- 4. The dispatch of messages that came over a link: each is delivered
-- once, in order, or reported; the next mc.run() delivers what is left.
local N = 4
cases[#cases + 1] = {
  name = "dispatch",
  setup = function()
    local c = linked("tcp:127.0.0.1:0")
    for i = 1, N do assert(c.p:postMessage(i)) end
    await("the messages to arrive", function()
      return c.sp:pending() == N
    end)
    c.rec = H.recorder(N + 1)
    c.sp.onmessage = c.rec.on_message
    c.sp.onmessageerror = c.rec.on_error
    mc.onerror = c.rec.on_report
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    H.run("dispatch")
    H.delivered_once(c.rec, "dispatch", N, c.rec.reported)
    H.idle(c.sp, "dispatch")
    -- a fresh message over the link reaches the listener once
    H.expect(c.p:postMessage(N + 1) == true, "a fresh post failed")
    await("a fresh message", function() return c.rec.count[N + 1] > 0 end)
    H.run("a fresh message")
    H.expect(c.rec.count[N + 1] == 1, "a fresh message arrived %d times",
             c.rec.count[N + 1])
    H.delivered_once(c.rec, "dispatch, then a fresh message", N,
                     c.rec.reported)
    close_all(c, "dispatch")
  end,
}

-- 5. A close event with a reason, dispatched once to each close listener
-- (or its error reported): a connect where nobody listens ("refused"), and
-- one with the wrong token ("auth", which never reaches the listener). The
-- port is closed before the action; its listeners are added then.
-- Counts into c the close events of port q (by onclose and by a listener)
-- and the reports to mc.onerror, and keeps the reason.
local function watch_close(c, q)
  c.q, c.closes, c.after, c.reason, c.rep = q, 0, 0, false, 0
  mc.onerror = function() c.rep = c.rep + 1 end
  q.onclose = function(ev)
    c.closes = c.closes + 1
    c.reason = ev.reason
  end
  q:addEventListener("close", function() c.after = c.after + 1 end)
  return c
end

local function closed_with(c, q)
  local deadline = mc.now() + H.BOUND
  while not is_closed(q) do  -- without the scheduler: nothing dispatched
    assert(mc.now() < deadline, "the port did not close")
  end
  return watch_close(c, q)
end

local function check_reason(c, reason)
  H.run(reason)
  for _, n in ipairs { c.closes, c.after } do
    H.expect(n == 1 or (n == 0 and c.rep > 0), "close listeners ran %d and "
             .. "%d times (%d reports)", c.closes, c.after, c.rep)
  end
  if c.closes == 1 then
    H.expect(c.reason == reason, "the close event's reason is %s, not %s",
             tostring(c.reason), reason)
  end
  H.dead(c.q, "the " .. reason .. " port")
  local ev, why = c.q:receive(0)
  H.expect(ev == nil and why == "closed", "receive on the %s port gave %s, "
           .. "%s", reason, tostring(ev), tostring(why))
end

-- A Unix socket nobody listens at refuses at once; the pair closes at
-- the state's next poll (the action's), so the listeners come first here.
cases[#cases + 1] = {
  name = "refused",
  setup = function()
    return watch_close({}, mc.connect("unix:" .. socket_path()))
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c) check_reason(c, "refused") end,
}

-- listener:close() while a link the network thread accepted waits, not
-- yet dispatched, at the listener: it never reaches onconnect, and the
-- connecting port closes with "refused" (at the close, or at the next
-- dispatch when the close raised).
cases[#cases + 1] = {
  name = "close-pending",
  setup = function()
    local d = { nconn = 0 }
    local address = "unix:" .. socket_path()
    local l = listener(d, address)
    local q = mc.connect(l.address)
    local lport
    for _, v in pairs(l) do lport = v.port end  -- the Listener's own port
    local deadline = mc.now() + H.BOUND
    while lport:pending() == 0 do  -- without the scheduler, as above
      assert(mc.now() < deadline, "the link did not reach the listener")
    end
    return watch_close({ l = l, d = d, path = address:sub(6) }, q)
  end,
  action = function(c) c.l:close() end,
  check = function(c)
    check_reason(c, "refused")
    H.expect(c.d.nconn == 0, "a link reached onconnect after the close")
    close_all({ l = c.l, path = c.path }, "close-pending")
  end,
}

cases[#cases + 1] = {
  name = "auth",
  setup = function()
    local d = { nconn = 0, sp = false }
    local l = mc.listen("tcp:127.0.0.1:0", { token = "right" })
    l:unref()
    l.onconnect = function(ev)
      d.nconn = d.nconn + 1
      d.sp = ev.port
    end
    local c = closed_with({ l = l, d = d },
                          mc.connect(l.address, { token = "wrong" }))
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    check_reason(c, "auth")
    H.expect(c.d.nconn == 0, "a peer with the wrong token reached the "
             .. "listener")
    -- the listener still takes a peer with the token
    local p = mc.connect(c.l.address, { token = "right" })
    p:unref()
    await("a link with the token", function() return c.d.sp end)
    crosses(p, c.d.sp, "p -> sp")
    crosses(c.d.sp, p, "sp -> p")
    H.expect(c.d.nconn == 1, "%d connect events for one connect",
             c.d.nconn)
    close_all({ l = c.l, p = p, sp = c.d.sp }, "auth")
  end,
}

-- A normal close over a live link: the far side gets its messages, then
-- one close event with no reason.
cases[#cases + 1] = {
  name = "close",
  setup = function()
    local c = linked("unix:" .. socket_path())
    c.rec = H.recorder(2)
    c.closes, c.reason = 0, false
    c.sp.onmessage = c.rec.on_message
    c.sp.onmessageerror = c.rec.on_error
    c.sp.onclose = function(ev)
      c.rec.closes = c.rec.closes + 1
      c.rec.close_after = c.rec.n
      c.reason = ev.reason
    end
    mc.onerror = c.rec.on_report
    c.sp:ref()  -- mc.run() waits for its close
    assert(c.p:postMessage(1))
    assert(c.p:postMessage(2))
    c.p:close()
    return c
  end,
  action = function() return mc.run(H.BOUND) end,
  check = function(c)
    await("the close event", function()
      return c.rec.closes > 0 or c.rec.reported > 0
    end)
    H.run("close")
    H.expect(c.rec.closes == 1 or (c.rec.closes == 0 and c.rec.reported > 0),
             "%d close events (%d reports)", c.rec.closes, c.rec.reported)
    H.delivered_once(c.rec, "close", 2, c.rec.reported)
    if c.rec.closes == 1 then
      H.expect(c.reason == nil, "a normal close has reason %s",
               tostring(c.reason))
      H.expect(c.rec.close_after == c.rec.n, "the close came before the "
               .. "messages")
    end
    H.dead(c.sp, "the closed port")
    H.dead(c.p, "the closing port")
    close_all(c, "close")
  end,
}

return cases
