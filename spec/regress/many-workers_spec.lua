-- A program that starts workers over its life, one after another, must be
-- able to start as many as it likes. The module kept a thread-local
-- variable (a count of its scheduler's waits); in a module loaded with
-- dlopen, as `require` loads it, ThreadSanitizer's runtime then failed
-- ("failed to allocate ... errno: 12") after a few hundred to 1,500
-- workers had come and gone, which made `make tsan` fail at random. The
-- count is now kept by each Lua state's hub. Under `make tsan` this spec
-- fails with the old code; anywhere it checks that every worker ran.

local mc = require "messagechannel"

local WORKERS = 2000
local BATCH = 10   -- at a time, as a server handing out jobs would

describe("regress: many workers over a program's life #threads", function()
  it("starts " .. WORKERS .. " workers, each of which waits, and all end",
    function()
      local exits, codes, got = 0, 0, 0
      for first = 1, WORKERS, BATCH do
        for i = first, first + BATCH - 1 do
          -- the worker's scheduler waits (mc.sleep) before it posts
          local w = mc.Worker([[
            local mc = require "messagechannel"
            mc.sleep(0)
            mc.parentPort:postMessage(mc.workerData)
          ]], { eval = true, data = i })
          w.onmessage = function(e) got = got + e.data end
          w.onexit = function(e)
            exits = exits + 1
            if e.code == 0 then codes = codes + 1 end
          end
        end
        assert.is_true(mc.run(60))
      end
      assert.are.equal(WORKERS, exits)
      assert.are.equal(WORKERS, codes)
      assert.are.equal(WORKERS * (WORKERS + 1) / 2, got)
    end)
end)
