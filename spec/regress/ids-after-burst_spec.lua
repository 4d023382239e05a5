-- The context keeps a slot for every object id it ever registered, in its
-- pinned and objects tables, so that pinning a port never allocates. Ids
-- of collected objects are used again, but after a burst of many live
-- ports both tables stayed as large as that peak for good, and every
-- mc.step() and mc.run() walked the pinned one: an idle mc.step() went
-- from about 1 us to 2-3 ms after 100,000 channels had existed, with
-- none left (API.md 9: nothing grows with history). Now both are made
-- again with their live ids once fewer than a quarter of their slots are.
-- The spec looks at the memory they hold, which their size sets.

local mc = require "messagechannel"

local function kb()
  for _ = 1, 4 do collectgarbage() end
  return collectgarbage("count")
end

describe("regress: the context's id tables after a burst of ports", function()
  it("shrink back once the ports are collected", function()
    mc.step()
    local before = kb()
    local keep = {}
    for i = 1, 20000 do keep[i] = mc.MessageChannel() end
    assert.equal(20000, #keep)
    keep = nil  -- luacheck: ignore 311
    kb()
    mc.step()
    -- 40,000 ids: two tables of that many slots hold well over 1 MB
    assert.is_true(kb() - before < 256,
                   "held " .. math.floor(kb() - before) .. " KB")
    -- and ids are still used again, pinned and let go as before
    local ch, got = mc.MessageChannel(), nil
    ch.port2.onmessage = function(e) got = e.data end
    ch.port1:postMessage("after")
    ch.port1:close()
    assert.is_true(mc.run(5))
    assert.equal("after", got)
  end)
end)
