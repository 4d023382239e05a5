-- Under messagechannel.luv, a listener or task that ran luv's loop itself
-- (uv.run("nowait"), as a game loop's frame does) ran the adapter's
-- callbacks inside the step that called it: they called mc.step(), which
-- raised "cannot be called while the scheduler is running", and luv ends
-- the process on an error in a callback. The README lists only mc.onerror's
-- own errors and a worker's error nobody takes as ending a luv process.
-- Each case runs in a child process, so the old failure fails the case.

local helper = require "spec.helper"

local has_luv = pcall(require, "luv")

local PRELUDE = [[
local mc = require "messagechannel"
local uv = require "luv"
require("messagechannel.luv").start()
local got = {}
-- a listener that runs luv's loop, as a game loop's frame does
local ch = mc.MessageChannel()
ch.port2.onmessage = function(e)
  got[#got + 1] = e.data
  uv.run("nowait")
  if e.data == 2 then ch.port2:close() end
end
]]

local function child(body)
  local out = helper.run_child(PRELUDE .. body, 2 * helper.WAIT)
  if out == nil then pending(helper.NO_CHILD) end
  return out
end

describe("regress: luv's loop run from inside messagechannel", function()
  if not has_luv then
    pending(helper.skipped("luv-nested-run", "luv is not installed for " .. _VERSION))
    return
  end

  it("from a listener under mc.run()", function()
    local out = child([[
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      assert(mc.run(60))
      print(table.concat(got, " "))
    ]])
    if out then assert.are.equal("1 2\n exit:0\n", out) end
  end)

  it("from a listener under uv.run(), which goes on", function()
    local out = child([[
      ch.port1:postMessage(1)
      local t = uv.new_timer()
      t:start(10, 0, function() t:close(); ch.port1:postMessage(2) end)
      uv.run()
      print(table.concat(got, " "))
    ]])
    if out then assert.are.equal("1 2\n exit:0\n", out) end
  end)

  it("in default mode from a listener, which returns", function()
    local out = child([[
      ch.port2.onmessage = function(e)
        got[#got + 1] = e.data
        local t = uv.new_timer()
        t:start(5, 0, function() t:close() end)
        uv.run()  -- returns once its timer is done
        if e.data == 2 then ch.port2:close() end
      end
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      uv.run()
      print(table.concat(got, " "))
    ]])
    if out then assert.are.equal("1 2\n exit:0\n", out) end
  end)

  it("from a task that sleeps between frames", function()
    local out = child([[
      ch.port2:close()
      mc.spawn(function()
        for i = 1, 3 do
          got[#got + 1] = i
          uv.run("nowait")
          mc.sleep(0.001)
        end
      end)
      uv.run()
      print(table.concat(got, " "))
    ]])
    if out then assert.are.equal("1 2 3\n exit:0\n", out) end
  end)
end)
