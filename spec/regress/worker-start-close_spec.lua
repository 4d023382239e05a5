-- A port moved into a worker that ends at once, while its partner here
-- listens for close and nothing else refers to it: the partner got its
-- close in most runs only. The worker could close the pair before the
-- parent had detached the moved port, and the parent then left the partner
-- neither pinned nor kept, so it was collected with its close still to
-- come (about 4 of 300 lost). The messages a worker gets are now committed
-- before its thread starts, and a port stays pinned until its close is
-- taken.

local mc = require "messagechannel"
local helper = require "spec.helper"

local N = 300

describe("regress: a port moved into a worker that ends at once #threads", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  for _, case in ipairs({
    { "that never reads it", "" },
    { "that reads it", "local d = require('messagechannel').workerData; d.b:write(1, 'y')" },
    { "that fails", "error('boom')" },
  }) do
    it("closes at its partner, kept by nothing else, in a worker " .. case[1], function()
      local closes, exits = {}, 0
      for i = 1, N do
        local ch = mc.MessageChannel()
        ch.port1.onclose = function() closes[i] = true end
        ch.port1.onmessage = helper.noop
        local b = mc.Buffer(("x"):rep(100))
        local w = mc.Worker(case[2], { eval = true, data = { p = ch.port2, b = b },
                                       transfer = { ch.port2, b } })
        w.onerror = helper.noop
        w.onexit = function() exits = exits + 1 end
      end
      collectgarbage()
      assert.is_true(mc.run(60))
      local n = 0
      for _ in pairs(closes) do n = n + 1 end
      assert.equal(N, exits)
      assert.equal(N, n)
      assert.same({}, errors)
    end)
  end
end)
