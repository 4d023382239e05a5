-- Remote ports (API.md 12) within one process, for ThreadSanitizer (make
-- tsan runs the #threads specs): both ends of each link are here, so the
-- network thread, the posting threads that write to its sockets, and a
-- Lua state that reads its links while it sleeps all meet, without a
-- second process (a shell would not run under TSan's preload).

local mc = require "messagechannel"
local helper = require "spec.helper"

-- Seconds: hang guards only, the runs' five times the usual one (2,000
-- round trips under ThreadSanitizer on a loaded machine).
local WAIT, RUN = helper.WAIT, 5 * helper.WAIT

local function tmp_address()
  local path = os.tmpname()
  os.remove(path)
  return "unix:" .. path
end

describe("remote ports in one process #threads", function()
  for _, kind in ipairs { "unix", "tcp" } do
    it(kind .. ": 2,000 round trips, in order, then a close with no "
       .. "reason", function()
      local address = kind == "unix" and tmp_address() or "tcp:127.0.0.1:0"
      local l = mc.listen(address, { capacity = 8 })
      local closed
      l.onconnect = function(ev)
        l:close()
        ev.port.onmessage = function(e) ev.port:postMessage(e.data + 1) end
        ev.port.onclose = function(e) closed = { e.reason } end
      end
      local p = mc.connect(l.address, { capacity = 8 })
      local got = {}
      mc.spawn(function()
        for i = 1, 2000 do
          p:postMessage(i * 2)
          local ev = p:receive(WAIT)
          got[#got + 1] = ev and ev.data
        end
        p:close()
      end)
      helper.run(RUN)
      assert.equal(2000, #got)
      for i = 1, 2000 do assert.equal(i * 2 + 1, got[i]) end
      assert.same({}, closed)
    end)
  end

  it("bursts from a worker, written behind and by its waits, arrive in "
     .. "order", function()
    local l = mc.listen(tmp_address())
    local got, closed = {}, false
    l.onconnect = function(ev)
      l:close()
      ev.port.onmessage = function(e) got[#got + 1] = e.data end
      ev.port.onclose = function() closed = true end
    end
    local p = mc.connect(l.address)
    local w = mc.Worker([[
      local mc = require "messagechannel"
      local p = mc.workerData.port
      for b = 0, 29 do
        for i = 1, 100 do p:postMessage(b * 100 + i) end
        mc.sleep(0.001)  -- a wait: this thread writes what it left behind
      end
      p:close()
    ]], { eval = true, data = { port = p }, transfer = { p } })
    local err
    w.onerror = function(e) err = tostring(e.error) end
    helper.run(RUN)
    assert.is_nil(err)
    assert.is_true(closed)
    assert.equal(3000, #got)
    for i = 1, 3000 do assert.equal(i, got[i]) end
  end)

  it("a burst through capacity 4, with a worker at one end", function()
    local l = mc.listen(tmp_address(), { capacity = 4 })
    local ch = mc.MessageChannel()
    l.onconnect = function(ev)
      l:close()
      local w = mc.Worker([[
        local mc = require "messagechannel"
        local p = mc.workerData.port
        local n = 0
        p.onmessage = function(e)
          n = n + 1
          if e.data ~= n then error("out of order: " .. tostring(e.data)) end
          if n == 5000 then p:postMessage(n) p:close() end
        end
      ]], { eval = true, data = { port = ev.port }, transfer = { ev.port } })
      w.onerror = function(e) ch.port1:postMessage(tostring(e.error)) end
    end
    local p = mc.connect(l.address, { capacity = 4 })
    local done
    p.onmessage = function(e) done = e.data end
    mc.spawn(function()
      for i = 1, 5000 do assert(p:postMessage(i)) end
    end)
    helper.run(RUN)
    assert.equal(5000, done)
    assert.is_nil(ch.port2:receive(0))
  end)
end)
