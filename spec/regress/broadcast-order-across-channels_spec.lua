-- Messages another thread broadcast reached a state's channels one
-- channel after another (a1 a2 a3 b1 b2 b3), where the HTML standard
-- queues one task per channel for each message, the channels in the
-- order they were made (a1 b1 c1 a2 b2 c2): what came from another thread
-- (or over NATS, the same path) was given to each channel as a whole at
-- the next poll. A listener that closed its sibling channels on a last
-- message then made them lose everything before it. Messages from other
-- threads now wait for a poll at every channel, as a port's do, and go
-- out in the order they arrived; one posted in the state itself is
-- dispatched at once unless something from another thread may be ahead
-- of it: then the post runs the poll's merge itself, at once. (Before,
-- it went to the channels with nothing ahead of it there at once: it
-- passed the other thread's message at a channel made since, which that
-- message had not reached, and, when a poll had given that message to
-- some channels only, at the others.)
--
-- The state takes no news until the worker has posted everything (it
-- waits for a file the worker makes last, without running the
-- scheduler), so what arrived is all there at the first poll and the
-- order does not depend on timing.

local mc = require "messagechannel"
local helper = require "spec.helper"

-- A path the worker creates once it has posted.
local function flag_path()
  return os.tmpname()
end

local wait_for_file = helper.wait_for_file

-- Starts a worker that opens a channel of `name`, posts 1..n and then
-- "stop", and writes "posted" to path.
local function poster(name, n, path)
  return mc.Worker([[
    local mc = require "messagechannel"
    local d = mc.workerData
    local bc = mc.BroadcastChannel(d.name)
    for i = 1, d.n do bc:postMessage(i) end
    bc:postMessage("stop")
    bc:close()
    local f = assert(io.open(d.path, "w"))
    f:write("posted")
    f:close()
  ]], { eval = true, data = { name = name, n = n, path = path } })
end

-- Channels a, b, c of `name`, each listener adding "<channel><data>" to
-- seq; c's "stop" closes them all.
local function channels(name, seq)
  local chans = {}
  for _, k in ipairs({ "a", "b", "c" }) do
    local bc = mc.BroadcastChannel(name)
    bc.onmessage = function(ev)
      seq[#seq + 1] = k .. tostring(ev.data)
      if k == "c" and ev.data == "stop" then
        for _, other in ipairs(chans) do other:close() end
      end
    end
    chans[#chans + 1] = bc
  end
  return chans
end

local function interleaved(n, extra)
  local want = {}
  for i = 1, n do
    for _, k in ipairs({ "a", "b", "c" }) do want[#want + 1] = k .. i end
  end
  for _, x in ipairs(extra) do
    for _, k in ipairs({ "a", "b", "c" }) do want[#want + 1] = k .. x end
  end
  return table.concat(want, " ")
end

describe("regress: a broadcast from another thread reaches a state's channels",
         function()
  it("message by message, each to the channels in the order they were made",
     function()
    local seq, path = {}, flag_path()
    channels("bc-order-1", seq)
    local w = poster("bc-order-1", 20, path)
    wait_for_file(path)
    mc.run()
    w:terminate()
    os.remove(path)
    assert.equal(interleaved(20, { "stop" }), table.concat(seq, " "))
  end)

  it("so a channel closed by its sibling's last message got the ones before",
     function()
    local got, path = { a = {}, b = {} }, flag_path()
    local a, b = mc.BroadcastChannel("bc-order-2"),
                 mc.BroadcastChannel("bc-order-2")
    a.onmessage = function(ev)
      got.a[#got.a + 1] = tostring(ev.data)
      if ev.data == "stop" then a:close(); b:close() end
    end
    b.onmessage = function(ev) got.b[#got.b + 1] = tostring(ev.data) end
    local w = poster("bc-order-2", 3, path)
    wait_for_file(path)
    mc.run()
    w:terminate()
    os.remove(path)
    assert.equal("1 2 3 stop", table.concat(got.a, " "))
    assert.equal("1 2 3", table.concat(got.b, " "))
  end)

  it("and a post made here after them comes after them, at every channel",
     function()
    local seq, path = {}, flag_path()
    channels("bc-order-3", seq)
    local here = mc.BroadcastChannel("bc-order-3")
    local w = poster("bc-order-3", 5, path)
    wait_for_file(path)
    here:postMessage("here")  -- after the worker's, by arrival
    -- c closes all on the worker's "stop": "here" comes after it and is
    -- dropped, unless it was dispatched first
    mc.run()
    here:close()
    w:terminate()
    os.remove(path)
    assert.equal(interleaved(5, { "stop" }), table.concat(seq, " "))
  end)

  it("and a post made here after them comes after them also at a channel "
     .. "made since, which they did not reach", function()
    local seq, path = {}, flag_path()
    local a = mc.BroadcastChannel("bc-order-5")
    a.onmessage = function(ev) seq[#seq + 1] = "a" .. tostring(ev.data) end
    local w = poster("bc-order-5", 1, path)
    wait_for_file(path)
    local b = mc.BroadcastChannel("bc-order-5")  -- after the worker's
    local here = mc.BroadcastChannel("bc-order-5")
    b.onmessage = function(ev)  -- b's "here" closes them all
      seq[#seq + 1] = "b" .. tostring(ev.data)
      a:close(); b:close(); here:close()
    end
    here:postMessage("here")
    mc.run()
    w:terminate()
    os.remove(path)
    assert.equal("a1 astop ahere bhere", table.concat(seq, " "))
  end)

  it("and so does a post from the channel that has them still to dispatch",
     function()
    local seq, path = {}, flag_path()
    local a = mc.BroadcastChannel("bc-order-6")
    a.onmessage = function(ev) seq[#seq + 1] = "a" .. tostring(ev.data) end
    local w = poster("bc-order-6", 1, path)
    wait_for_file(path)
    local b = mc.BroadcastChannel("bc-order-6")
    b.onmessage = function(ev)
      seq[#seq + 1] = "b" .. tostring(ev.data)
      a:close(); b:close()
    end
    a:postMessage("here")  -- reaches b only; a's own wait for a poll
    mc.run()
    w:terminate()
    os.remove(path)
    assert.equal("a1 astop bhere", table.concat(seq, " "))
  end)

  it("and so do the answers a listener broadcasts here while a poll has "
     .. "taken part of them", function()
    -- One poll takes MC_TAKE_MAX messages at most (the oldest), so with
    -- the worker's n + 1 messages at 3 channels it ends inside the
    -- round of its last one ("stop" at a, not at b and c) when 3 (n + 1)
    -- - 2 is a multiple of it. a's answers, broadcast here, must still
    -- come after "stop" at b and c: every message of the worker's was
    -- queued before the first answer.
    local take = helper.take_max()
    local n
    for k = 1, 2 do
      if (k * take + 2) % 3 == 0 then n = math.floor((k * take + 2) / 3) - 1 break end
    end
    assert(n, "MC_TAKE_MAX is a multiple of 3: use 2 channels here")
    local seq, path = {}, flag_path()
    local chans, here = {}
    for _, k in ipairs({ "a", "b", "c" }) do
      local bc = mc.BroadcastChannel("bc-order-7")
      bc.onmessage = function(ev)
        seq[#seq + 1] = k .. tostring(ev.data)
        if k == "a" and type(ev.data) == "number" then
          here:postMessage("r" .. ev.data)
        elseif k == "c" and ev.data == "r" .. n then
          for _, other in ipairs(chans) do other:close() end
          here:close()
        end
      end
      chans[#chans + 1] = bc
    end
    local w = poster("bc-order-7", n, path)
    wait_for_file(path)
    here = mc.BroadcastChannel("bc-order-7")  -- the worker's missed it
    mc.run()
    w:terminate()
    os.remove(path)
    local answers = {}
    for i = 1, n do answers[i] = "r" .. i end
    local want = interleaved(n, { "stop" }) .. " "
                 .. interleaved(0, answers)
    local got = table.concat(seq, " ")
    if got ~= want then  -- the first difference, not 8,000 words
      local i = 1
      while got:sub(i, i) == want:sub(i, i) do i = i + 1 end
      assert.equal(want:sub(i - 40, i + 40), got:sub(i - 40, i + 40))
    end
  end)

  it("while one posted here with nothing waiting is dispatched at once, in "
     .. "the channels' order", function()
    local seq = {}
    local chans = channels("bc-order-4", seq)
    local here = mc.BroadcastChannel("bc-order-4")
    for i = 1, 3 do here:postMessage(i) end
    mc.step()
    assert.equal(interleaved(3, {}), table.concat(seq, " "))
    for _, bc in ipairs(chans) do bc:close() end
    here:close()
  end)
end)
