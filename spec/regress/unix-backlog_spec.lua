-- A burst of connects to a Unix socket listener larger than its backlog:
-- the kernel turns a nonblocking connect away with EAGAIN while the
-- backlog is full (a TCP client's kernel would send its SYN again), and
-- each such connect closed with reason "refused", which API.md 12 keeps
-- for "no one listens at the address": 125 of 400 here. It is made again
-- until the listener takes it.

local mc = require "messagechannel"
local R = require "spec.remote.helper"

describe("regress: a Unix listener's full backlog #remote", function()
  after_each(R.cleanup)

  it("makes a connect wait, not fail", function()
    local l = mc.listen(R.unix_address())
    local accepted, closed, reasons = 0, 0, {}
    l.onconnect = function(e)
      accepted = accepted + 1
      e.port:close()
    end
    local N = 400  -- the backlog is at most 128 here (somaxconn, 4096 on
                   -- newer kernels): the first connects fill it at once
    for _ = 1, N do
      mc.connect(l.address).onclose = function(e)
        closed = closed + 1
        reasons[e.reason or "closed"] = (reasons[e.reason or "closed"] or 0) + 1
      end
    end
    R.await("every connect's close", function() return closed == N end)
    l:close()
    assert.equal(N, accepted)
    assert.is_nil(reasons.refused)
  end)
end)
