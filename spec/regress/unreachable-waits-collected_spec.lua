-- regress: tasks and listeners that wait for good at ports nothing
-- reaches any more are collected with those ports (API.md 3.6: "two
-- ports that are both unreachable are collected, listeners or not").
-- Found by a leak hunt:
-- - on Lua 5.1 and LuaJIT, a task waiting for room at a bounded port, or
--   a task whose dispatchEvent listener waits in receive, was kept for
--   good: the scheduler noted them in tables weak in their keys only,
--   whose values reach their keys (a post's wait names its task; a task's
--   stack holds its listener's coroutine), and those Lua versions have
--   no ephemerons;
-- - on every version, a message listener waiting for good (in receive,
--   at a channel only its closure reached) kept its port, the closure and
--   everything they reach: the count of what holds the port's close back
--   was a strong table keyed by the port;
-- - on Lua 5.1 and LuaJIT such a listener still kept them through its
--   runner's job (a table weak in its keys, whose value named the
--   runner), and so did its port's held close (the event names the port,
--   in a table weak in its keys).

local mc = require "messagechannel"
local helper = require "spec.helper"

local N = 200
local count = helper.count
local function full_gc()
  -- LuaJIT's compiled traces may hold a constant of the last loop
  local jit = rawget(_G, "jit")
  if jit then jit.flush() end
  for _ = 1, 4 do collectgarbage() end
end

describe("regress: waits at ports nothing reaches", function()
  it("a task waiting for room is collected with its channel", function()
    local alive = setmetatable({}, { __mode = "k" })
    for _ = 1, N do
      local ch = mc.MessageChannel({ capacity = 1 })
      assert.is_true(ch.port1:postMessage(1))
      alive[mc.spawn(function() ch.port1:postMessage(2) end)] = true
      alive[ch.port1] = true
    end
    mc.step()
    full_gc()
    assert.equal(0, count(alive))
  end)

  it("a task whose dispatchEvent listener waits is collected with its channel", function()
    local alive = setmetatable({}, { __mode = "k" })
    for _ = 1, N do
      local ch = mc.MessageChannel()
      ch.port1:addEventListener("ping", function() ch.port2:receive() end)
      alive[mc.spawn(function() ch.port1:dispatchEvent({ type = "ping" }) end)] = true
    end
    mc.step()
    full_gc()
    assert.equal(0, count(alive))
  end)

  it("a message listener waiting for good is collected with its ports", function()
    local alive = setmetatable({}, { __mode = "k" })
    for i = 1, N do
      local ch, reply = mc.MessageChannel(), mc.MessageChannel()
      ch.port2.onmessage = function() reply.port2:receive() end
      ch.port1:postMessage(i)
      alive[ch.port2] = true
    end
    mc.step()
    full_gc()
    assert.is_true(mc.run(30))
    full_gc()
    assert.equal(0, count(alive))
  end)

  it("a listener waiting for good when its close came is collected with its ports", function()
    local alive = setmetatable({}, { __mode = "k" })
    for i = 1, N do
      local ch, reply = mc.MessageChannel(), mc.MessageChannel()
      local closes = 0
      ch.port2.onmessage = function() reply.port2:receive() end
      ch.port2.onclose = function() closes = closes + 1 end
      ch.port1:postMessage(i)
      mc.step()  -- the listener waits
      ch.port1:close()
      mc.step()  -- the close waits behind it
      assert.equal(0, closes)
      alive[ch.port2] = true
    end
    full_gc()
    assert.is_true(mc.run(30))
    full_gc()
    assert.equal(0, count(alive))
  end)
end)
