-- A worker's error that no listener takes is raised out of the blocking
-- call that was dispatching (README, A worker's uncaught error). The
-- README named receive and sleep only; mc.receive and a postMessage
-- waiting for room raise it too, and such a post then sends nothing.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WAIT = helper.WAIT  -- seconds: the bound of every wait

describe("regress: a worker's error out of a blocking call #threads", function()
  local workers = {}
  after_each(function()
    helper.terminate_all(workers)
    mc.onerror = helper.noop
    mc.run(WAIT)
    mc.onerror = nil
  end)

  local function failing()
    local w = mc.Worker("error('B failed', 0)", { eval = true })
    workers[#workers + 1] = w
    return w
  end

  it("comes out of mc.receive", function()
    local ch = mc.MessageChannel()
    failing()
    local ok, err = pcall(mc.receive, { ch.port2 }, WAIT)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("^Error in worker %d+: B failed"), err)
    ch.port1:close()
  end)

  it("comes out of a postMessage waiting for room, which sends nothing", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    local reader = mc.Worker([[
      local mc = require "messagechannel"
      local port = mc.workerData.port
      mc.parentPort:receive()  -- read only when told
      local got = {}
      while true do
        local e = port:receive(0)
        if not e then break end
        got[#got + 1] = e.data
      end
      mc.parentPort:postMessage(table.concat(got, ","))
    ]], { eval = true, data = { port = ch.port2 },
          transfer = { ch.port2 } })
    workers[#workers + 1] = reader
    assert.is_true(ch.port1:postMessage(1))
    failing()
    local ok, err = pcall(ch.port1.postMessage, ch.port1, 2,
                          { timeout = WAIT })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("^Error in worker %d+: B failed"), err)
    local got
    reader.onmessage = function(e) got = e.data end
    reader:postMessage("read")
    assert.is_true(mc.run(WAIT))
    assert.are.equal("1", got)
  end)
end)
