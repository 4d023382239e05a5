-- A registered metatable was set on a table before its contents were
-- filled, so when the clone failed later its __gc ran on a half-built
-- table. Registered metatables are now set only once the clone succeeded.

local mc = require "messagechannel"
local helper = require "spec.helper"

-- Tables have __gc from Lua 5.2 on; on 5.1 and LuaJIT the finalizer never
-- runs, and these specs only check the error.
local finalized = {}
local Tracked = mc.register("regress.partial.Tracked", {
  __gc = function(o) finalized[#finalized + 1] = o end,
})

local function collect()
  for _ = 1, 3 do collectgarbage("collect") end
end

describe("regress: registered metatable on a failed clone", function()
  before_each(function()
    collect()
    for i = #finalized, 1, -1 do finalized[i] = nil end
  end)

  it("mc.deserialize sets no metatable on a table it could not finish", function()
    local original = setmetatable({ 1, 2, 3 }, Tracked)
    local bytes = mc.serialize(original)
    local err = helper.error_of(mc.deserialize, bytes:sub(1, -2))
    assert.truthy(err:find("DataCloneError:", 1, true), err)
    collect()
    assert.equal(0, #finalized)
    assert.equal(3, #original)  -- the original stays alive until here
  end)

  it("mc.structuredClone sets no metatable when a later value fails", function()
    local v = { first = setmetatable({ x = 1 }, Tracked) }
    v.first.bad = print
    local err = helper.error_of(mc.structuredClone, v)
    assert.truthy(err:find("DataCloneError:", 1, true), err)
    collect()
    assert.equal(0, #finalized)
    assert.equal(1, v.first.x)  -- the original stays alive until here
  end)

  it("a clone that succeeds still has the metatable", function()
    local c = mc.structuredClone({ setmetatable({ x = 1 }, Tracked) })
    assert.equal(Tracked, getmetatable(c[1]))
    local d = mc.deserialize(mc.serialize(setmetatable({ y = 2 }, Tracked)))
    assert.equal(Tracked, getmetatable(d))
    assert.equal(2, d.y)
  end)
end)
