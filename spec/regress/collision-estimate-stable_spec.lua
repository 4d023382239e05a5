-- Whether a table of number keys that collide at some size of Lua's hash
-- could be cloned changed from call to call: the walk's estimate of what
-- its keys cost (docs/FORMAT.md, "Colliding keys") sampled them at random
-- and looked at sizes up to what the state's memory held, which grows with
-- garbage. The same unchanged table was cloned or refused with
-- "too many colliding keys" at random (5.2, 5.4), or cloned once and then
-- refused (5.1). The sample now follows the keys' order (the same keys
-- of the same table each time), and the sizes go up to 2^30 whatever the
-- memory. (The same keys inserted in another order may still be judged
-- otherwise: the walk meets them in another order.)

local mc = require "messagechannel"

local jit = rawget(_G, "jit")
local version = jit and "jit" or _VERSION:match("%d%.%d")
-- keys i * m, i = 1..n: multiples of 2^k - 1, which collide at the size
-- 2^k that a table with more keys than these would have
local SHAPES = {
  ["5.1"] = { 65535, 10000 }, ["5.2"] = { 65535, 10000 },
  ["5.3"] = { 86400, 20000 }, ["5.4"] = { 4095, 1000 },
  jit = { 65535, 30000 },
}

local function outcome(f, ...)
  local ok, err = pcall(f, ...)
  if ok then return "cloned" end
  err = tostring(err)
  assert(err:find("too many colliding keys", 1, true), err)
  return "refused"
end

describe("regress: whether a table with colliding keys clones", function()
  it("is the same on every call, whatever garbage the state holds", function()
    local m, n = SHAPES[version][1], SHAPES[version][2]
    local t = {}
    for i = 1, n do t[i * m] = i end
    local ch = mc.MessageChannel()
    local held, seen = {}, {}
    for round = 1, 24 do
      seen[outcome(mc.structuredClone, t)] = true
      seen[outcome(mc.serialize, t)] = true
      seen[outcome(ch.port1.postMessage, ch.port1, t)] = true
      -- the state's memory grows from round to round
      for j = 1, 2000 do held[#held + 1] = { round, j } end
    end
    local list = {}
    for k in pairs(seen) do list[#list + 1] = k end
    table.sort(list)
    assert.equal(1, #list, table.concat(list, " and "))
    assert.equal(24 * 2000, #held)
    ch.port1:close()
    ch.port2:close()
  end)
end)
