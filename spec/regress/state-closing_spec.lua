-- A state that closes runs its finalizers, newest object first; the
-- module's context is made when it is first required, so the finalizer of
-- an object made before that runs after the context's, which let go of the
-- state's hub. Such a finalizer that posted, received, ran the scheduler,
-- asked for mc.pollfd() or started a worker crashed the process. It now
-- gets "messagechannel: the Lua state is closing".
--
-- And a state that closes runs no finalizer of an object made in another
-- finalizer (5.4 registers none, 5.1 to 5.3 free it unrun). A worker
-- started there by a finalizer of a worker's state was never told to
-- stop: its thread ran until the process ended, at 100% of a core when
-- busy. The context now stops it.
--
-- Each case runs in a child process, as a crash is the failure. Objects
-- made by finalizers as a state closes keep what they hold (Lua runs no
-- finalizer of theirs, README): the children run without LeakSanitizer's
-- exit check, which the sanitizer builds of `make check` would otherwise
-- fail them on.

local helper = require "spec.helper"

local function child(source)
  local out = helper.run_child(source, 2 * helper.WAIT, "ASAN_OPTIONS=detect_leaks=0")
  if out == nil then pending(helper.NO_CHILD) end
  return out
end


describe("regress: the module called while its state closes", function()
  local CALLS = {
    worker = 'mc.Worker("return", { eval = true })',
    post = "local ch = mc.MessageChannel(); ch.port1:postMessage(1)",
    run = "mc.run(0)",
    sleep = "mc.sleep(0)",
    broadcast = 'mc.BroadcastChannel("closing"):postMessage(1)',
    pollfd = "mc.pollfd()",
  }
  for name, call in pairs(CALLS) do
    it("raises instead of crashing: " .. name, function()
      local out = child(helper.ON_GC .. [[
        KEEP = on_gc(function()
          local mc = require "messagechannel"
          local ok, err = pcall(function() ]] .. call .. [[ end)
          io.write(tostring(ok), " ", tostring(err), "\n")
        end)
        local mc = require "messagechannel"  -- its context is newer
      ]])
      -- a Lua function that raises it again may add its position
      if out then
        assert.truthy(out:match("^false [^\n]-messagechannel: the Lua "
                                .. "state is closing\n exit:0\n$"), out)
      end
    end)
  end
end)

describe("regress: workers started by finalizers as a state closes", function()
  local function threads()
    local f = io.open("/proc/self/status")
    if not f then return nil end
    f:close()
    return true
  end

  for _, kind in ipairs({ "waiting", "busy" }) do
    it("are stopped (" .. kind .. ") #threads", function()
      if not threads() then pending("no /proc/self/status here") return end
      local inner = kind == "busy" and "while true do end"
        or "local mc = require 'messagechannel' "
           .. "mc.parentPort.onmessage = function() end"
      local out = child([[
        local mc = require "messagechannel"
        local source = ]] .. ("%q"):format(helper.ON_GC) .. [[ .. [=[
          local mc = require "messagechannel"
          KEEP = on_gc(function()
            mc.Worker(]] .. ("%q"):format(inner) .. [[, { eval = true })
          end)
        ]=]
        for _ = 1, 4 do mc.Worker(source, { eval = true }) end
        assert(mc.run(60))
        -- the inner workers were told to stop as their parents closed
        local n
        for _ = 1, 200 do
          local f = io.open("/proc/self/status")
          n = tonumber(f:read("*a"):match("Threads:%s+(%d+)"))
          f:close()
          if n == 1 then break end
          os.execute("sleep 0.05")
        end
        print("threads " .. n)
      ]])
      if out then assert.are.equal("threads 1\n exit:0\n", out) end
    end)
  end
end)
