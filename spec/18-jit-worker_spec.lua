-- mc.Worker(path, {jit = true}) (API.md 11 by issue: LuaJIT workers that
-- keep the compiler on): the option's check on every version, the
-- compiler's state inside the worker on LuaJIT, and terminate() stopping
-- such a worker where it calls into the module. Nothing waits on time:
-- every wait is a message or an exit under mc.run with a long timeout.

local mc = require "messagechannel"
local helper = require "spec.helper"

local is_luajit = type(rawget(_G, "jit")) == "table"

local run = helper.run  -- until idle, or fails after helper.WAIT s

-- Starts a worker from source and records its messages and its exit.
local function start(body, options)
  options = options or {}
  options.eval = true
  local w = mc.Worker('local mc = require "messagechannel"\n' .. body,
                      options)
  local got = { messages = {}, code = nil, errors = {} }
  w.onmessage = function(e) got.messages[#got.messages + 1] = e.data end
  w.onerror = function(e) got.errors[#got.errors + 1] = tostring(e.error) end
  w.onexit = function(e) got.code = e.code end
  return w, got
end

local REPORT = [[
local j = rawget(_G, "jit")
if type(j) == "table" then
  mc.parentPort:postMessage((j.status()))
else
  mc.parentPort:postMessage("no jit")
end
]]

describe("mc.Worker options.jit #threads", function()
  it("must be a boolean or nil", function()
    for _, bad in ipairs { 1, "yes", {} } do
      local ok, err = pcall(mc.Worker, "return", { eval = true, jit = bad })
      assert.is_false(ok)
      assert.truthy(tostring(err):find(
        "bad argument #2 to 'Worker' (options.jit must be a boolean, got "
        .. type(bad) .. ")", 1, true), err)
    end
  end)

  it("leaves the compiler off by default and on with jit = true", function()
    local _, off = start(REPORT)
    local _, on = start(REPORT, { jit = true })
    local _, no = start(REPORT, { jit = false })
    run()
    assert.are.equal(0, off.code)
    assert.are.equal(0, on.code)
    assert.are.equal(0, no.code)
    if is_luajit then
      assert.are.same({ false }, off.messages)
      assert.are.same({ true }, on.messages)
      assert.are.same({ false }, no.messages)
    else
      assert.are.same({ "no jit" }, off.messages)
      assert.are.same({ "no jit" }, on.messages)
    end
  end)

  it("is stopped by terminate() in a compiled loop that posts", function()
    local w, got = start([[
local port, x = mc.parentPort, 0
port:postMessage("started")
while true do
  x = x + 1
  if x % 1000 == 0 then port:postMessage(x) end
end
]], { jit = true })
    w:addEventListener("message", function() w:terminate() end,
                       { once = true })
    run()
    assert.are.equal(1, got.code)
    assert.are.same({}, got.errors)
    assert.are.equal("started", got.messages[1])
  end)

  it("is stopped by terminate() in a compiled loop that reads mc.now()",
     function()
    local w, got = start([[
mc.parentPort:postMessage("started")
local t = 0
while true do t = t + mc.now() end
]], { jit = true })
    w.onmessage = function(e)
      got.messages[#got.messages + 1] = e.data
      w:terminate()
    end
    run()
    assert.are.equal(1, got.code)
    assert.are.same({ "started" }, got.messages)
    assert.are.same({}, got.errors)
  end)

  it("raises the termination again when a compiled loop catches it",
     function()
    local w, got = start([[
local port = mc.parentPort
port:postMessage("started")
local caught = 0
while true do
  local ok = pcall(port.postMessage, port, "tick")
  if not ok then caught = caught + 1 end
end
]], { jit = true })
    w:addEventListener("message", function() w:terminate() end,
                       { once = true })
    run()
    assert.are.equal(1, got.code)
    assert.are.same({}, got.errors)
  end)
end)
