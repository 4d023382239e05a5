-- A post made while earlier posts of the same port waited for room could
-- take the room first: once the reader made room, a post called later (a
-- task woken meanwhile, or a post with timeout = 0) went in ahead of the
-- one waiting, so the messages arrived out of the order they were posted
-- (API.md 3.1; section 11's posts that wait for room). A port with posts
-- waiting now sends a new one after them.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: posts waiting for room keep their turn", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  -- A capacity-1 channel, full, with task post "A" waiting for room, and
  -- room made: the reader has taken the first message.
  local function one_waiting()
    local ch = mc.MessageChannel({ capacity = 1 })
    ch.port1:postMessage("x")
    mc.spawn(function() assert.is_true(ch.port1:postMessage("A")) end)
    mc.step()
    assert.equal("x", ch.port2:receive(0).data)
    return ch
  end

  local function drain(port, n)
    local got = {}
    mc.spawn(function()
      for i = 1, n do got[i] = port:receive().data end
    end)
    helper.run()
    return got
  end

  it("a post with timeout = 0 does not take the room a waiting post is owed", function()
    local ch = one_waiting()
    local ok, why = ch.port1:postMessage("C", { timeout = 0 })
    assert.is_false(ok)
    assert.equal("timeout", why)
    assert.same({ "A" }, drain(ch.port2, 1))
    assert.same({}, errors)
    ch.port1:close()
  end)

  it("a later task's post goes after the waiting one", function()
    local ch = one_waiting()
    mc.spawn(function() assert.is_true(ch.port1:postMessage("C")) end)
    assert.same({ "A", "C" }, drain(ch.port2, 2))
    assert.same({}, errors)
    ch.port1:close()
  end)

  it("a blocking post outside any task goes after the waiting one", function()
    local ch = one_waiting()
    local got = {}
    ch.port2.onmessage = function(e) got[#got + 1] = e.data end
    assert.is_true(ch.port1:postMessage("C"))
    helper.run()
    assert.same({ "A", "C" }, got)
    assert.same({}, errors)
    ch.port1:close()
  end)
end)

describe("regress: posts waiting for room at a worker's port keep their turn #threads", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  it("tasks posting in turn into capacity 1 arrive in that order", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    local w = start([[
      local mc = require "messagechannel"
      local p, out = mc.workerData, {}
      while true do
        local e = p:receive()
        if not e then break end
        out[#out + 1] = e.data
      end
      mc.parentPort:postMessage(out)
    ]], { data = ch.port2, transfer = { ch.port2 } })
    local got
    w.onmessage = function(e) got = e.data end
    local K, ROUNDS = 8, 100
    mc.spawn(function()
      for r = 1, ROUNDS do
        local n = 0
        for k = 1, K do
          mc.spawn(function()
            assert.is_true(ch.port1:postMessage(r * 100 + k))
            n = n + 1
          end)
        end
        while n < K do mc.sleep(0) end
      end
      ch.port1:close()
    end)
    helper.run()
    local want = {}
    for r = 1, ROUNDS do
      for k = 1, K do want[#want + 1] = r * 100 + k end
    end
    assert.same(want, got)
    assert.same({}, errors)
  end)
end)
