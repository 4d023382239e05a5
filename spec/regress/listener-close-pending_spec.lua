-- Regressions of listener:close() (API.md 12: no new connections; those
-- made stay open; "refused" when no one listens at the address):
-- - a link the network thread had accepted and queued for onconnect, but
--   not yet dispatched, still reached onconnect after listener:close(),
--   and its peer saw an open link;
-- - a link accepted before the close whose token came after it was closed
--   with reason nil (a normal close) instead of "refused".
-- - a connection still in the kernel's backlog at the close was reset
--   ("disconnected");
-- - a worker that ended (os.exit, an error, terminate()) with links queued
--   at its listener closed them with reason nil.
-- All now close with "refused" at the peer, and onconnect never sees
-- them. The raw clients below read the listener's frames with blocking
-- LuaSocket calls, so that no scheduler turn runs between their steps:
-- the listener's HELLO is written only after the link's port was queued
-- for onconnect, and an accepted socket shows in /proc before its HELLO
-- is read.

local mc = require "messagechannel"
local helper = require "spec.helper"
local R = require "spec.remote.helper"

local REFUSED = 5  -- the CLOSE frame's code of "refused" (docs/FORMAT.md)

local kinds = {
  unix = function() return R.unix_address() end,
  tcp = function() return "tcp:127.0.0.1:0" end,
}

-- The next frame on blocking raw socket c: its type and body.
local function read_frame(c)
  local head = assert(c:receive(4))
  local len = R.get_u32(head, 1)
  local body = assert(c:receive(len))
  return body:sub(1, 1), body:sub(2)
end

local function raw(address)
  local c = R.raw(address)
  c:settimeout(R.WAIT)
  return c
end

-- The sockets this process has open, from /proc.
local function sockets()
  local n = 0
  for _, what in pairs(R.fds()) do
    if what:find("^socket:") then n = n + 1 end
  end
  return n
end

-- Waits, without a scheduler turn, until this process has n sockets.
local function await_sockets(n)
  local socket = require "socket"
  local deadline = mc.now() + R.WAIT
  while sockets() < n do
    assert(mc.now() < deadline, "the listener did not accept the link")
    socket.sleep(0.01)
  end
end

-- Says HELLO on raw client c and reads the listener's.
local function hello(c)
  assert(c:send(R.hello()))
  assert.equal("H", (read_frame(c)))
end

-- Reads the CLOSE that refuses c's link, then closes c, as a peer
-- answers a CLOSE (the listener's side lingers until then, or for three
-- heartbeats).
local function refused(c)
  local t, body = read_frame(c)
  assert.equal("C", t)
  assert.equal(REFUSED, body:byte(1))
  c:close()
end

describe("regress: listener:close() with links not yet handed over", function()
  local errors, made = R.specs(R.WAIT, before_each, after_each)
  after_each(function() assert.same({}, errors) end)

  local function listen(kind)
    local l = mc.listen(kinds[kind]())
    made[#made + 1] = l
    local connects = { n = 0 }
    l.onconnect = function(ev)
      connects.n = connects.n + 1
      connects[connects.n] = ev.port
      made[#made + 1] = ev.port
    end
    return l, connects
  end

  for _, kind in ipairs { "unix", "tcp" } do
    it("refuses a link queued for onconnect when the listener closes ("
       .. kind .. ")", function()
      local l, connects = listen(kind)
      local c = raw(l.address)
      hello(c)  -- its port is queued by now
      l:close()
      refused(c)
      assert.is_true(mc.run(R.WAIT))
      assert.equal(0, connects.n)
    end)

    it("refuses the links still queued when onconnect closes the listener ("
       .. kind .. "); the one handed over stays open", function()
      local l, connects = listen(kind)
      local inner = l.onconnect
      l.onconnect = function(ev)
        inner(ev)
        l:close()
      end
      local cs = { raw(l.address), raw(l.address), raw(l.address) }
      for _, c in ipairs(cs) do hello(c) end
      -- the open link keeps mc.run() going: dispatch until it came
      R.await("onconnect", function() return connects.n > 0 end)
      assert.is_true(connects[1]:postMessage("still linked"))
      local got = {}
      for _, c in ipairs(cs) do
        local t, body = read_frame(c)
        got[#got + 1] = t == "C" and "refused " .. body:byte(1)
                        or (t == "M" and "message" or t)
      end
      table.sort(got)
      assert.same({ "message", "refused " .. REFUSED,
                    "refused " .. REFUSED }, got)
      assert.equal(1, connects.n)
    end)

    -- Taken by the listener before the close, or still in the kernel's
    -- backlog then (taken by the close): either way refused at its HELLO.
    for _, taken in ipairs { true, false } do
      it("refuses a link " .. (taken and "accepted" or "still in the "
         .. "kernel's backlog") .. " at the close, whose HELLO comes after "
         .. "it (" .. kind .. ")", function()
        local l, connects = listen(kind)
        local before = sockets()
        local c = raw(l.address)  -- connected: in the backlog at least
        if taken then
          await_sockets(before + 2)  -- the raw client's and the accepted one
        end
        l:close()
        hello(c)
        refused(c)
        assert.is_true(mc.run(R.WAIT))
        assert.equal(0, connects.n)
      end)
    end

    it("gives a port connecting in this process reason \"refused\" when "
       .. "the listener closes at once (" .. kind .. ")", function()
      local l, connects = listen(kind)
      local p = mc.connect(l.address)
      local reason = "none"
      p.onclose = function(ev) reason = ev.reason end
      l:close()
      assert.is_true(mc.run(R.WAIT))
      assert.equal("refused", reason)
      assert.equal(0, connects.n)
    end)

    for _, ending in ipairs { "os.exit(0)", "error('ends')", "terminate" } do
      it("refuses the links queued at a worker's listener when the worker "
         .. "ends by " .. ending .. " (" .. kind .. ")", function()
        local go = R.tmpdir() .. "/go"
        local w = mc.Worker(([[
          local mc = require "messagechannel"
          local l = mc.listen(%q)
          l.onconnect = function() mc.parentPort:postMessage("onconnect") end
          mc.parentPort:postMessage(l.address)
          -- no scheduler turn until the parent says so
          while not io.open(%q) do end
          %s
        ]]):format(kinds[kind](), go,
                   ending == "terminate" and "while true do end" or ending),
          { eval = true })
        made[#made + 1] = { close = function() w:terminate() end }
        local address, said = nil, {}
        w.onmessage = function(ev)
          if address then said[#said + 1] = ev.data else address = ev.data end
        end
        w.onerror = function() end
        R.await("the worker's address", function() return address end)
        local c = raw(address)
        hello(c)  -- queued at the worker's listener
        R.write_file(go, "")
        if ending == "terminate" then w:terminate() end
        refused(c)
        assert.is_true(mc.run(R.WAIT))
        assert.same({}, said)
      end)
    end

    it("gives a connecting port reason \"refused\" either way (" .. kind
       .. ")", function()
      local l, connects = listen(kind)
      local before = sockets()
      local peer = R.peer("connect", l.address, "behave=idle")
      await_sockets(before + 1)
      l:close()
      peer:expect("close refused")
      assert.is_true(mc.run(R.WAIT))
      assert.equal(0, connects.n)
    end)
  end

  it("keeps the listener's close idempotent and its tostring closed",
     function()
    local l = listen("tcp")
    l:close()
    l:close()
    assert.truthy(helper.has(tostring(l), "closed"))
  end)
end)
