-- A post to a remote port that leaves output on its link wakes a host
-- loop to step (df570ac). That wake first ran before the message was
-- queued: what the waker posted (an adapter's waker allocates, so a
-- finalizer may run there) overtook the post that woke it, and the peer
-- got "second" before "first". The wake now comes once the message is
-- queued. The sender is a child process; core.on_wake stands in for an
-- adapter's waker.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: the wake of a remote post #remote", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  it("comes after the post is queued", function()
    local path = os.tmpname()
    os.remove(path)
    local l = mc.listen("unix:" .. path)
    local got, closed = {}, false
    l.onconnect = function(e)
      e.port.onmessage = function(ev)
        got[#got + 1] = #ev.data > 100 and "big" or ev.data
      end
      e.port.onclose = function()
        closed = true
        l:close()
      end
    end
    local out = helper.run_child(([[
      local mc = require "messagechannel"
      local core = require "messagechannel.core"
      local p = mc.connect(%q)
      mc.run(0.2)
      for _ = 1, 3 do p:postMessage(("y"):rep(12 * 1024 * 1024)) end
      mc.step()
      mc.step()  -- the steps take the first posts' watch: the next post
                 -- that leaves output wakes again
      local woke = false
      core.on_wake(function()
        woke = true
        p:postMessage("second")
      end)
      p:postMessage("first")
      core.on_wake(nil)
      io.write("woke: ", tostring(woke), "\n")
      if not woke then p:postMessage("second") end
      p:close()
      mc.run()]]):format("unix:" .. path), helper.WAIT)
    if out == nil then
      return pending("no interpreter to run a child process")
    end
    assert.is_truthy(out:find(" exit:0", 1, true), out)
    assert.is_true(mc.run(helper.WAIT))
    assert.is_true(closed)
    assert.same({ "big", "big", "big", "first", "second" }, got)
    assert.same({}, errors)
  end)
end)
