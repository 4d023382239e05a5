-- mc.connect to a host name that resolves to several addresses went on to
-- the next address when one refused, but not when one timed out (the
-- usual broken-route trap: its packets dropped): the port closed with
-- "timeout" and the later addresses, where a listener waited, were never
-- tried (README, mc.connect: each address is tried in turn until one
-- takes the connection). Now a timed-out address gives way to the next,
-- each with a time limit of its own.
--
-- The peer resolves mc-silent-first.test to 127.0.0.2, then 127.0.0.1
-- (spec/remote/resolve.c). At 127.0.0.2 a stopped listener's backlog is
-- full, so the kernel drops the peer's connect.

local mc = require "messagechannel"
local R = require "spec.remote.helper"

-- The accept queue of the TCP listener at hex address addr (as
-- /proc/net/tcp writes it) and port (decimal), or nil.
local function accept_queue(addr, port)
  local f = io.open("/proc/net/tcp")
  if not f then return nil end
  local want = ("%s:%04X"):format(addr, tonumber(port))
  for line in f:lines() do
    local la, st, rx = line:match("^%s*%d+: (%x+:%x+) %x+:%x+ (%x+) %x+:(%x+)")
    if la == want and st == "0A" then
      f:close()
      return tonumber(rx, 16)
    end
  end
  f:close()
  return nil
end

describe("regress: a connect that times out goes on to the next address", function()
  local errors, made = R.specs(5, before_each, after_each)

  it("reaches the listener at the second address", function()
    local shim = "build/test/resolve.so"
    if not R.exists(shim) then
      return pending("needs " .. shim .. ": run make specs")
    end
    local silent, address = R.listening_peer("tcp:127.0.0.2:0")
    local port = address:match(":(%d+)$")
    assert.is_true(silent:stop())
    for i = 1, 200 do made[i] = mc.connect(address) end  -- over the backlog
    -- until the kernel's accept queue there is full (129 for a backlog of
    -- 128), read off /proc/net/tcp: from then on it drops connects
    if not R.wait(function()
      return (accept_queue("0200007F", port) or 0) >= 129
    end, 10 * R.SLOW) then
      silent:signal("CONT")
      return pending("the accept queue at 127.0.0.2 did not fill")
    end
    local ok, l = pcall(mc.listen, "tcp:127.0.0.1:" .. port)
    if not ok then
      silent:signal("CONT")
      return pending("port " .. port .. " is taken on 127.0.0.1")
    end
    made[#made + 1] = l
    local linked = false
    l.onconnect = function(e)
      made[#made + 1] = e.port
      linked = true
    end
    local preload = ((os.getenv("LD_PRELOAD") or "") .. " "
                     .. shim):gsub("^ ", "")
    local peer = R.spawn_env("LD_PRELOAD=" .. R.quote(preload),
                             "spec/remote/peer.lua", "connect",
                             "tcp:mc-silent-first.test:" .. port,
                             "heartbeat=" .. R.SLOW, "behave=idle",
                             "life=" .. 60 * R.SLOW)
    -- each address has 3 of the peer's heartbeats (3 s) to connect, and
    -- the link as long for its HELLO: time enough on a slow machine
    R.await("the peer's link at 127.0.0.1", function()
      return linked or peer:find("close") ~= nil
    end, 30 * R.SLOW)
    silent:signal("CONT")
    assert.is_nil(peer:find("close (%S+)"))
    assert.is_true(linked)
    assert.same({}, errors)
  end)
end)
