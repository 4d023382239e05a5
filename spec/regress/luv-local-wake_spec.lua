-- Under messagechannel.luv, local work made outside a scheduler loop (a
-- post to a local port, a spawn) did not keep libuv's loop alive: made in
-- a luv I/O callback that also closed the last handles, or after uv.run()
-- had returned, it was left for a step that never came, and uv.run()
-- returned with it undelivered.
--
-- Each uv.run() runs under an unref'd watchdog timer only so that a bug
-- fails the spec instead of hanging it.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WAIT = helper.WAIT   -- seconds: the bound of every loop

local has_luv, uv = pcall(require, "luv")

describe("regress: messagechannel.luv and local work from outside the scheduler", function()
  if not has_luv then
    pending(helper.skipped("luv-local-wake", "luv is not installed for " .. _VERSION))
    return
  end
  local adapter = require "messagechannel.luv"

  -- luv handles a spec made, closed after it
  local errors, handle, handles =
    helper.luv_specs(uv, adapter, 5, before_each, after_each)

  -- uv.run() under a watchdog; true when it returned by itself.
  local function uv_run()
    return helper.uv_run(uv, WAIT)
  end

  -- Lets the watchdog's close complete before any new work: a closing
  -- handle alone would keep the next uv.run() going for one iteration.
  local function settle()
    uv.run("nowait")
    assert.is_false(uv.loop_alive(), "a luv handle keeps the loop alive")
  end

  -- Garbage of earlier specs is collected first and the collector stopped
  -- meanwhile: a port finalized during the spec queues a close, work that
  -- mc.timeout() would rightly report (as in spec/17).
  local function quiet_collector()
    helper.collect()
    collectgarbage("stop")
    finally(function() collectgarbage("restart") end)
  end

  -- A local channel whose port2 logs what it gets.
  local function logged(log)
    local ch = mc.MessageChannel()
    ch.port2.onmessage = function(e)
      log[#log + 1] = e.data
      ch.port2:close()
    end
    return ch
  end

  it("delivers a post made in a pipe's read callback that closes the last handles", function()
    adapter.start()
    local log = {}
    local ch = logged(log)
    local fds = assert(uv.pipe({ nonblock = true }, { nonblock = true }))
    local reader = handle(uv.new_pipe())
    local writer = handle(uv.new_pipe())
    assert(reader:open(fds.read))
    assert(writer:open(fds.write))
    reader:read_start(function(err, data)
      assert(not err, err)
      reader:close()
      writer:close()
      ch.port1:postMessage("read " .. tostring(data))
    end)
    writer:write("x")
    assert.is_true(uv_run(), "uv.run() did not return")
    assert.same({ "read x" }, log)
    assert.is_false(mc.step())
    assert.same({}, errors)
  end)

  it("delivers a post made in a TCP read callback that closes the last handles", function()
    adapter.start()
    local log = {}
    local ch = logged(log)
    local server = handle(uv.new_tcp())
    assert(server:bind("127.0.0.1", 0))
    local port = server:getsockname().port
    assert(server:listen(8, function(err)
      assert(not err, err)
      local conn = handle(uv.new_tcp())
      assert(server:accept(conn))
      conn:read_start(function(rerr, data)
        assert(not rerr, rerr)
        for _, h in ipairs(handles) do
          if not h:is_closing() then h:close() end
        end
        ch.port1:postMessage("read " .. tostring(data))
      end)
    end))
    local client = handle(uv.new_tcp())
    client:connect("127.0.0.1", port, function(err)
      assert(not err, err)
      client:write("y")
    end)
    assert.is_true(uv_run(), "uv.run() did not return")
    assert.same({ "read y" }, log)
    assert.is_false(mc.step())
    assert.same({}, errors)
  end)

  it("runs a task spawned after uv.run() returned in the next uv.run()", function()
    quiet_collector()
    adapter.start()
    assert.is_true(uv_run(), "the first uv.run() did not return")
    settle()
    local ran = false
    mc.spawn(function() ran = true end)
    assert.is_true(uv_run(), "the second uv.run() did not return")
    assert.is_true(ran)
    assert.is_nil(mc.timeout())
    assert.same({}, errors)
  end)

  it("delivers a post made after uv.run() returned in the next uv.run()", function()
    quiet_collector()
    adapter.start()
    assert.is_true(uv_run(), "the first uv.run() did not return")
    settle()
    local log = {}
    local ch = logged(log)
    ch.port1:postMessage("later")
    assert.is_true(uv_run(), "the second uv.run() did not return")
    assert.same({ "later" }, log)
    assert.is_nil(mc.timeout())
    assert.same({}, errors)
  end)
end)
