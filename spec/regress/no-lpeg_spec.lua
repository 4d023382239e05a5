-- install.lua required LPeg at load time, so `require "messagechannel"`
-- failed on a machine without LPeg although only mc.install uses it, and
-- every worker loaded it. LPeg is now loaded at the first call of
-- mc.install, which says how to get it when it is missing.

local mc = require "messagechannel"
local helper = require "spec.helper"

local has = helper.has

-- Drops every package.cpath entry where LPeg would be found, so that
-- require "lpeg" fails as on a machine without it.
local without_lpeg = [[
  local kept = {}
  for template in package.cpath:gmatch("[^;]+") do
    local f = io.open((template:gsub("%?", "lpeg")), "rb")
    if f then f:close() else kept[#kept + 1] = template end
  end
  package.cpath = table.concat(kept, ";")
  package.loaded.lpeg, package.preload.lpeg = nil, nil
  io.write("lpeg loads: ", tostring((pcall(require, "lpeg"))), "\n")
]]

local function child(source)
  local out = helper.run_child(source)
  if not out then pending("the interpreter's name is not in arg[-1]") end
  return out
end

describe("regress: LPeg is loaded only by mc.install", function()
  it("lets require \"messagechannel\" work without LPeg", function()
    local out = child(without_lpeg .. [[
      local mc = require "messagechannel"
      local ch = mc.MessageChannel()
      ch.port2.onmessage = function(e) io.write("delivered ", e.data, "\n") end
      ch.port1:postMessage("hello")
      mc.run()
      io.write("done\n")
    ]])
    if not out then return end
    assert.truthy(has(out, "lpeg loads: false\n"), out)
    assert.truthy(has(out, "delivered hello\ndone\n exit:0"), out)
  end)

  it("makes mc.install raise an error that says how to install LPeg", function()
    local out = child(without_lpeg .. [[
      local mc = require "messagechannel"
      local env = {}
      local function call()
        local r = mc.install(env)  -- not a tail call: its line is the position
        return r
      end
      for i = 1, 2 do  -- the second call fails the same way
        local ok, err = pcall(call)
        io.write("call ", i, ": ", tostring(ok), " ", tostring(err), "\n")
      end
      io.write("env untouched: ", tostring(next(env) == nil), "\n")
    ]])
    if not out then return end
    assert.truthy(has(out, "lpeg loads: false\n"), out)
    assert.truthy(has(out, "env untouched: true\n exit:0"), out)
    for i = 1, 2 do
      local line = out:match("call " .. i .. ": ([^\n]*)")
      assert.truthy(line, out)
      assert.truthy(line:find("^false "), line)
      assert.truthy(has(line, "mc.install needs LPeg"), line)
      assert.truthy(has(line, "lua-lpeg"), line)
      assert.truthy(has(line, "luarocks install lpeg"), line)
      assert.truthy(has(line, "module 'lpeg' not found"), line)
      -- raised at the caller of mc.install, as its other errors are
      assert.truthy(line:find("^false [^ ]*:%d+: mc%.install needs"), line)
    end
  end)

  it("is not loaded until mc.install is first called", function()
    local out = child([[
      local mc = require "messagechannel"
      io.write("after require: ", tostring(package.loaded.lpeg ~= nil), "\n")
      local env = {}
      io.write("install: ", tostring(mc.install(env)), " ",
               tostring(env.MessageChannel == mc.MessageChannel), "\n")
      io.write("after install: ", tostring(package.loaded.lpeg ~= nil), "\n")
    ]])
    if not out then return end
    assert.truthy(has(out, "after require: false\n"), out)
    assert.truthy(has(out, "install: true true\n"), out)
    assert.truthy(has(out, "after install: true\n exit:0"), out)
  end)

  it("is not loaded by a worker that does not call mc.install #threads", function()
    local w = mc.Worker([[
      local mc = require "messagechannel"
      mc.parentPort:postMessage(package.loaded.lpeg ~= nil)
      mc.parentPort:close()
    ]], { eval = true })
    local got = {}
    w.onmessage = function(e) got[#got + 1] = e.data end
    assert.is_true(mc.run(helper.WAIT))
    assert.same({ false }, got)
  end)
end)
