-- The scheduler took a message off its port's queue and only then read it:
-- out of memory while reading, the message was gone for good. It now
-- reads the message while it is still queued and takes it once all that
-- delivers it is made. While it reads, finalizers run (the reading
-- allocates): one that receives from, posts to or moves that same port
-- must find it consistent, and every message is delivered exactly once.

local mc = require "messagechannel"
local helper = require "spec.helper"

local on_gc = helper.on_gc

describe("regress: a message is read before it is taken", function()
  it("delivers each message once while finalizers receive from the same port", function()
    local ch = mc.MessageChannel()
    local seen, count = {}, 0
    local function got(id)
      assert.is_nil(seen[id], "message " .. tostring(id) .. " delivered twice")
      seen[id] = true
      count = count + 1
    end
    local N = 60
    for i = 1, N do
      local big = { id = i }
      for k = 1, 300 do big[k] = { k, tostring(k) } end
      ch.port1:postMessage(big)
    end
    local moved = mc.MessageChannel()
    ch.port2.onmessage = function(e)
      got(e.data.id)
      for _ = 1, 50 do
        on_gc(function()
          local ev = ch.port2:receive(0)
          if ev then got(ev.data.id) end
          pcall(moved.port1.postMessage, moved.port1, nil, { ch.port2 })
        end)
      end
    end
    collectgarbage("setpause", 50)
    helper.run()
    collectgarbage("setpause", 200)
    helper.collect()
    -- what was still queued when a finalizer moved the port went with it
    local ev = moved.port2:receive(0)
    if ev then
      local port = ev.ports[1]
      repeat
        local m = port:receive(0)
        if m then got(m.data.id) end
      until not m
    end
    assert.equal(N, count)
  end)
end)
