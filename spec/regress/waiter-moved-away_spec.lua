-- regress: a task waiting in receive or mc.receive on a port that was then
-- transferred away waited for ever (mc.receive: its count of open ports
-- never reached 0), and messages of a port that came from another thread
-- were taken for older than those already here. Found by the helper that
-- wrote spec/17; API.md 6.3 and 11.

local mc = require "messagechannel"
local helper = require "spec.helper"

local function run()
  assert.is_true(mc.run(helper.WAIT), "mc.run did not become idle")
end

describe("regress: waiting on a port that moves away", function()
  it("ends port:receive in a task with nil, 'closed'", function()
    local a, carrier = mc.MessageChannel(), mc.MessageChannel()
    local res
    mc.spawn(function() res = { a.port2:receive() } end)
    mc.step()
    assert.is_true(carrier.port1:postMessage(nil, { a.port2 }))
    run()
    assert.are.same({ nil, "closed" }, res)
  end)

  it("counts it closed for mc.receive, in a task and outside", function()
    local a, b, carrier = mc.MessageChannel(), mc.MessageChannel(),
      mc.MessageChannel()
    local res
    mc.spawn(function() res = { mc.receive({ a.port2, b.port2 }) } end)
    mc.step()
    assert.is_true(carrier.port1:postMessage(nil, { a.port2 }))
    b.port1:close()
    run()
    assert.are.same({ nil, "closed" }, res)
    -- outside a task: the wait ends as soon as both are gone
    local c, d = mc.MessageChannel(), mc.MessageChannel()
    mc.spawn(function()
      assert.is_true(carrier.port1:postMessage(nil, { c.port2 }))
      d.port1:close()
    end)
    assert.are.same({ nil, "closed" },
                    { mc.receive({ c.port2, d.port2 }, 30) })
  end)

  it("keeps waiting on the ports still here", function()
    local a, b, carrier = mc.MessageChannel(), mc.MessageChannel(),
      mc.MessageChannel()
    local res
    mc.spawn(function() res = { mc.receive({ a.port2, b.port2 }) } end)
    mc.step()
    assert.is_true(carrier.port1:postMessage(nil, { a.port2 }))
    mc.step()
    assert.is_nil(res)
    b.port1:postMessage("still here")
    run()
    assert.are.equal("still here", res[1].data)
    assert.are.equal(b.port2, res[2])
  end)
end)

describe("regress: arrival order of a port that comes from a thread #threads",
         function()
  it("puts its messages after those already here", function()
    local b = mc.MessageChannel()
    local w = mc.Worker([[
local mc = require "messagechannel"
local x = mc.MessageChannel()
x.port1:postMessage("old, in the moved port")
mc.parentPort:receive()
mc.parentPort:postMessage("port", { x.port2 })
x.port1:postMessage("later, in the moved port")
x.port1:close()
]], { eval = true })
    local moved
    w.onmessage = function(e) moved = e.ports[1] end
    b.port1:postMessage("b1")
    w:postMessage("go")
    run()
    local got = {}
    for i = 1, 3 do got[i] = mc.receive({ b.port2, moved }, 0).data end
    assert.are.same({ "b1", "old, in the moved port",
                      "later, in the moved port" }, got)
  end)
end)

describe("regress: errors of the new constructors point at their caller",
         function()
  it("for mc.receive, MessageChannel and BroadcastChannel", function()
    local here = debug.getinfo(1, "S").short_src
    local cases = {
      function() mc.receive({ mc.MessageChannel().port2 }, -1) end,
      function() mc.MessageChannel({ capacity = 0 }) end,
      function() mc.MessageChannel.new({ capacity = 0 }) end,
      function() mc.BroadcastChannel(1) end,
      function() mc.BroadcastChannel.new(1) end,
    }
    for i, f in ipairs(cases) do
      local line = debug.getinfo(f, "S").linedefined
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.truthy(tostring(err):find(here .. ":" .. line .. ":", 1, true),
                    "case " .. i .. ": " .. tostring(err))
    end
  end)
end)
