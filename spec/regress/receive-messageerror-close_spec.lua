-- API.md 3.4: close is always the last event a port sees; 3.5: a message
-- that cannot be decoded at the receiving port becomes a messageerror.
-- When receive (or mc.receive) met such a message, it queued the
-- messageerror behind the run queue's tokens, and the port's close, queued
-- before, was dispatched first.

local mc = require "messagechannel"
local helper = require "spec.helper"

-- A port holding one message its state cannot decode (a metatable
-- registered only in the worker that sent it), then the close: the
-- worker posts, closes and ends before this returns.
local function port_with_bad_message(n)
  local ch = mc.MessageChannel()
  local w = mc.Worker([[
    local mc = require "messagechannel"
    local Unknown = {}
    mc.register("receive-messageerror-close: unknown", Unknown)
    for _ = 1, ]] .. (n or 1) .. [[ do
      mc.workerData:postMessage(setmetatable({}, Unknown))
    end
    mc.workerData:close()
  ]], { eval = true, data = ch.port1, transfer = { ch.port1 } })
  local code
  w.onexit = function(ev) code = ev.code end
  assert.is_true(mc.run(helper.WAIT))  -- no listener yet: nothing dispatched
  assert.equal(0, code)
  assert.equal(n or 1, ch.port2:pending())
  return ch.port2
end

-- Listens for messageerror and close at port, logging into log; the
-- messageerror listener runs during(ev) first when given.
local function listen(port, log, during)
  port:addEventListener("messageerror", function(ev)
    if during then during(ev) end
    log[#log + 1] = "messageerror"
    assert.matches("DataCloneError:", ev.error, 1, true)
  end)
  port:addEventListener("close", function() log[#log + 1] = "close" end)
end

describe("regress: a messageerror receive meets", function()
  -- receive(port, got) receives at port, its results into got (by the
  -- end of mc.run()).
  local function closes_after(receive)
    local port, log, got = port_with_bad_message(), {}, {}
    listen(port, log)
    receive(port, got)
    assert.is_true(mc.run(helper.WAIT))
    assert.same({ nil, "closed" }, got)
    assert.same({ "messageerror", "close" }, log)
  end

  it("comes before the port's close, outside a task", function()
    closes_after(function(port, got) got[1], got[2] = port:receive() end)
  end)

  it("comes before the port's close with mc.receive", function()
    closes_after(function(port, got) got[1], got[2] = mc.receive({ port }) end)
  end)

  it("comes before the port's close inside a task", function()
    closes_after(function(port, got)
      mc.spawn(function() got[1], got[2] = port:receive() end)
    end)
  end)

  it("comes before the close when mc.onerror takes it, one per message", function()
    local port, log = port_with_bad_message(2), {}
    port:addEventListener("close", function() log[#log + 1] = "close" end)
    local saved = mc.onerror
    mc.onerror = function(err)
      log[#log + 1] = err:match("DataCloneError:") and "onerror" or err
    end
    local ok, err = pcall(function()
      assert.same({ nil, "closed" }, { port:receive() })
      assert.is_true(mc.run(helper.WAIT))
    end)
    mc.onerror = saved
    assert(ok, err)
    assert.same({ "onerror", "onerror", "close" }, log)
  end)

  it("lets the close go only once its listener's wait ended", function()
    local port, log = port_with_bad_message(), {}
    local other = mc.MessageChannel()
    listen(port, log, function()
      log[#log + 1] = "waiting"
      assert.equal("later", other.port2:receive().data)
    end)
    mc.spawn(function()
      port:receive()
      log[#log + 1] = "received"
      mc.sleep(0)
      mc.sleep(0)
      other.port1:postMessage("later")
    end)
    assert.is_true(mc.run(helper.WAIT))
    assert.same({ "received", "waiting", "messageerror", "close" }, log)
  end)
end)
