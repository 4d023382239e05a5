-- mc.structuredClone keeps one copy per object of the value (API.md 4.1),
-- found by the object's address. It kept only the copies alive: a __gc
-- that ran during the copy (the copy allocates, so the collector runs) and
-- dropped objects already copied from the value let Lua collect them and
-- give their memory to new objects the same __gc put in the value. Those
-- were taken for the dropped ones, and the clone held one copy twice where
-- the value held two objects. The originals are now kept until the copy
-- ends.
--
-- Each round arms a chain of finalizers, one per collection cycle, that
-- drops the first entries of an array and replaces the last ones with new
-- objects, while an aggressive collector runs during the copy. Every
-- object in the array is a different one, so every copy must be too.

local mc = require "messagechannel"

local newproxy = rawget(_G, "newproxy")  -- 5.1 and LuaJIT

local N = 20000
local ROUNDS = 30
local STEP = 50   -- entries dropped and replaced per finalizer

-- Clones an array of N objects made by make() while finalizers change it,
-- and returns how many entries of the clone repeat an earlier one.
local function repeats(make)
  local n = 0
  for _ = 1, ROUNDS do
    local v = {}
    for i = 1, N do v[i] = make() end
    local lo, hi, armed = 1, N, true
    local arm
    local function finalizer()
      if not armed then return end
      for _ = 1, STEP do
        if lo < hi then v[lo] = nil; lo = lo + 1 end
      end
      for _ = 1, STEP do
        if hi > lo then v[hi] = make(); hi = hi - 1 end
      end
      arm()
    end
    function arm()  -- an object for the collector to find, finalized
      if newproxy then  -- 5.1 and LuaJIT finalize userdata only
        getmetatable(newproxy(true)).__gc = finalizer
      else
        setmetatable({}, { __gc = finalizer })
      end
    end
    local pause = collectgarbage("setpause", 0)
    local stepmul = collectgarbage("setstepmul", 1000)
    arm()
    local ok, c = pcall(mc.structuredClone, v)
    armed = false
    collectgarbage("setpause", pause)
    collectgarbage("setstepmul", stepmul)
    assert(ok, c)
    local seen = {}
    for _, x in pairs(c) do
      if seen[x] then n = n + 1 end
      seen[x] = true
    end
  end
  return n
end

describe("regress: structuredClone under finalizers that edit the value", function()
  it("copies each table of the value once, and a new one as new", function()
    assert.are.equal(0, repeats(function() return {} end))
  end)

  it("copies each Buffer of the value once, and a new one as new", function()
    assert.are.equal(0, repeats(function() return mc.Buffer(1) end))
  end)
end)
