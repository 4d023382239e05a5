-- A Buffer's bytes live outside the Lua heap (so that a transfer moves
-- them without a copy), where the collector did not count them: a program
-- that dropped each Buffer as it came (made, or received from a worker)
-- held every one of their bytes until its small Lua heap alone made a
-- cycle due; 60 Buffers of 8 MiB took 490 MiB. Each Buffer that comes to
-- a state now pays for its bytes with collector work, as if Lua had
-- allocated them.

local mc = require "messagechannel"

-- How many of the values in the weak table `list` are not collected yet.
local function alive(list)
  local n = 0
  for _ in pairs(list) do n = n + 1 end
  return n
end

-- How many Buffers of `size` bytes make sixteen times the Lua heap (at
-- least 64): the collector lets garbage grow to about the heap's size
-- (its pause) before a cycle, and busted's heap grows with the specs it
-- loaded, so the count must outgrow the heap, not a fixed size.
local function how_many(size)
  collectgarbage()
  local heap = collectgarbage("count") * 1024
  return math.max(64, math.ceil(16 * heap / size))
end

describe("regress: the collector counts a Buffer's bytes", function()
  local SIZE = 1024 * 1024

  it("when Buffers are made and dropped at once", function()
    local N = how_many(SIZE)
    local seen = setmetatable({}, { __mode = "v" })
    for i = 1, N do seen[i] = mc.Buffer(SIZE) end
    -- without the count, no cycle runs: all N are still there
    assert.is_true(alive(seen) <= N / 4, alive(seen) .. " of " .. N .. " still held")
  end)

  it("when Buffers arrive, copied or moved, and are dropped at once", function()
    local N = how_many(SIZE)
    local bytes = string.rep("b", SIZE)
    for _, moved in ipairs({ false, true }) do
      local ch = mc.MessageChannel()
      local seen, n = setmetatable({}, { __mode = "v" }), 0
      ch.port2.onmessage = function(e)
        n = n + 1
        seen[n] = e.data
      end
      for _ = 1, N do
        local b = mc.Buffer(bytes)
        ch.port1:postMessage(b, moved and { b } or nil)
        mc.run()  -- one message at a time, as a program that keeps up
      end
      assert.equal(N, n)
      assert.is_true(alive(seen) <= N / 4,
                     alive(seen) .. " of " .. N .. " still held (moved: "
                     .. tostring(moved) .. ")")
      ch.port1:close()
    end
  end)
end)
