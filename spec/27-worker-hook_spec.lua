-- The count hook through which terminate() stops a worker's busy Lua loop
-- (README, w:terminate()), and a worker that removes it with
-- debug.sethook() to run its Lua code at full speed: terminate() then
-- stops it where it calls into the module (a post, mc.now(), a wait in
-- its scheduler), on every version. Nothing waits on time: every wait is
-- a message or an exit under mc.run with a long timeout.

local mc = require "messagechannel"

local TIMEOUT = 30

local function run()
  assert.is_true(mc.run(TIMEOUT), "mc.run did not become idle")
end

-- Starts a worker from source and records its messages and its exit.
local function start(body)
  local w = mc.Worker('local mc = require "messagechannel"\n' .. body,
                      { eval = true })
  local got = { messages = {}, code = nil, errors = {} }
  w.onmessage = function(e) got.messages[#got.messages + 1] = e.data end
  w.onerror = function(e) got.errors[#got.errors + 1] = tostring(e.error) end
  w.onexit = function(e) got.code = e.code end
  return w, got
end

-- Terminates w at its first message, after recording it.
local function terminate_at_first(w, got)
  w.onmessage = function(e)
    got.messages[#got.messages + 1] = e.data
    if #got.messages == 1 then w:terminate() end
  end
end

describe("a worker's count hook #threads", function()
  it("is set in the worker, in its listeners too, and not in the main "
     .. "thread", function()
    local w, got = start([[
local port = mc.parentPort
port:postMessage(debug.gethook() ~= nil)
port.onmessage = function()
  port:postMessage(debug.gethook() ~= nil)
  port.onmessage = nil
end
]])
    w:postMessage("go")
    assert.is_nil(debug.gethook())
    run()
    assert.are.equal(0, got.code)
    assert.are.same({}, got.errors)
    assert.are.same({ true, true }, got.messages)
  end)

  it("stops a busy loop that calls nothing", function()
    local w, got = start([[
mc.parentPort:postMessage("started")
local x = 0
while true do x = x + 1 end
]])
    terminate_at_first(w, got)
    run()
    assert.are.equal(1, got.code)
    assert.are.same({}, got.errors)
    assert.are.same({ "started" }, got.messages)
  end)
end)

describe("a worker without its count hook (debug.sethook()) #threads",
         function()
  it("runs its listeners without it", function()
    local w, got = start([[
debug.sethook()
local port = mc.parentPort
port.onmessage = function()
  port:postMessage(debug.gethook() == nil)
  port.onmessage = nil
end
]])
    w:postMessage("go")
    run()
    assert.are.equal(0, got.code)
    assert.are.same({}, got.errors)
    assert.are.same({ true }, got.messages)
  end)

  it("is stopped by terminate() in a loop that reads mc.now()", function()
    local w, got = start([[
debug.sethook()
mc.parentPort:postMessage("started")
local t = 0
while true do t = t + mc.now() end
]])
    terminate_at_first(w, got)
    run()
    assert.are.equal(1, got.code)
    assert.are.same({}, got.errors)
    assert.are.same({ "started" }, got.messages)
  end)

  it("is stopped by terminate() in a loop that posts, even one that "
     .. "catches the error", function()
    local w, got = start([[
debug.sethook()
local port = mc.parentPort
port:postMessage("started")
local caught = 0
while true do
  local ok = pcall(port.postMessage, port, "tick")
  if not ok then caught = caught + 1 end
end
]])
    terminate_at_first(w, got)
    run()
    assert.are.equal(1, got.code)
    assert.are.same({}, got.errors)
    assert.are.equal("started", got.messages[1])
  end)

  it("is stopped by terminate() while it waits in its scheduler", function()
    local w, got = start([[
debug.sethook()
local port = mc.parentPort
port.onmessage = function() end
port:postMessage("started")
]])
    terminate_at_first(w, got)
    run()
    assert.are.equal(1, got.code)
    assert.are.same({}, got.errors)
    assert.are.same({ "started" }, got.messages)
  end)

  it("is stopped by terminate() in a listener's loop that reads mc.now()",
     function()
    local w, got = start([[
debug.sethook()
local port = mc.parentPort
port.onmessage = function()
  port:postMessage("started")
  local t = 0
  while true do t = t + mc.now() end
end
]])
    terminate_at_first(w, got)
    w:postMessage("go")
    run()
    assert.are.equal(1, got.code)
    assert.are.same({}, got.errors)
    assert.are.same({ "started" }, got.messages)
  end)
end)
