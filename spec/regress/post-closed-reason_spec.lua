-- regress: postMessage on a closed pair returned only `false`; API.md 2
-- says `false, "closed"`, for every way a post can be dropped.

local mc = require "messagechannel"
local helper = require "spec.helper"

local function dropped(...)
  assert.same({ n = 2, false, "closed" }, helper.pack(...))
end

describe("regress: a dropped postMessage says why", function()
  it("returns false, 'closed' on a port closed here or by its partner", function()
    local ch = mc.MessageChannel()
    ch.port1:close()
    dropped(ch.port1:postMessage("a"))
    dropped(ch.port2:postMessage("b"))
  end)

  it("returns false, 'closed' on a port detached by a transfer", function()
    local ch, carrier = mc.MessageChannel(), mc.MessageChannel()
    assert.is_true(carrier.port1:postMessage(nil, { ch.port1 }))
    dropped(ch.port1:postMessage("from the old object"))
  end)

  it("returns false, 'closed' once the partner was collected", function()
    local ch = mc.MessageChannel()
    local p1 = ch.port1
    ch = nil  -- luacheck: ignore 311
    helper.collect()
    mc.run()
    dropped(p1:postMessage("nobody there"))
  end)

  it("returns true alone when queued", function()
    local ch = mc.MessageChannel()
    assert.same({ n = 1, true }, helper.pack(ch.port1:postMessage("x")))
  end)

  it("returns false, 'closed' from a Worker that has ended #threads", function()
    local w = mc.Worker("", { eval = true })
    assert.is_true(mc.run(helper.WAIT))
    dropped(w:postMessage("late"))
  end)
end)
