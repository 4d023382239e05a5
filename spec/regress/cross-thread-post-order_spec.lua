-- Messages to several started ports of one Lua state arrive in global
-- post order (API.md 3.1), also when they come from other threads. A poll
-- that found news for several ports queued each port's messages together:
-- a worker's a1 b1 a2 b2 arrived as a1 a2 b1 b2 whenever they were all
-- there before the parent looked, and so did a port given its tokens
-- another way (a listener added, the look the scheduler takes when no
-- ref'd worker runs). The poll now queues them in the order they arrived,
-- and the other ways wait for it. None of these cases depends on timing:
-- each holds however the posts and the parent's polls interleave.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: global post order across ports, from other threads #threads", function()
  local errors, start_worker = helper.worker_specs(5, before_each, after_each)

  -- Starts a worker running source with the far ends of nports new
  -- channels as mc.workerData[1] (and extra as [2]); the near ends record
  -- each message's data in got, in the order dispatched, and their close
  -- as "<i> closed" when `closes`.
  local function start(source, nports, got, extra, closes)
    local near, far = {}, {}
    for i = 1, nports do
      local ch = mc.MessageChannel()
      near[i], far[i] = ch.port1, ch.port2
      ch.port1.onmessage = function(e) got[#got + 1] = e.data end
      if closes then
        ch.port1.onclose = function() got[#got + 1] = i .. " closed" end
      end
    end
    return start_worker(source, { data = { far, extra }, transfer = far }), near
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
    start([[
      local mc = require "messagechannel"
      local p = mc.workerData[1]
      p[1]:postMessage("a1")
      p[2]:postMessage("b1")
      p[1]:postMessage("a2")
      p[1]:close()
      p[2]:postMessage("b2")]], 2, got, nil, true)
    helper.run()
    assert.same("a1", got[1])
    assert.same("b1", got[2])
    assert.same("a2", got[3])
    -- then b2 and the two closes: the first port's close comes after its
    -- own messages only, the second port's (the worker's end) after b2
    local at = {}
    for i = 4, #got do at[got[i]] = i end
    assert.equal(6, #got)
    assert.truthy(at["1 closed"] and at["2 closed"] and at.b2, table.concat(got, " "))
    assert.truthy(at.b2 < at["2 closed"], table.concat(got, " "))
    assert.same({}, errors)
  end)

  -- The same order when something other than a poll gives the ports
  -- their tokens: a listener set while the messages wait, or the
  -- scheduler's look at ports that wait for other threads, which it takes
  -- when no ref'd worker keeps it going.
  local ALTERNATE = [[
    local mc = require "messagechannel"
    local p = mc.workerData[1]
    for i = 1, 3000 do
      p[1]:postMessage(2 * i - 1)
      p[2]:postMessage(2 * i)
    end]]

  local function in_order(got, n)
    local bad = {}
    for i = 1, n do
      if got[i] ~= i then bad[#bad + 1] = i .. ": " .. tostring(got[i]) end
      if #bad == 5 then break end
    end
    return bad
  end

  it("keeps the order when listeners are added while the messages wait", function()
    local got = {}
    local _, near = start(ALTERNATE, 2, got)
    local until_ = os.clock() + 0.1  -- most are queued by now
    repeat until os.clock() >= until_
    for i = 1, 2 do
      near[i].onclose = function() end
      near[i]:addEventListener("message", function() end)
    end
    helper.run()
    assert.same({}, in_order(got, 6000))
    assert.same({}, errors)
  end)

  it("keeps the order when the worker is unref'd", function()
    local got = {}
    local w, near = start(ALTERNATE .. " p[1]:close() p[2]:close()", 2, got)
    w:unref()
    helper.run()
    assert.same({}, in_order(got, 6000))
    assert.equal(6000, #got)
    assert.same({}, errors)
    assert.is_not_nil(near)
  end)
end)
