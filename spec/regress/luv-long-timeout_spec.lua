-- messagechannel.luv armed its timer with math.ceil(mc.timeout() * 1000)
-- milliseconds: a task in mc.sleep(math.huge), or any wait longer than
-- about 9.2e15 s, made luv's timer:start raise "number has no integer
-- representation" on Lua 5.3 and 5.4, which ended the process. A long
-- wait is now armed in pieces of at most 2^31 - 1 ms (API.md 10: timers
-- and sleep inside tasks work as under mc.run()).

local mc = require "messagechannel"
local helper = require "spec.helper"

local has_luv, uv = pcall(require, "luv")

describe("regress: messagechannel.luv with a very long wait", function()
  if not has_luv then
    pending(helper.skipped("luv-long-timeout", "luv is not installed for " .. _VERSION))
    return
  end
  local adapter = require "messagechannel.luv"
  -- the sleeping tasks stay: settle for 0.1 s, not until idle
  local errors, handle = helper.luv_specs(uv, adapter, 0.1, before_each, after_each)

  for _, secs in ipairs { math.huge, 1e300, 1e16 } do
    it(("runs on while a task sleeps %g s"):format(secs), function()
      local ch, got = mc.MessageChannel(), nil
      local sleeper = mc.spawn(function() mc.sleep(secs) end)
      local bound = handle(uv.new_timer())
      ch.port1.onmessage = function(e)
        got = e.data
        adapter.stop()
        bound:stop()
      end
      adapter.start()
      uv.update_time()  -- the loop's clock stood still since its last run
      handle(uv.new_timer()):start(10, 0, function() ch.port2:postMessage("hi") end)
      bound:start(10000, 0, function() adapter.stop() end)  -- a bug's bound
      uv.run()
      assert.equal("hi", got)
      assert.equal("suspended", coroutine.status(sleeper))
      assert.same({}, errors)
      ch.port1:close()
    end)
  end
end)
