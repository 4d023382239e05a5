-- Faults of delivery found by a review against API.md 3.4 and 6.3: a
-- port's close was dispatched while a listener of an earlier message still
-- waited (in sleep or receive), so the rest of that message's listeners,
-- and its messageerror, came after the close; and receive(0) on a port
-- moved away (detached) said "timeout" where every other wait says
-- "closed".

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: close is the last event a port sees", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  it("after the other listeners of a message whose first listener sleeps", function()
    local ch = mc.MessageChannel()
    local p, out = ch.port2, {}
    p:addEventListener("message", function(e)
      out[#out + 1] = "A" .. e.data
      mc.sleep(0.02)
      out[#out + 1] = "/A" .. e.data
    end)
    p:addEventListener("message", function(e)
      out[#out + 1] = "B" .. e.data
      error("B failed", 0)
    end)
    p.onmessageerror = function(e) out[#out + 1] = "err" .. e.data end
    p.onclose = function() out[#out + 1] = "close" end
    p:start()
    ch.port1:postMessage(1)
    ch.port1:close()
    helper.run()
    assert.same({ "A1", "/A1", "B1", "err1", "close" }, out)
  end)

  it("after every message whose one listener waits, their messageerrors included", function()
    local ch = mc.MessageChannel()
    local out = {}
    ch.port2.onmessage = function(e)
      out[#out + 1] = "e" .. e.data
      if e.data == 1 then mc.sleep(0.04) end
      if e.data == 2 then mc.sleep(0.02); error("X", 0) end
      out[#out + 1] = "/e" .. e.data
    end
    ch.port2.onmessageerror = function(e) out[#out + 1] = "err" .. e.data end
    ch.port2.onclose = function() out[#out + 1] = "close" end
    for i = 1, 3 do ch.port1:postMessage(i) end
    ch.port1:close()
    helper.run()
    assert.equal("close", out[#out])
    local seen = {}
    for _, x in ipairs(out) do seen[x] = true end
    for _, x in ipairs({ "e1", "/e1", "e2", "err2", "e3", "/e3" }) do
      assert.is_true(seen[x], x .. " missing: " .. table.concat(out, " "))
    end
    assert.equal(7, #out)
  end)

  it("after a listener that waits in receive on another port", function()
    local ch, other = mc.MessageChannel(), mc.MessageChannel()
    local out = {}
    ch.port2.onmessage = function(e)
      local got = other.port2:receive(5)
      out[#out + 1] = e.data .. "+" .. got.data
    end
    ch.port2.onclose = function() out[#out + 1] = "close" end
    ch.port1:postMessage("m")
    ch.port1:close()
    mc.spawn(function() mc.sleep(0.02); other.port1:postMessage("o") end)
    helper.run()
    assert.same({ "m+o", "close" }, out)
  end)

  it("while receive, which reports the port's state, says closed at once", function()
    local ch, gate = mc.MessageChannel(), mc.MessageChannel()
    local out = {}
    ch.port2:addEventListener("message", function(e)
      -- the queue is empty and closed now: the task receives while the
      -- listener waits for it (5 s: a hang guard)
      mc.spawn(function()
        local ev, why = ch.port2:receive(5)
        out[#out + 1] = tostring(ev) .. " " .. why
        gate.port1:postMessage("go")
      end)
      gate.port2:receive(5)
      out[#out + 1] = "L" .. e.data
    end)
    ch.port2.onclose = function() out[#out + 1] = "close" end
    ch.port2:start()
    ch.port1:postMessage(1)
    ch.port1:close()
    helper.run()
    assert.same({ "nil closed", "L1", "close" }, out)
  end)

  it("while a listener waiting in receive on its own port gets closed first", function()
    for _, how in ipairs({ "receive", "mc.receive", "receive(1)" }) do
      local ch = mc.MessageChannel()
      local out = {}
      ch.port2.onmessage = function(e)
        out[#out + 1] = "got " .. e.data
        local ev, why
        if how == "receive" then ev, why = ch.port2:receive()
        elseif how == "mc.receive" then ev, why = mc.receive({ ch.port2 })
        else ev, why = ch.port2:receive(1) end
        out[#out + 1] = tostring(ev) .. " " .. tostring(why)
      end
      ch.port2.onclose = function() out[#out + 1] = "close" end
      mc.spawn(function() ch.port1:postMessage(1); mc.sleep(0.01); ch.port1:close() end)
      helper.run()
      assert.same({ "got 1", "nil closed", "close" }, out, how)
    end
  end)

  it("while another task waiting in receive gets closed at once", function()
    local ch = mc.MessageChannel()
    local out = {}
    ch.port2.onmessage = function(e) mc.sleep(0.05); out[#out + 1] = "/L" .. e.data end
    ch.port2.onclose = function() out[#out + 1] = "close" end
    mc.spawn(function()
      mc.sleep(0.005)
      local ev, why = ch.port2:receive()
      out[#out + 1] = "waiter " .. tostring(ev) .. " " .. why
    end)
    mc.spawn(function() ch.port1:postMessage(1); mc.sleep(0.01); ch.port1:close() end)
    helper.run()
    assert.same({ "waiter nil closed", "/L1", "close" }, out)
  end)

  it("and a port moved while its listener sleeps: its waiter gets closed, the new port the close",
     function()
    local ch, carrier = mc.MessageChannel(), mc.MessageChannel()
    local A, out = ch.port2, {}
    A.onmessage = function(e) mc.sleep(0.05); out[#out + 1] = "/L" .. e.data end
    A.onclose = function() out[#out + 1] = "close at moved A" end
    carrier.port2.onmessage = function(e)
      e.ports[1].onclose = function() out[#out + 1] = "close at new A" end
    end
    ch.port1:postMessage(1)
    mc.spawn(function()
      local ev, why = A:receive()
      out[#out + 1] = "waiter " .. tostring(ev) .. " " .. why
    end)
    mc.spawn(function()
      mc.sleep(0.01)
      carrier.port1:postMessage(nil, { A })
      mc.sleep(0.1)
      ch.port1:close()
      carrier.port1:close()
    end)
    helper.run()
    assert.same({ "waiter nil closed", "/L1", "close at new A" }, out)
  end)

  it("at each of many ports whose listeners wait at once", function()
    local N, order = 300, {}
    for i = 1, N do
      local ch = mc.MessageChannel()
      ch.port2.onmessage = function() mc.sleep(0.02); order[#order + 1] = "done" .. i end
      ch.port2.onclose = function() order[#order + 1] = "close" .. i end
      ch.port1:postMessage(i)
      ch.port1:close()
    end
    helper.run()
    assert.equal(2 * N, #order)
    local at = {}
    for k, x in ipairs(order) do at[x] = k end
    for i = 1, N do
      assert.is_true(at["done" .. i] < at["close" .. i], "port " .. i)
    end
  end)

  it("with the ports of other channels going on meanwhile", function()
    local a, b = mc.MessageChannel(), mc.MessageChannel()
    local out = {}
    a.port2.onmessage = function() mc.sleep(0.03); out[#out + 1] = "a done" end
    a.port2.onclose = function() out[#out + 1] = "a close" end
    b.port2.onmessage = function(e) out[#out + 1] = "b" .. e.data end
    b.port2.onclose = function() out[#out + 1] = "b close" end
    a.port1:postMessage(1)
    a.port1:close()
    b.port1:postMessage(1)
    b.port1:close()
    helper.run()
    assert.same({ "b1", "b close", "a done", "a close" }, out)
    assert.same({}, errors)
  end)
end)

describe("regress: receive(0) on a port moved away", function()
  it("returns nil, \"closed\", as every other wait does", function()
    local ch, carrier = mc.MessageChannel(), mc.MessageChannel()
    local moved = ch.port2
    carrier.port1:postMessage(nil, { moved })
    assert.same({ nil, "closed" }, { moved:receive(0) })
    assert.same({ nil, "closed" }, { moved:receive(0.01) })
    assert.same({ nil, "closed" }, { mc.receive({ moved }, 0) })
    carrier.port1:close()
    helper.run()
  end)

  it("still says \"timeout\" for an open port with nothing queued", function()
    local ch = mc.MessageChannel()
    assert.same({ nil, "timeout" }, { ch.port2:receive(0) })
    ch.port1:close()
    assert.same({ nil, "closed" }, { ch.port2:receive(0) })
  end)
end)
