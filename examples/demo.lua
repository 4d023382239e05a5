-- A tour of structured clone: what a message keeps and what it refuses.
-- Run with `make demo`.

local mc = require "messagechannel"

local jit = rawget(_G, "jit")
local math_type = rawget(math, "type")  -- Lua 5.3+

print("messagechannel " .. mc.version .. " on " .. (jit and jit.version or _VERSION))

-- A graph with a shared table and a cycle.
local settings = { theme = "dark" }
local doc = { title = "Report", pages = { 1, 2, 3 }, a = settings, b = settings }
doc.self = doc

local copy = mc.structuredClone(doc)
print("copy is a new table:          ", copy ~= doc)
print("shared table still shared:    ", copy.a == copy.b and copy.a ~= settings)
print("cycle kept:                   ", copy.self == copy)

-- Integers and floats stay apart on Lua 5.3+.
local nums = mc.structuredClone({ 3, 3.0, -0.0 })
if math_type then
  print("3 and 3.0 keep their types:   ", math_type(nums[1]), math_type(nums[2]))
end
print("-0.0 keeps its sign:          ", 1 / nums[3] == -math.huge)

-- Metatables are dropped unless registered by name.
local Point = mc.register("Point", { __tostring = function (p)
  return "(" .. p.x .. ", " .. p.y .. ")"
end })
local p = mc.structuredClone(setmetatable({ x = 1, y = 2 }, Point))
print("registered metatable travels: ", tostring(p))

-- The byte form: what port queues hold.
local bytes = mc.serialize(doc)
print("serialized size:              ", #bytes .. " bytes, format version " .. bytes:byte(1))
print("round trip keeps the cycle:   ", mc.deserialize(bytes).self ~= nil)

-- What cannot be cloned says where it is.
local ok, err = pcall(mc.structuredClone, { handlers = { print, print } })
print("a function is refused:        ", ok, err)

-- Hostile bytes are rejected, never trusted.
ok, err = pcall(mc.deserialize, bytes:sub(1, 10))
print("truncated input is rejected:  ", ok, err)
