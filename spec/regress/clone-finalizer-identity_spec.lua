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
-- object in the array is a different one, so every copy must be too. It
-- runs in a child process: a small heap keeps the collector's cycles
-- short (Lua 5.3 takes 60 times longer inside busted) and its allocations
-- as they are outside.

local helper = require "spec.helper"

local PROBE = [[
local mc = require "messagechannel"
local make = MAKE
local N, ROUNDS, STEP = 5000, 30, 50
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
    on_gc(finalizer)
  end
  local pause = collectgarbage("setpause", 0)
  local stepmul = collectgarbage("setstepmul", 1000)
  arm()
  local c = mc.structuredClone(v)
  armed = false
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
  local seen = {}
  for _, x in pairs(c) do
    if seen[x] then n = n + 1 end
    seen[x] = true
  end
end
print("repeats " .. n)
]]

-- How many entries of the clones repeat an earlier one, objects made by
-- the Lua expression `make`.
local function repeats(make)
  local out = helper.run_child(helper.ON_GC .. (PROBE:gsub("MAKE", make)),
                               120)
  if out == nil then pending(helper.NO_CHILD) end
  return out
end

describe("regress: structuredClone under finalizers that edit the value", function()
  it("copies each table of the value once, and a new one as new", function()
    local out = repeats("function() return {} end")
    if out then assert.are.equal("repeats 0\n exit:0\n", out) end
  end)

  it("copies each Buffer of the value once, and a new one as new", function()
    local out = repeats("function() return mc.Buffer(1) end")
    if out then assert.are.equal("repeats 0\n exit:0\n", out) end
  end)
end)
