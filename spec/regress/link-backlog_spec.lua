-- Regressions of remote ports (API.md 12) under a socket that stays full,
-- found by review; each failed before the fix:
-- - a link's output buffer grew with the whole stream while its peer read
--   more slowly than it wrote: what was written was dropped from its front
--   only once all of it was written, which never happened (375 MiB sent
--   took the sender to 40-268 MiB);
-- - the network thread spun at 100% CPU once a link's socket had been full
--   for longer than its ping interval: the ping's timer was due, but no
--   ping can be framed behind pending output, so every poll returned at
--   once.

local mc = require "messagechannel"
local R = require "spec.remote.helper"
local helper = require "spec.helper"

-- CPU seconds this process has used (user and system), from /proc.
local function cpu()
  local s = R.read_file("/proc/self/stat")
  if not s then return nil end
  local fields = {}
  for x in s:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = x end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

-- The long stream, in a child process: the resident size it measures
-- includes the garbage of the 64 KiB strings read, which the collector
-- lets grow with the heap that came before (its pacing), and the specs
-- run before in this process would set that.
local STREAM = [=[
local mc = require "messagechannel"
local R = require "spec.remote.helper"
local N, SIZE = 6000, 64 * 1024  -- 375 MiB through the link
local l = mc.listen(R.unix_address(), { capacity = 4 })
local got, closed, peak = 0, false, 0
l.onconnect = function(ev)
  l:close()
  ev.port.onmessage = function(e)
    got = got + 1
    assert(#e.data == SIZE)
    -- slower than the writer, so that its socket stays full
    local t = mc.now() + 0.0002
    while mc.now() < t do end
    if got % 50 == 0 then peak = math.max(peak, R.rss()) end
  end
  ev.port.onclose = function() closed = true end
end
local p = mc.connect(l.address, { capacity = 4 })
collectgarbage()
local rss0 = R.rss()
local w = mc.Worker([[
  local mc = require "messagechannel"
  local p, n, size = mc.workerData.port, mc.workerData.n, mc.workerData.size
  local s = string.rep("x", size)
  for _ = 1, n do assert(p:postMessage(s)) end
  p:close()
]], { eval = true, transfer = { p },
      data = { port = p, n = N, size = SIZE } })
local err
w.onerror = function(e) err = tostring(e.error) end
local idle = mc.run(120)
R.cleanup()
io.write(("idle %s err %s got %d closed %s grew %.1f MiB\n"):format(
  tostring(idle), tostring(err), got, tostring(closed), (peak - rss0) / 1024))
]=]

describe("regress: a remote link whose socket stays full", function()
  after_each(R.cleanup)

  it("keeps its output bounded while a slower reader takes a long stream",
     function()
    if R.sanitizer then
      return pending("memory bounds mean nothing under " .. R.sanitizer)
    end
    local out = helper.run_child(STREAM, 300)
    if not out then return pending(helper.NO_CHILD) end
    local grew = tonumber(out:match("idle true err nil got 6000 closed true "
                                    .. "grew ([%d.]+) MiB"))
    assert.truthy(grew, out)
    assert.is_true(grew < 32, out)
  end)

  it("uses no CPU while it waits for the peer to read", function()
    if R.sanitizer == "valgrind" or not cpu() then
      return pending("needs /proc, and threads that run at full speed")
    end
    local go = R.tmpdir() .. "/go"
    local peer, address = R.listening_peer(R.unix_address(), "behave=count",
                                           "go=" .. go, "heartbeat=0.5",
                                           "capacity=4", "every=1")
    local p = mc.connect(address, { heartbeat = 0.5, capacity = 4 })
    local s = string.rep("x", 64 * 1024)
    local n = 0
    -- until the peer's port, both sockets and this port are full
    while p:postMessage({ i = n + 1, pad = s }, { timeout = 1 }) do
      n = n + 1
    end
    -- four ping intervals with the socket full: a spinning thread uses
    -- about as much CPU as time passes, a waiting one almost none
    local c0 = cpu()
    mc.sleep(2)
    local used = cpu() - c0
    assert.is_true(used < 1, ("%.2f s of CPU in 2 s asleep"):format(used))
    -- the peer reads them all before the close: a closing link whose
    -- peer has taken nothing for three heartbeats is given up at once
    R.write_file(go, "")
    R.await("the peer's " .. n .. " messages",
            function() return peer:find("got " .. n .. "$") ~= nil end)
    p:close()
    assert.is_true(mc.run(R.WAIT))
    local count, ordered = peer:expect("count (%d+) (%a+)")
    assert.equal(tostring(n), count)
    assert.equal("true", ordered)
  end)
end)
