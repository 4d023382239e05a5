-- mc_nats_join and mc_nats_leave (src/nats.c) held the module's
-- process-wide NATS lock while libnats subscribed and unsubscribed, which
-- write to the server: a join or leave on a stalled server held up every
-- delivery and post on every other server meanwhile (up to the 2 s write
-- deadline each). They now make those calls without the lock: a
-- subscription being made is listed as such and a join of its subject
-- waits for it, and a message is delivered only while its subscription
-- is listed, so that one being let go and the one made after it never
-- deliver a message twice. The stall itself cannot be shown without
-- timing; these guard what the change must keep (API.md 12: one
-- subscription per subject in a process, threads included; each post
-- reaches each channel once).

local mc = require "messagechannel"
local N = require "spec.nats.helper"

local count = 0
local function fresh()
  count = count + 1
  return ("spec.nats.unlocked.%d"):format(count)
end

describe("regress: NATS subscriptions are made and let go without the lock", function()
  local suite, made = N.server_suite(lazy_setup, lazy_teardown), {}
  after_each(function()
    for _, x in ipairs(made) do pcall(x.terminate or x.close, x) end
    made = {}
    N.cleanup()
  end)

  it("workers joining one subject at once share one subscription, each hears a post once",
     function()
    if suite.skip then return pending(suite.skip) end
    local server = suite.server
    local subject, url = fresh(), server:url()
    local nworkers, got, open, closed = 4, {}, 0, 0
    for k = 1, nworkers do
      got[k] = {}
      local w = mc.Worker([[
local mc = require "messagechannel"
local bc = mc.BroadcastChannel(mc.workerData.subject, { nats = mc.workerData.url })
bc.onmessage = function(e) mc.parentPort:postMessage(e.data.i) end
mc.parentPort.onmessage = function()
  bc:close()
  mc.parentPort:close()
end
mc.parentPort:postMessage("open")
]], { eval = true, data = { subject = subject, url = url } })
      made[#made + 1] = w
      w.onmessage = function(e)
        if e.data == "open" then open = open + 1
        else got[k][#got[k] + 1] = e.data end
      end
      w.onexit = function() closed = closed + 1 end
    end
    N.await("every worker's channel", function() return open == nworkers end)
    -- the client library writes SUB without waiting for the server to read it
    N.await("the subscription at the server", function()
      return server:subscriptions(subject) >= 1
    end)
    assert.are.equal(1, server:subscriptions(subject))
    local poster = N.peer(url, subject, { brief = 1, life = 60, id = "p" })
    poster:command("post 50")
    N.await("50 posts in every worker", function()
      for k = 1, nworkers do
        if #got[k] < 50 then return false end
      end
      return true
    end)
    N.linger(0.2)  -- a second copy of any post has its chance to come
    for k = 1, nworkers do
      assert.are.equal(50, #got[k])
      for i = 1, 50 do assert.are.equal(i, got[k][i]) end
    end
    for _, w in ipairs(made) do w:postMessage("stop") end
    N.await("the workers' end", function() return closed == nworkers end)
    poster:command("stop")  -- its own subscription goes too
    N.await("the subscription let go", function()
      return server:subscriptions(subject) == 0
    end)
  end)

  it("a subject left and joined again while a peer posts hears no post twice", function()
    if suite.skip then return pending(suite.skip) end
    local server = suite.server
    local subject, url = fresh(), server:url()
    local poster = N.peer(url, subject, { brief = 1, life = 90, id = "p" })
    local twice, heard, sent = {}, 0, 0
    -- Posts 40 at a time until cond() holds (the server may not have this
    -- process's new subscription yet when the first come).
    local function post_until(what, cond)
      for _ = 1, 20 do
        sent = sent + 40
        poster:command("post 40")
        if N.wait(cond, 1) then return end
      end
      error("gave up waiting for " .. what)
    end
    for round = 1, 25 do
      local bc = mc.BroadcastChannel(subject, { nats = url })
      made[#made + 1] = bc
      local got, any = {}, false
      bc.onmessage = function(e)
        local i = e.data.i
        if i then
          if got[i] then twice[#twice + 1] = ("round %d: post %d"):format(round, i) end
          got[i], any = true, true
          heard = heard + 1
        end
      end
      post_until("a post in round " .. round, function() return any end)
      bc:close()  -- posts of this round still come, to the next channel
    end
    assert.are.same({}, twice)
    assert.is_true(heard >= 25)
    local last = mc.BroadcastChannel(subject, { nats = url })
    made[#made + 1] = last
    local got = {}
    last.onmessage = function(e) got[#got + 1] = e.data.i end
    post_until("a post to the last channel", function() return #got > 0 end)
    poster:expect("said posted " .. sent .. "$")
    poster:command("post 3")
    N.await("the last 3 posts", function()
      return got[#got] == sent + 3
    end)
    last:close()
    poster:command("stop")
    N.await("the subscription let go", function()
      return server:subscriptions(subject) == 0
    end)
  end)
end)
