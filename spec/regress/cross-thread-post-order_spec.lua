-- Messages to several started ports of one Lua state arrive in global
-- post order (API.md 3.1), also when they come from other threads. A poll
-- that found news for several ports queued each port's messages together:
-- a worker's a1 b1 a2 b2 arrived as a1 a2 b1 b2 whenever they were all
-- there before the parent looked. The poll now queues them in the order
-- they arrived. None of these cases depends on timing: each holds however
-- the posts and the parent's polls interleave.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: global post order across ports, from other threads #threads", function()
  local errors, catch, release = helper.error_hooks(5)
  local workers = {}
  before_each(catch)
  after_each(function()
    helper.terminate_all(workers)
    release()
  end)

  -- Starts a worker running source with the far ends of nports new
  -- channels as mc.workerData[1] (and extra as [2]); the near ends record
  -- each message's data in got, in the order dispatched.
  local function start(source, nports, got, extra)
    local near, far = {}, {}
    for i = 1, nports do
      local ch = mc.MessageChannel()
      near[i], far[i] = ch.port1, ch.port2
      ch.port1.onmessage = function(e) got[#got + 1] = e.data end
    end
    local w = mc.Worker(source, { eval = true, data = { far, extra },
                                  transfer = far })
    workers[#workers + 1] = w
    return w, near
  end

  it("keeps a worker's alternating posts to two ports in order, all queued before the parent looks",
     function()
    local got = {}
    start([[
      local mc = require "messagechannel"
      local p = mc.workerData[1]
      for i = 1, 5 do
        p[1]:postMessage("a" .. i)
        p[2]:postMessage("b" .. i)
      end]], 2, got)
    -- the parent does not look for a while (no scheduler runs), so the
    -- worker's posts are usually all queued at its first look; the order
    -- must hold however many are
    local until_ = os.clock() + 0.2
    repeat until os.clock() >= until_
    helper.run()
    assert.same({ "a1", "b1", "a2", "b2", "a3", "b3", "a4", "b4", "a5", "b5" }, got)
    assert.same({}, errors)
  end)

  it("keeps each worker's order across its ports when several post at once", function()
    local seen, bad, count = {}, {}, {}
    local source = [[
      local mc = require "messagechannel"
      local ports, me = mc.workerData[1], mc.workerData[2]
      math.randomseed(me)
      for i = 1, 2000 do
        ports[math.random(#ports)]:postMessage({ me, i })
        if i % 97 == 0 then mc.sleep(0) end
      end]]
    for k = 1, 3 do
      local got = setmetatable({}, { __newindex = function(_, _, d)
        local who, i = d[1], d[2]
        if i ~= (seen[who] or 0) + 1 then bad[#bad + 1] = who .. ":" .. i end
        seen[who] = i
        count[who] = (count[who] or 0) + 1
      end })
      start(source, 3, got, k)
    end
    helper.run()
    assert.same({}, bad)
    assert.same({ 2000, 2000, 2000 }, count)
    assert.same({}, errors)
  end)

  it("keeps the order when the parent is busy while the worker posts", function()
    local got = {}
    start([[
      local mc = require "messagechannel"
      local p = mc.workerData[1]
      for i = 1, 300 do p[i % 3 + 1]:postMessage(i) end]], 3, got)
    -- a listener that takes long on every message: many arrive meanwhile
    local t = 0
    local spin = mc.MessageChannel()
    spin.port1.onmessage = function() for _ = 1, 2e4 do t = t + 1 end end
    for _ = 1, 50 do spin.port2:postMessage(0) end
    helper.run()
    local want = {}
    for i = 1, 300 do want[i] = i end
    assert.same(want, got)
    assert.same({}, errors)
  end)

  it("keeps a port's close after its last message, with other ports' messages around it",
     function()
    local got = {}
    local _, near = start([[
      local mc = require "messagechannel"
      local p = mc.workerData[1]
      p[1]:postMessage("a1")
      p[2]:postMessage("b1")
      p[1]:postMessage("a2")
      p[1]:close()
      p[2]:postMessage("b2")]], 2, got)
    near[1].onclose = function() got[#got + 1] = "a closed" end
    helper.run()
    assert.same("a1", got[1])
    assert.same("b1", got[2])
    assert.same("a2", got[3])
    -- b2 and the close: b2 was posted after the close, which a port
    -- dispatches after its own messages only
    local rest = { got[4], got[5] }
    table.sort(rest)
    assert.same({ "a closed", "b2" }, rest)
    assert.equal(5, #got)
    assert.same({}, errors)
  end)
end)
