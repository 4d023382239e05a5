-- Two faults of messagechannel.luv at the edges of luv's own use:
-- - A task or listener that ran uv.run() in default mode could hang for
--   good: when the step that ran it came from the adapter's timer (a task
--   woken from mc.sleep), the adapter's poll handle stayed ref'd with
--   nothing to read, so the nested loop never ended, and nothing else of
--   messagechannel ran. README: such a uv.run() "returns once luv's own
--   handles are done". Each step now runs with the adapter's handles
--   unref'd and stopped, and they are armed again after it.
-- - A program that closed every luv handle (uv.walk, the usual shutdown)
--   closed the adapter's too: stop() then raised "already closing" at
--   every call and start() did nothing, so messagechannel never ran under
--   luv again. The adapter now counts itself stopped then.
-- Each case runs in a child process (a hang ends at its bound).

local helper = require "spec.helper"

local has_luv = pcall(require, "luv")

local function child(body)
  local out = helper.run_child([[
local mc = require "messagechannel"
local uv = require "luv"
local L = require "messagechannel.luv"
]] .. body, 20)
  if out == nil then pending(helper.NO_CHILD) end
  return out
end

describe("regress: messagechannel.luv at the edges", function()
  if not has_luv then
    pending(helper.skipped("luv-adapter-edges", "luv is not installed for " .. _VERSION))
    return
  end

  it("lets a task woken by its timer run uv.run() in default mode, which returns", function()
    local out = child([[
      mc.spawn(function() mc.sleep(0.2) print("sleeper") end)
      mc.spawn(function()
        mc.sleep(0.01)
        local t = uv.new_timer()
        t:start(5, 0, function() t:close() print("inner timer") end)
        uv.run()
        print("nested run returned")
      end)
      L.start()
      uv.run()
      print("end")
    ]])
    if out then
      assert.are.equal("inner timer\nnested run returned\nsleeper\nend\n exit:0\n", out)
    end
  end)

  it("lets a listener woken by a worker run uv.run() in default mode, which returns", function()
    local out = child([[
      local w = mc.Worker([=[
        local mc = require "messagechannel"
        mc.parentPort:postMessage("go")
        mc.parentPort:receive()
      ]=], { eval = true })
      w.onmessage = function()
        local t = uv.new_timer()
        t:start(5, 0, function() t:close() print("inner timer") end)
        uv.run()
        print("nested run returned")
        w:postMessage("stop")
      end
      L.start()
      uv.run()
      print("end")
    ]])
    if out then
      assert.are.equal("inner timer\nnested run returned\nend\n exit:0\n", out)
    end
  end)

  it("counts itself stopped once uv.walk closed its handles, and starts again", function()
    local out = child([[
      L.start()
      local t = uv.new_timer()
      t:start(5, 0, function()
        uv.walk(function(h) if not h:is_closing() then h:close() end end)
      end)
      uv.run()
      print(pcall(L.stop))
      L.start()
      mc.spawn(function() print("task ran") end)
      uv.run()
      L.stop()
      print("end")
    ]])
    if out then assert.are.equal("true\ntask ran\nend\n exit:0\n", out) end
  end)
end)
