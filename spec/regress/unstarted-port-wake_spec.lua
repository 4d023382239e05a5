-- Messages from another thread to a port its owner has not started (to
-- take them with receive(), say). A change that stopped telling the
-- owner's thread of messages queued behind one it cannot dispatch saved
-- wake-ups, but a host loop that takes one message per wake-up with
-- receive(0) then stalled: mc.pollfd() no longer became readable for them,
-- against API.md 10 (readable while news from another thread, a message,
-- waits for mc.step()). Each message from another thread is news, at a
-- port not started too; a close behind held messages, and one at an empty
-- port, reach receive(). Readability is read on mc.pollfd() with the main
-- thread outside the scheduler while the worker posts. Every wait is
-- bounded by helper.WAIT; nothing depends on speed.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WAIT = helper.WAIT

local has_socket, socket = pcall(require, "socket")

-- The worker: posts 1 on the port, then "first" to its parent; then, for
-- each number n its parent posts, n more messages on the port, counting
-- on; "close" closes the port, "bye" ends it.
local BODY = [[
  local port = mc.workerData.port
  local i = 1
  port:postMessage(i)
  mc.parentPort:postMessage("first")
  while true do
    local e = mc.parentPort:receive()
    if e.data == "bye" then break end
    if e.data == "close" then
      port:close()
    else
      for _ = 1, e.data do
        i = i + 1
        port:postMessage(i)
      end
    end
  end
]]

describe("regress: posts to a port its thread has not started #threads", function()
  if not has_socket then
    pending(helper.skipped("unstarted-port-wake",
                           "LuaSocket is not installed for " .. _VERSION))
    return
  end

  local errors, _, workers = helper.worker_specs(5, before_each, after_each)

  local fd_only = { getfd = function() return mc.pollfd() end }

  -- Whether news waits for mc.step() now.
  local function readable()
    local r = socket.select({ fd_only }, nil, 0)
    return r[1] == fd_only
  end

  -- Steps until cond() holds, waiting between steps as a host loop does.
  local function step_until(cond)
    local deadline = mc.now() + WAIT
    while not cond() do
      local left = deadline - mc.now()
      assert(left > 0, "the condition did not hold within " .. WAIT .. " s")
      if mc.timeout() ~= 0 then
        socket.select({ fd_only }, nil, left)
      end
      mc.step()
    end
  end

  -- Waits outside the scheduler (no step takes news) until the port holds
  -- n messages.
  local function wait_pending(port, n)
    local deadline = mc.now() + WAIT
    while port:pending() < n do
      assert(mc.now() < deadline, "the port holds " .. port:pending()
             .. " messages, not " .. n .. ", after " .. WAIT .. " s")
      socket.sleep(0.001)
    end
  end

  -- Steps while news waits (a few at most), then asserts none does.
  local function settle()
    for _ = 1, 3 do
      if not readable() then break end
      mc.step()
    end
    assert.is_false(readable(), "news is still waiting after the steps")
  end

  -- Ends the worker of rec, and asserts it ended well and nothing raised.
  local function finish(rec)
    rec.worker:postMessage("bye")
    assert.is_true(mc.run(WAIT), "mc.run did not become idle")
    assert.equal(0, rec.code)
    assert.same({}, errors)
  end

  -- A worker posting to ch.port1 (transferred to it), and its record;
  -- returns once ch.port2 has the first message and the step that took
  -- that news left nothing to take.
  local function start(ch)
    local rec = helper.record_worker(workers, BODY,
      { data = { port = ch.port1 }, transfer = { ch.port1 } })
    step_until(function() return rec.messages[1] ~= nil end)
    assert.same({ "first" }, rec.messages)
    assert.equal(1, ch.port2:pending())
    settle()
    return rec
  end

  it("makes mc.pollfd() readable for each message, for a loop taking one per wake-up", function()
    local ch = mc.MessageChannel()
    local rec = start(ch)   -- 1 is queued, and the step looked at the port
    rec.worker:postMessage(1)
    wait_pending(ch.port2, 2)
    assert.is_true(socket.select({ fd_only }, nil, WAIT)[1] == fd_only,
                   "not readable for a message queued behind another")
    mc.step()
    assert.is_false(readable(), "still readable after the step")
    local e = ch.port2:receive(0)
    assert.equal(1, e and e.data)
    for i = 3, 6 do   -- one message per wake-up, one receive(0) for each
      rec.worker:postMessage(1)
      assert.is_true(socket.select({ fd_only }, nil, WAIT)[1] == fd_only,
                     "message " .. i .. " did not make mc.pollfd() readable")
      mc.step()
      e = ch.port2:receive(0)
      assert.equal(i - 1, e and e.data)
    end
    assert.equal(1, ch.port2:pending())

    -- started, the port dispatches what is held, in order
    local got = {}
    ch.port2.onmessage = function(ev) got[#got + 1] = ev.data end
    step_until(function() return #got == 1 end)
    assert.same({ 6 }, got)
    finish(rec)
  end)

  it("gives receive() the messages and then the close queued meanwhile", function()
    local ch = mc.MessageChannel()
    local rec = start(ch)
    rec.worker:postMessage(50)
    rec.worker:postMessage("close")
    wait_pending(ch.port2, 51)
    for i = 1, 51 do
      local e, why = ch.port2:receive(WAIT)
      assert.is_table(e, why)
      assert.equal(i, e.data)
    end
    assert.same({ nil, "closed" }, { ch.port2:receive(WAIT) })
    finish(rec)
  end)

  it("wakes its thread for a close at an empty port it has not started", function()
    local ch = mc.MessageChannel()
    local rec = start(ch)
    assert.equal(1, ch.port2:receive(WAIT).data)   -- empty again, looked at
    settle()
    rec.worker:postMessage("close")
    assert.is_true(socket.select({ fd_only }, nil, WAIT)[1] == fd_only,
                   "the close did not wake the port's thread")
    assert.same({ nil, "closed" }, { ch.port2:receive(WAIT) })
    finish(rec)
  end)
end)
