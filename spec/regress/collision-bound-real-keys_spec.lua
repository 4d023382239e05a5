-- Lua 5.3 refused ordinary tables as "too many colliding keys": 3,400
-- entries keyed by daily timestamps (multiples of 86,400, whose low 7
-- bits are zero, so Lua 5.3, which masks integers, puts them in 1 node in
-- 128), and 396 keys that are multiples of 1,024. Lua fills such tables
-- in a few milliseconds: their keys crowd, but each chain stays short,
-- and the README said only tens of thousands of them were refused. The
-- bound (docs/FORMAT.md) is now 64 probes per table slot plus 2^20 per
-- message: still proportional to the input, and such tables travel.

local mc = require "messagechannel"

local function keyed(n, step)
  local t = {}
  for i = 1, n do t[1700006400 + i * step] = i end
  return t
end

local function same(a, b)
  for k, v in pairs(a) do
    if b[k] ~= v then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

describe("regress: tables of crowding but real keys travel", function()
  local cases = { { 3400, 86400 }, { 10000, 86400 }, { 40000, 86400 },
                  { 20000, 128 }, { 2000, 1024 }, { 1000, 4096 } }
  for _, c in ipairs(cases) do
    local n, step = c[1], c[2]
    it(("%d keys, multiples of %d"):format(n, step), function()
      local t = keyed(n, step)
      assert.is_true(same(t, mc.structuredClone(t)))
      assert.is_true(same(t, mc.deserialize(mc.serialize(t))))
      local ch = mc.MessageChannel()
      assert.is_true(ch.port1:postMessage({ prices = t }))
      local ev = ch.port2:receive(0)
      assert.is_true(same(t, ev.data.prices))
      ch.port1:close()
    end)
  end
end)
