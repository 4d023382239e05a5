-- mc.run() writes what remote ports had queued before it returns (API.md
-- 12), and dispatches what arrives while it waits for that; but the last
-- of those dispatches came after the last wait, so what its listeners
-- posted was not written: a program that ended after mc.run() lost it
-- (an unref'd port answering a message that came during the drain: the
-- peer never got the answer, and saw the link drop). mc.run() now writes
-- that too before it returns (and dispatches nothing more: an unref'd
-- port that a peer keeps posting to would keep it going for ever).

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: mc.run() writes what its last dispatch posted #remote", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  it("an unref'd port's answer to a message that came during the drain", function()
    local path = os.tmpname()
    os.remove(path)
    -- capacity 1: once the child's first message is read, the link takes
    -- nothing more until this side starts its port, so that the child's
    -- answer is still to be written when its mc.run() would return
    local l = mc.listen("unix:" .. path, { capacity = 1 })
    local got, closed = {}, false
    l.onconnect = function(e)
      e.port.onclose = function()
        closed = true
        l:close()
      end
      mc.spawn(function()
        -- the tick reaches the child while its mc.run() waits for its
        -- messages to be written, which ends once this side reads them
        mc.sleep(0.02)
        e.port:postMessage("tick")
        mc.sleep(0.03)
        e.port.onmessage = function(ev) got[#got + 1] = #ev.data end
      end)
    end
    local wait = helper.spawn_child(([[
      local mc = require "messagechannel"
      local p = mc.connect(%q)
      p:unref()
      p.onmessage = function(e)
        for _ = 1, 1000 do p:postMessage(("r"):rep(1024)) end
        io.write("answered ", e.data, "\n")
      end
      for _ = 1, 300 do p:postMessage(("x"):rep(1024)) end
      io.write("run: ", tostring(mc.run()), "\n")
      os.exit(0)  -- at once: nothing is collected, nothing written]]):format(
      "unix:" .. path), helper.WAIT)
    if wait == nil then return pending(helper.NO_CHILD) end
    assert.is_true(mc.run(helper.WAIT))
    local out = wait()
    assert.is_truthy(out:find(" exit:0", 1, true), out)
    assert.is_truthy(out:find("run: true", 1, true), out)
    assert.is_true(closed)
    -- the tick is dispatched by the child's mc.run() unless it came after
    -- every write was done (then it is never dispatched): either way,
    -- what the child posted arrives
    local want = {}
    for i = 1, out:find("answered tick", 1, true) and 1300 or 300 do
      want[i] = 1024
    end
    assert.same(want, got)
    assert.same({}, errors)
  end)
end)
