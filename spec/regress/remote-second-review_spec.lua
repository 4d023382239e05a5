-- Faults of remote ports found by a probe of API.md 12:
-- * A message frame over 4,104 bytes that came in the same read as the
--   peer's HELLO closed the link with "protocol": the frame limit was
--   worked out once per read, in the state before the HELLO (4,104 bytes
--   until the peer is known), not per frame. A listener that posts a big
--   message in onconnect, through any relay that batches bytes, hit it.
-- * mc.listen("unix:<path>") removed a regular file at the path: the check
--   for a stale socket left by a dead listener took connect's
--   ECONNREFUSED, which Linux also gives for a regular file, as proof.
-- * Malformed TCP hosts ("tcp:[::1:80", "tcp:a]:0", an IPv4 address in
--   brackets, an IPv6 one without) were passed to the resolver, or
--   accepted, instead of raising `bad argument`.

local mc = require "messagechannel"
local helper = require "spec.helper"
local R = require "spec.remote.helper"

local has = helper.has
local has_socket = pcall(require, "socket")

describe("regress: remote ports, second review #remote", function()
  local errors, made = R.specs(5, before_each, after_each)
  local function track(x)
    made[#made + 1] = x
    return x
  end

  local BIG = string.rep("x", 10000)

  describe("a big message in the same read as the HELLO", function()
    if not has_socket then
      pending(helper.skipped("remote-second-review", "LuaSocket is not installed for "
                                                .. _VERSION))
      return
    end

    it("reaches the listener's port when a raw client sends both at once", function()
      local l = track(mc.listen(R.unix_address()))
      local got, closed = {}, false
      l.onconnect = function(e)
        local p = track(e.port)
        p.onmessage = function(m) got[#got + 1] = m.data end
        p.onclose = function(m) closed = m.reason or "normal" end
      end
      local c = R.raw(l.address)
      R.send_all(c, R.hello() .. R.msg(BIG) .. R.msg("after"))
      R.await("two messages", function() return #got >= 2 or closed end)
      assert.same({ BIG, "after" }, got)
      assert.is_false(closed)
      assert.same({}, errors)
    end)

    it("reaches mc.connect's port when a raw listener answers with both at once",
       function()
      local socket = require "socket"
      local server = assert(socket.bind("127.0.0.1", 0))
      server:settimeout(0)
      local _, port = server:getsockname()
      local p = track(mc.connect("tcp:127.0.0.1:" .. port))
      local got, closed = {}, false
      p.onmessage = function(m) got[#got + 1] = m.data end
      p.onclose = function(m) closed = m.reason or "normal" end
      local conn
      R.await("the connection", function()
        conn = server:accept()
        return conn ~= nil
      end)
      conn:settimeout(0)
      -- its HELLO first, then ours and a big message in one send
      R.read_until(conn, function(s) return #R.frames(s) >= 1 end)
      local i, all = 1, R.hello() .. R.msg(BIG)
      R.await("the bytes sent", function()
        local n, err, part = conn:send(all, i)
        i = (n or part or i - 1) + 1
        return i > #all or (err ~= nil and err ~= "timeout")
      end)
      R.await("the message", function() return #got >= 1 or closed end)
      assert.same({ BIG }, got)
      assert.is_false(closed)
      conn:close()
      server:close()
      assert.same({}, errors)
    end)
  end)

  it("does not remove a regular file at a Unix socket's path", function()
    local dir = R.tmpdir()
    local path = dir .. "/not-a-socket"
    local f = assert(io.open(path, "w"))
    f:write("precious")
    f:close()
    local err = helper.error_of(mc.listen, "unix:" .. path)
    assert.truthy(has(err, "address in use: unix:" .. path), err)
    f = assert(io.open(path, "r"))
    assert.equal("precious", f:read("*a"))
    f:close()
  end)

  it("still takes the path of a stale socket, left by a listener that ended",
     function()
    local peer, address = R.listening_peer(R.unix_address())
    peer:finish()  -- killed: the socket file stays, and nobody accepts there
    local l = track(mc.listen(address))
    assert.equal(address, l.address)
  end)

  it("raises bad argument for malformed TCP hosts, brackets included", function()
    for _, a in ipairs { "tcp:[::1:80", "tcp:[::1]]:0", "tcp:a]:0", "tcp:[a:0",
                         "tcp:[127.0.0.1]:0", "tcp:::1:0", "tcp:[[::1]]:0" } do
      for _, f in ipairs { "listen", "connect" } do
        local err = helper.error_of(mc[f], a)
        assert.truthy(has(err, "bad argument #1 to '" .. f .. "'"),
                      ("%s(%q): %s"):format(f, a, err))
        assert.truthy(has(err, "'" .. a .. "'"), err)
      end
    end
    local l = track(mc.listen("tcp:127.0.0.1:0"))
    assert.truthy(l.address:match("^tcp:127%.0%.0%.1:%d+$"), l.address)
  end)
end)
