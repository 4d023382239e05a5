-- A timeout of math.huge waited forever where no timeout raises "would
-- wait forever" (receive, mc.receive, a postMessage waiting for room,
-- outside any task, with nothing that could ever post or take). An
-- infinite timeout is now the same as none.

local mc = require "messagechannel"

describe("regress: a timeout of math.huge is the same as none", function()
  local function raised(f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok)
    return tostring(err)
  end

  it("port:receive(math.huge)", function()
    local ch = mc.MessageChannel()
    assert.is_truthy(raised(ch.port1.receive, ch.port1, math.huge):find(
      "receive() would wait forever", 1, true))
    ch.port2:postMessage("x")
    assert.equal("x", ch.port1:receive(math.huge).data)
    ch.port1:close()
  end)

  it("mc.receive(ports, math.huge)", function()
    local ch = mc.MessageChannel()
    assert.is_truthy(raised(mc.receive, { ch.port1 }, math.huge):find(
      "receive() would wait forever", 1, true))
    ch.port1:close()
  end)

  it("postMessage with { timeout = math.huge } at a full partner", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    assert.is_true(ch.port1:postMessage(1))
    assert.is_truthy(raised(ch.port1.postMessage, ch.port1, 2,
                            { timeout = math.huge }):find(
      "postMessage() would wait forever", 1, true))
    assert.equal(1, ch.port2:pending())
    ch.port1:close()
  end)

  it("and in a task it waits until a message comes", function()
    local ch, got = mc.MessageChannel(), nil
    mc.spawn(function() got = ch.port1:receive(math.huge).data end)
    mc.spawn(function() ch.port2:postMessage("late") end)
    assert.is_true(mc.run(5))
    assert.equal("late", got)
    ch.port1:close()
  end)
end)
