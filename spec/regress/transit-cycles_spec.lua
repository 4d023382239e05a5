-- Two messages that each carry a port of the other's channel owned each
-- other through C references (a queued message holds the end it carries,
-- an end holds its queued messages): both channels and messages leaked
-- for good, and the ports they carried never closed. A post that makes an
-- end in transit carried, through other ends in transit, by a message
-- queued at itself now frees that circle: nobody can ever read it.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: circles of ports in transit", function()
  local function watch(ch, log, key)
    ch.port2.onmessage = helper.noop
    ch.port2.onclose = function() log[key] = true end
  end

  it("closes what a two-message circle carries", function()
    local closes = {}
    local z = mc.MessageChannel()
    watch(z, closes, "z")
    do
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      assert.is_true(a.port1:postMessage(nil, { b.port1, z.port1 }))
      assert.is_true(b.port2:postMessage(nil, { a.port2 }))
    end
    helper.collect()
    assert.is_true(closes.z)
  end)

  it("closes what a longer circle carries, whatever post closes it", function()
    for n = 2, 6 do
      local closes = {}
      local z = mc.MessageChannel()
      watch(z, closes, "z")
      do
        local chans = {}
        for i = 1, n do chans[i] = mc.MessageChannel() end
        -- chans[i].port1's end waits in the queue of chans[i+1].port1
        chans[1].port2:postMessage(nil, { z.port1 })
        for i = 1, n - 1 do
          chans[i + 1].port2:postMessage(nil, { chans[i].port1 })
        end
        chans[1].port2:postMessage(nil, { chans[n].port1 })
      end
      helper.collect()
      assert.is_true(closes.z, "circle of " .. n)
    end
  end)

  it("keeps nothing of 20,000 circles", function()
    local closes, n = {}, 20000
    local zs = {}
    for i = 1, n do
      zs[i] = mc.MessageChannel()
      watch(zs[i], closes, i)
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      a.port1:postMessage(nil, { b.port1, zs[i].port1 })
      b.port2:postMessage(nil, { a.port2 })
    end
    helper.collect()
    local count = 0
    for _ in pairs(closes) do count = count + 1 end
    assert.equal(n, count)
  end)

  it("leaves a chain that is not a circle deliverable", function()
    local a, b = mc.MessageChannel(), mc.MessageChannel()
    local got
    assert.is_true(a.port1:postMessage(nil, { b.port1 }))
    assert.is_true(b.port2:postMessage("through", {}))
    a.port2.onmessage = function(e)
      e.ports[1].onmessage = function(e2) got = e2.data end
    end
    helper.run()
    assert.equal("through", got)
  end)

  it("frees circles closed from two threads at once #threads", function()
    local rounds = 200
    local closes = {}
    for i = 1, rounds do
      local z = mc.MessageChannel()
      watch(z, closes, i)
      local a, b, done = mc.MessageChannel(), mc.MessageChannel(),
                         mc.MessageChannel()
      -- a worker posts b.port1 into a.port2's queue while this thread posts
      -- a.port2 into b.port1's queue
      local w = mc.Worker([[
        local d = require("messagechannel").workerData
        d.a:postMessage(nil, { d.b, d.z })
        d.done:receive()
      ]], { eval = true, data = { a = a.port1, b = b.port1, z = z.port1,
                                  done = done.port1 },
            transfer = { a.port1, b.port1, z.port1, done.port1 } })
      assert.is_true(b.port2:postMessage(nil, { a.port2 }))
      done.port2:postMessage(true)
      w.onerror = function(e) error(e.error) end
    end
    assert.is_true(mc.run(60))
    helper.collect()
    local count = 0
    for _ in pairs(closes) do count = count + 1 end
    assert.equal(rounds, count)
  end)
end)
