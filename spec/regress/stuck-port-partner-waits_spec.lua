-- Regression of README "Lifetime" (Delivery rules): a port whose partner
-- is on another thread, and that can dispatch nothing more on its own (not
-- started, or no `message` listener, with a message it cannot deliver at
-- the head of its queue), is collected once the program no longer refers
-- to it, and its partner gets close. Such a port was let go only when the
-- scheduler asked whether another thread could still wake it, which it
-- does when it has nothing else to wait for: while the partner's worker
-- waited in receive for that close, and the program had a task of its own,
-- the port stayed pinned, so the worker waited for ever and so did
-- mc.run(). Now a port is let go as soon as what comes from another
-- thread leaves it stuck.

local mc = require "messagechannel"
local helper = require "spec.helper"

-- The worker posts "x" to its port, tells its parent, then waits in
-- receive and reports what that returned.
local WORKER = [[
local mc = require "messagechannel"
local p = mc.workerData.p
p:postMessage("x")
mc.parentPort:postMessage("posted")
local ev, why = p:receive()
mc.parentPort:postMessage(tostring(ev) .. "|" .. tostring(why))
]]

-- Makes a pair, gives port2 to a worker, sets up port1 with `listen` and
-- returns the worker and a weak table holding port1 only.
local function start(listen)
  local ch = mc.MessageChannel()
  local w = mc.Worker(WORKER, { eval = true, data = { p = ch.port2 },
                                transfer = { ch.port2 } })
  listen(ch.port1)
  return w, setmetatable({ ch.port1 }, { __mode = "v" })
end

local listens = {
  ["a message listener added, not started"] = function(p)
    p:addEventListener("message", helper.noop)
  end,
  ["only onclose, not started"] = function(p) p.onclose = helper.noop end,
  ["only onmessageerror, not started"] = function(p)
    p.onmessageerror = helper.noop
  end,
  ["started, with only a close listener"] = function(p)
    p:addEventListener("close", helper.noop)
    p:start()
  end,
  ["started, with only onmessageerror"] = function(p)
    p.onmessageerror = helper.noop
    p:start()
  end,
}

describe("regress: a dropped port that cannot dispatch, its partner waiting #threads",
         function()
  for what, listen in pairs(listens) do
    it("is collected and its partner gets close: " .. what, function()
      local w, weak = start(listen)
      local got = {}
      -- a task of the program's own, so that the scheduler is never idle
      local ticking = true
      mc.spawn(function()
        while ticking do mc.sleep(0.01) end
      end)
      w.onmessage = function(e)
        got[#got + 1] = e.data
        if e.data == "posted" then
          -- "x" came before this (API.md 3.1): port1 holds it, stuck
          collectgarbage()
          collectgarbage()
        else
          ticking = false
        end
      end
      w.onerror = function(e) error(e.error) end
      finally(function()  -- a failed case leaves no task or worker behind
        ticking = false
        w:terminate()
        mc.run(helper.WAIT)
      end)
      assert.is_true(mc.run(helper.WAIT))
      assert.is_nil(weak[1])
      assert.same({ "posted", "nil|closed" }, got)
    end)
  end
end)
