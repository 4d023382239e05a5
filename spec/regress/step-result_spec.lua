-- mc.step() asked what was ready before what keeps it going, and the second
-- question queued the last messages and the close of a port whose partner
-- (in another thread) had closed meanwhile: the answer was already false.
-- A host loop `while mc.step() do socket.select({mc}, nil, mc.timeout())
-- end` then ended with those messages and the close never dispatched.
--
-- The worker's listener is slow in a way that does not depend on speed: on
-- the first message it waits until the main thread has posted the rest and
-- closed (a flag file), so the news of them comes in during that step.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WAIT = helper.WAIT   -- seconds: the bound of every loop and wait
local N = 50      -- messages per round
local ROUNDS = 3

local has_socket = pcall(require, "socket")

describe("regress: mc.step() in a host loop #threads", function()
  local workers = {}
  after_each(function() helper.terminate_all(workers) end)

  if not has_socket then
    pending(helper.skipped("step-result", "LuaSocket is not installed for " .. _VERSION))
    return
  end

  it("goes on until a closed partner's last messages and close are dispatched", function()
    for round = 1, ROUNDS do
      local flag = os.tmpname()
      os.remove(flag)
      local ch = mc.MessageChannel()
      local rec = helper.record_worker(workers, ([[
        local socket = require "socket"
        local WAIT, FLAG = %d, %q
        local port = mc.workerData
        local got, closed = 0, false
        port.onmessage = function()
          got = got + 1
          if got > 1 then return end
          mc.parentPort:postMessage("in listener")
          local deadline = mc.now() + WAIT
          repeat
            local f = io.open(FLAG)
            if f then f:close() end
          until f or mc.now() > deadline
        end
        port.onclose = function() closed = true end
        -- the README's host loop, bounded
        local deadline, ended = mc.now() + WAIT, "returned"
        while mc.step() do
          local left = deadline - mc.now()
          if left <= 0 then ended = "bound"; break end
          local t = mc.timeout()
          socket.select({ mc }, nil, (t == nil or t > left) and left or t)
        end
        mc.parentPort:postMessage(("%%d %%s, loop %%s"):format(got,
          closed and "closed" or "open", ended))
      ]]):format(WAIT, flag), { data = ch.port2, transfer = { ch.port2 } })
      rec.worker.onmessage = function(e)
        if e.data == "in listener" then
          for i = 2, N do ch.port1:postMessage(i) end
          ch.port1:close()
          assert(io.open(flag, "w")):close()
        else
          rec.messages[#rec.messages + 1] = e.data
        end
      end
      ch.port1:postMessage(1)
      local idle = mc.run(WAIT + 5)
      os.remove(flag)
      assert.is_true(idle, "round " .. round .. ": mc.run did not become idle")
      assert.same({ N .. " closed, loop returned" }, rec.messages, "round " .. round)
      assert.equal(0, rec.code, "round " .. round)
    end
  end)
end)
