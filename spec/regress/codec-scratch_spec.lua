-- The codec keeps its scratch memory (output buffer, map of the objects a
-- call has met, ids) in the state from call to call, marked taken while a
-- call uses it. A call that finds it taken makes its own: a call made by a
-- finalizer while another runs, or any call after an error escaped one
-- (that scratch stays taken until a new one replaces it). These specs check
-- what that must keep: both calls right, and every later call right, on
-- every version (on 5.1 to 5.3 and LuaJIT an error in a finalizer escapes
-- the codec call the collector ran it in; on 5.4 it becomes a warning).

local mc = require "messagechannel"
local helper = require "spec.helper"

local park, park_done = helper.park, helper.park_done

-- n records sharing one table, and a cycle: what a copy must keep.
local function value(n)
  local shared = { "shared" }
  local t = { shared = shared }
  for i = 1, n do t[i] = { i = i, name = "item " .. i, s = shared } end
  t.self = t
  return t
end

local function check(v, n)
  assert.equal(n, #v)
  assert.equal(v, v.self)
  for i = 1, n, 97 do
    assert.equal(i, v[i].i)
    assert.equal("item " .. i, v[i].name)
    assert.equal(v.shared, v[i].s)
  end
  assert.equal("shared", v.shared[1])
end

-- Each codec call: what it is given (made from the value before the
-- collector is parked), the call, and the copy made from its result.
local function same(x) return x end
local WAYS = {
  { "structuredClone", same, mc.structuredClone, same },
  { "serialize", same, mc.serialize, mc.deserialize },
  { "deserialize", mc.serialize, mc.deserialize, same },
}

describe("regress: the codec's scratch", function()
  after_each(park_done)

  for _, way in ipairs(WAYS) do
    local name, prepare, call, finish = way[1], way[2], way[3], way[4]
    local function copy(v) return finish(call(prepare(v))) end

    it(name .. ": a finalizer's codec calls during a call", function()
      local v = prepare(value(3000))
      local inner = {}
      local during = false
      park(function()
        if during and #inner < 6 then
          inner[#inner + 1] = mc.deserialize(mc.serialize(value(50)))
          inner[#inner + 1] = mc.structuredClone(value(50))
        end
      end)
      during = true
      local outer = call(v)
      during = false
      park_done()
      check(finish(outer), 3000)
      if _VERSION == "Lua 5.4" then assert.equal(6, #inner) end
      for _, c in ipairs(inner) do check(c, 50) end
      for _ = 1, 3 do check(copy(value(200)), 200) end
    end)

    it(name .. ": calls after an error escaped one", function()
      local v = prepare(value(3000))
      local armed = false  -- raises only inside the codec's call
      park(function() if armed then error("finalizer error", 0) end end)
      armed = true
      local ok, got = pcall(call, v)
      armed = false
      park_done()
      if ok then check(finish(got), 3000) end
      for _ = 1, 3 do
        check(copy(value(200)), 200)
        check(mc.structuredClone(value(200)), 200)
        check(mc.deserialize(mc.serialize(value(200))), 200)
      end
    end)
  end
end)
