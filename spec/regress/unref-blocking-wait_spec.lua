-- A blocking call outside any task (port:receive(), mc.receive, a
-- postMessage waiting for room) at an unref'd port raised "would wait
-- forever: no task, timer or other thread can post to this port" at once,
-- though the partner lived on another thread and posted later: unref()
-- decides whether a port keeps mc.run() going (API.md 6.2) and changes
-- nothing else, and in a worker `mc.parentPort:unref()` alone was enough.
-- A call that blocks on a port now waits for that port's other thread,
-- ref'd or not; it still raises when nothing could post.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: a blocking call at an unref'd port waits for another thread #threads", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  -- A channel whose port2 is in a worker that runs body (port p), both
  -- the worker and port1 unref'd.
  local function unref_pair(body, options)
    local ch = mc.MessageChannel(options)
    local w = start("local mc = require 'messagechannel'\n"
                    .. "local p = mc.workerData\n" .. body,
                    { data = ch.port2, transfer = { ch.port2 } })
    w:unref()
    ch.port1:unref()
    return ch.port1, w
  end

  it("port:receive() gets the worker's message", function()
    local port = unref_pair("mc.sleep(0.05) p:postMessage('late')")
    assert.equal("late", port:receive().data)
    assert.same({}, errors)
    port:close()
  end)

  it("mc.receive gets the worker's message", function()
    local port = unref_pair("mc.sleep(0.05) p:postMessage('late')")
    local ev, from = mc.receive({ port })
    assert.equal("late", ev.data)
    assert.equal(port, from)
    assert.same({}, errors)
    port:close()
  end)

  it("a post waiting for room is sent once the worker reads", function()
    local port = unref_pair("mc.sleep(0.05) p:receive() p:receive()",
                            { capacity = 1 })
    assert.is_true(port:postMessage(1))
    assert.is_true(port:postMessage(2))
    assert.same({}, errors)
    port:close()
  end)

  it("receive() ends with closed when the worker ends", function()
    local port = unref_pair("mc.sleep(0.05)")
    local ev, why = port:receive()
    assert.is_nil(ev)
    assert.equal("closed", why)
    assert.same({}, errors)
  end)

  it("a worker's receive on its unref'd parentPort gets the parent's message", function()
    local w = start([[
      local mc = require "messagechannel"
      mc.parentPort:unref()
      mc.parentPort:postMessage("ready")
      local ev = mc.parentPort:receive()
      mc.parentPort:postMessage("got " .. tostring(ev and ev.data))
    ]])
    local got = {}
    w.onmessage = function(e)
      got[#got + 1] = e.data
      if e.data == "ready" then w:postMessage("hello") end
    end
    helper.run()
    assert.same({ "ready", "got hello" }, got)
    assert.same({}, errors)
  end)

  it("still raises when nothing could post: the partner is in this state", function()
    local ch = mc.MessageChannel()
    ch.port1:unref()
    local ok, err = pcall(ch.port1.receive, ch.port1)
    assert.is_false(ok)
    assert.matches("receive%(%) would wait forever", err)
    ch.port1:close()
  end)

  -- (A review of the fix found these hanging: a partner in transit counted
  -- as another thread's, though a message queued here carries it.)
  for _, unref in ipairs({ false, true }) do
    it("still raises when the partner is in a message queued here"
       .. (unref and ", unref'd" or ""), function()
      local ch, carrier = mc.MessageChannel(), mc.MessageChannel()
      carrier.port1:postMessage(ch.port2, { ch.port2 })
      if unref then ch.port1:unref() end
      local ok, err = pcall(ch.port1.receive, ch.port1)
      assert.is_false(ok)
      assert.matches("receive%(%) would wait forever", err)
      ok, err = pcall(mc.receive, { ch.port1 })
      assert.is_false(ok)
      assert.matches("receive%(%) would wait forever", err)
      ch.port1:close()
      carrier.port1:close()
    end)
  end

  it("a post waiting for room still raises when the partner is in a message queued here", function()
    local ch, carrier = mc.MessageChannel({ capacity = 1 }), mc.MessageChannel()
    ch.port1:postMessage(1)
    carrier.port1:postMessage(ch.port2, { ch.port2 })
    local ok, err = pcall(ch.port1.postMessage, ch.port1, 2)
    assert.is_false(ok)
    assert.matches("postMessage%(%) would wait forever", err)
    ch.port1:close()
    carrier.port1:close()
  end)
end)
