-- The codec keeps the ids of a message's first objects in 17 slots of the
-- Lua stack, and asked for room for those 17 only: the walk then pushed up
-- to 7 more values (a key, its value, a metatable and what finds its
-- registered name) past the room Lua gives a C function. Where the stack
-- ended just there, they went into the few spare slots Lua keeps past
-- its end: a Lua 5.4 built with LUA_USE_APICHECK aborts ("stack overflow"
-- in lua_getmetatable) on the serialize below. Each call is made here at
-- every depth of a range, so that one of them meets the stack's end.

local mc = require "messagechannel"

describe("regress: the codec's room on the Lua stack", function()
  local mt = {}
  mc.register("regress.stack-room", mt)
  local function value()
    local v = { id = 1, name = "hello", tags = { "a", "b" },
                pos = setmetatable({ x = 1.5, y = -2 }, mt) }
    local cur = v
    for i = 1, 20 do
      cur.next = setmetatable({ i = i, [{ i }] = { 1, 2 } }, mt)
      cur = cur.next
    end
    return v
  end

  local function check(copy)
    assert.are.equal("hello", copy.name)
    assert.are.equal(mt, getmetatable(copy.pos))
    local cur, n = copy, 0
    while cur.next do cur, n = cur.next, n + 1 end
    assert.are.equal(20, n)
    assert.are.equal(mt, getmetatable(cur))
  end

  -- calls f at depths 1 .. 300 of a recursion with a few locals a level
  local function at_every_depth(f)
    local function down(n, a, b, c)
      if n == 0 then return f() end
      local r = down(n - 1, a, b, c)
      return r
    end
    for depth = 1, 300 do check(down(depth, 1, 2, 3)) end
  end

  it("serialize and deserialize", function()
    local v = value()
    at_every_depth(function() return mc.deserialize(mc.serialize(v)) end)
  end)

  it("structuredClone", function()
    local v = value()
    at_every_depth(function() return mc.structuredClone(v) end)
  end)

  it("postMessage and receive", function()
    local v = value()
    local ch = mc.MessageChannel()
    at_every_depth(function()
      ch.port1:postMessage(v)
      return ch.port2:receive().data
    end)
    ch.port1:close()
  end)
end)
