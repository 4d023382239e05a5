-- A BroadcastChannel with no listener that nothing referenced was kept
-- alive by the run-queue tokens of the messages queued for it until a
-- scheduler turn dispatched them to no one: a full collectgarbage() did
-- not free it (API.md 11: "other unreachable channels are collected").
-- One-shot senders (`mc.BroadcastChannel(name):postMessage(x)` in a
-- loop, a web idiom) then piled up: each post was queued at every
-- earlier channel of the name, so memory and time grew as the square of
-- the posts (3,000 posts: 2,994 channels and 132 MB left after two full
-- collections). Such a channel's tokens no longer keep it alive; one
-- that is still referenced dispatches as before.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: a BroadcastChannel with no listener", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  local name = helper.namer("regress.bc-unreachable.")

  local function count(weak)
    collectgarbage()
    collectgarbage()
    local k = 0
    for _ in pairs(weak) do k = k + 1 end
    return k
  end

  it("is collected, unreachable, with the messages queued for it", function()
    local nm = name()
    local a = mc.BroadcastChannel(nm)
    local weak = setmetatable({}, { __mode = "k" })
    do
      local b = mc.BroadcastChannel(nm)
      weak[b] = true
    end
    for i = 1, 3 do a:postMessage(i) end  -- queued at b, not dispatched
    assert.equal(0, count(weak))
    a:close()
    mc.run()
    assert.same({}, errors)
  end)

  it("is collected, unreachable, when each sender posts once", function()
    local nm = name()
    local weak = setmetatable({}, { __mode = "k" })
    for i = 1, 300 do
      local bc = mc.BroadcastChannel(nm)
      weak[bc] = true
      bc:postMessage(i)
    end
    assert.equal(0, count(weak))
    assert.is_true(mc.run(helper.WAIT))
    assert.same({}, errors)
  end)

  it("still referenced, gets a listener set before the dispatch",
     function()
    local nm = name()
    local a, b = mc.BroadcastChannel(nm), mc.BroadcastChannel(nm)
    local ch = mc.MessageChannel()
    local got = {}
    ch.port2.onmessage = function(e) got[#got + 1] = e.data end
    a:postMessage("first")
    ch.port1:postMessage("second")
    a:postMessage("third")
    collectgarbage()
    collectgarbage()  -- b is referenced: its tokens still find it
    b.onmessage = function(e) got[#got + 1] = e.data end
    for _ = 1, 5 do mc.step() end
    assert.same({ "first", "second", "third" }, got)
    a:close()
    b:close()
    ch.port1:close()
    mc.run()
    assert.same({}, errors)
  end)

  it("at the dispatch drops what was queued", function()
    local nm = name()
    local a, b = mc.BroadcastChannel(nm), mc.BroadcastChannel(nm)
    a:postMessage("unheard")
    collectgarbage()
    for _ = 1, 5 do mc.step() end  -- dispatched to no one
    local got = {}
    b.onmessage = function(e) got[#got + 1] = e.data end
    a:postMessage("heard")
    for _ = 1, 5 do mc.step() end
    assert.same({ "heard" }, got)
    a:close()
    b:close()
    mc.run()
    assert.same({}, errors)
  end)
end)
