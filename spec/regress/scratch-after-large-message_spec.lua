-- The codec keeps its map of the objects a call has met (for shared
-- references and cycles) from call to call. Emptying it used to cost its
-- whole capacity, so after one message of many tables every later call,
-- however small, paid for that capacity (a 30,000-table clone made each
-- small clone about 8 times slower). Now emptying it gives the map a new
-- stamp and leaves the old entries where they are. These specs check what
-- that must keep: an entry of an earlier call is never found again, even
-- at the address of an object collected since, and identity inside a call
-- still holds. (The speed itself is a benchmark's: make bench.)

local mc = require "messagechannel"

-- Enough tables for the map to grow to 65,536 slots (at most half in use),
-- the most a call may leave it: a larger one is freed, not kept (see
-- give_scratch in src/codec.c), and these specs would test nothing.
local LARGE = 30000

-- A message of LARGE tables, so that the map grows past them.
local function large()
  local t = {}
  for i = 1, LARGE do t[i] = { i } end
  return t
end

-- What each way of cloning gives back for v.
local WAYS = {
  { "structuredClone", function(v) return mc.structuredClone(v) end },
  { "serialize+deserialize",
    function(v) return mc.deserialize(mc.serialize(v)) end },
  { "postMessage", function(v)
      local ch = mc.MessageChannel()
      ch.port1:postMessage(v)
      local got = assert(ch.port2:receive()).data
      ch.port1:close()
      return got
    end },
}

describe("regress: the codec after a large message", function()
  for _, way in ipairs(WAYS) do
    local name, copy = way[1], way[2]

    it(name .. ": tables made after it at freed addresses stay apart",
      function()
        do
          local c = copy(large())
          assert.are.equal(LARGE, #c)
          assert.are.equal(LARGE, c[LARGE][1])
        end
        collectgarbage()
        collectgarbage()
        -- new tables, many of them where the large one's were
        for round = 1, 200 do
          local a, b = { round }, { -round }
          local got = copy({ a, b, { a } })
          assert.are_not.equal(got[1], got[2])
          assert.are.equal(round, got[1][1])
          assert.are.equal(-round, got[2][1])
          assert.are.equal(got[1], got[3][1])
        end
      end)

    it(name .. ": shared references and cycles after it", function()
      copy(large())
      for _ = 1, 100 do
        local shared = { "s" }
        local v = { x = shared, y = shared, z = { "other" } }
        v.self = v
        local got = copy(v)
        assert.are.equal(got.x, got.y)
        assert.are_not.equal(got.x, got.z)
        assert.are.equal(got, got.self)
        assert.are_not.equal(v, got)
        assert.are.equal("s", got.x[1])
      end
    end)

    it(name .. ": one large message after another", function()
      for round = 1, 3 do
        local t = large()
        t[LARGE + 1] = t[round]  -- a shared reference at its end
        local got = copy(t)
        assert.are.equal(got[round], got[LARGE + 1])
        assert.are_not.equal(got[round], got[round + 1])
        assert.are.equal(LARGE, got[LARGE][1])
      end
    end)
  end
end)
