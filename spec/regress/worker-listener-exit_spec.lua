-- A worker that ended with a Unix listener still open (closed by the
-- collector as its state closed) told its exit before the network thread
-- had closed the listening socket: a connect made from the parent's
-- onexit was sometimes taken by the dying listener and then closed with
-- "disconnected" (or no reason), instead of being refused (API.md 7: the
-- exit event is the last thing seen of the worker; 12: "refused" means no
-- one listens). The worker's thread now waits for the network thread to
-- close what its state left open before it tells its exit.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: a worker's listener is closed when its exit is told #threads", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  it("a connect from onexit is refused, every time", function()
    local reasons = {}
    for i = 1, 60 do
      -- a path of its own, made without a shell (a #threads spec: under
      -- ThreadSanitizer the shell's children do not run)
      local path = os.tmpname()
      os.remove(path)
      local address = "unix:" .. path
      local w = start([[
        local mc = require "messagechannel"
        local l = mc.listen(mc.workerData)
        l:unref()
        _G.keep = l
      ]], { data = address })
      w.onexit = function()
        local c = mc.connect(address)
        c.onclose = function(e) reasons[i] = tostring(e.reason) end
      end
      helper.run()
      os.remove(path)
      assert.equal("refused", reasons[i])
    end
    assert.same({}, errors)
  end)
end)
