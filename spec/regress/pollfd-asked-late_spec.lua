-- mc.pollfd() asked for after local work came outside any loop (a task
-- spawned, a local post to a listening port, a worker started), or after
-- a blocking call left work, was not readable: the wake-up was made only
-- on a descriptor already asked for, so a host loop that asked for it
-- then and waited on it before its first step slept with that work
-- queued. README mc.pollfd(): readable while something waits for
-- mc.step(), such as work that came while no scheduler loop ran, or work
-- left by a blocking call; not readable when nothing does.
--
-- A state asks for its descriptor once for its life, so each case runs in
-- a worker of its own, whose state never asked before.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WAIT = helper.WAIT  -- seconds: the bound of every wait for a worker

local has_socket = pcall(require, "socket")

-- In the worker: whether the descriptor is readable now, by LuaSocket.
local READABLE = [[
local socket = require "socket"
local function readable()
  local fd = { getfd = function() return mc.pollfd() end }
  local r = socket.select({ fd }, nil, 0)
  return r[1] == fd
end
]]

-- The work each case makes before the descriptor is first asked for,
-- what ends it afterwards (so that the worker's state is idle again), and
-- whether the descriptor is then readable.
local CASES = {
  { "a task spawned", "mc.spawn(function() end)", "" },
  { "work a blocking call left", [[
mc.spawn(function() mc.spawn(function() mc.spawn(function() end) end) end)
mc.sleep(0)  -- one turn: the first task runs, the others are left
]], "" },
  { "nothing (a fresh state)", "", "", "not readable" },
  { "nothing (a state run until idle)", [[
mc.spawn(function() end)
mc.run()
]], "", "not readable" },
  { "a local post to a listening port", [[
local ch = mc.MessageChannel()
ch.port2.onmessage = function() ch.port2:close() end
ch.port1:postMessage("local")
]], "" },
  { "a worker started", [[
local w = mc.Worker("require('messagechannel').parentPort:receive()",
                    { eval = true })
]], "w:postMessage('bye')" },
}

describe("regress: mc.pollfd() asked for after work came outside any loop #threads", function()
  if not has_socket then
    pending(helper.skipped("pollfd-asked-late", "LuaSocket is not installed for " .. _VERSION))
    return
  end

  local workers = {}
  after_each(function()
    for i = 1, #workers do workers[i]:terminate() end
    workers = {}
    mc.run(WAIT)
  end)

  for _, case in ipairs(CASES) do
    local expect = case[4] or "readable"
    it("is " .. expect .. " for " .. case[1] .. ", and clear after the step", function()
      local rec = helper.record_worker(workers, READABLE .. case[2] .. [[
local before = readable()
mc.step()
local after = readable()
]] .. case[3] .. [[

mc.run()
mc.parentPort:postMessage((before and "readable" or "not readable")
                          .. ", then " .. (after and "readable" or "clear"))
]])
      assert.is_true(mc.run(WAIT), "the worker did not end")
      assert.are.same({ expect .. ", then clear" }, rec.messages,
                      table.concat(rec.log, "; "))
      assert.equal(0, rec.code)
    end)
  end
end)
