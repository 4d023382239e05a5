-- Random calls (API.md 9: no input crashes the process, leaks, or leaves a
-- port half-changed): a fixed-seed sequence of calls to every public
-- function, method and metamethod of the module, each with arguments
-- drawn from a pool of hostile and valid values (ports, Buffers, Workers,
-- tables with cycles, transfer lists of live objects). Every call must
-- return or raise; afterwards the scheduler becomes idle and a new channel
-- still delivers exactly once. In a child process, so that a crash fails
-- this spec and not the run; `make check` runs it under ASan+UBSan.
-- MC_RANDOM_CALLS sets the number of calls (200,000 by default).

local helper = require "spec.helper"

local CALLS = tonumber(os.getenv("MC_RANDOM_CALLS") or "") or 200000

describe("random calls", function()
  it(("return or raise, and leave ports coherent (%d calls)"):format(CALLS), function()
    local out = helper.run_child(([[
      local mc = require "messagechannel"
      local g = require("spec.helper").prng(20261130)
      local CALLS = %d
      local function pick(t) return t[g.int(1, #t)] end

      -- the values arguments are drawn from; objects are renewed now and
      -- then, so that closed and detached ones mix with live ones
      local ch = mc.MessageChannel()
      local workers = {}
      for i = 1, 2 do
        workers[i] = mc.Worker("local mc = require 'messagechannel'\n"
          .. "mc.parentPort.onmessage = function(e) "
          .. "if e.data == 'bye' then mc.parentPort:close() end end",
          { eval = true })
      end
      local cyc = {}
      cyc.self = cyc
      local pool
      local function renew()
        local c = mc.MessageChannel()
        pool = { nil, false, true, 0, -1, 0.5, 1e308, -0.0, 2^53, "",
          "message", "x\0y", {}, cyc, { 1, 2, 3 }, { transfer = {} },
          type, io.stdout, coroutine.create(function() end),
          mc.Buffer(3), mc.Buffer("abc"), c.port1, c.port2, ch.port1,
          ch.port2, workers[1], workers[2], { c.port1 }, { mc.Buffer(1) },
          { transfer = { c.port2 } }, { once = true }, "message", "close",
          "messageerror", "error", "exit", function() end,
          setmetatable({}, { __call = function() end }),
          { handleEvent = function() end }, mc.serialize({ 1, "a" }),
          "\1\2\3", string.rep("\255", 9) }
      end
      renew()
      local function arg() return pool[g.int(1, #pool + 1)] end

      -- what is called: name -> function(a, b, c)
      local fns = {}
      for _, k in ipairs({ "structuredClone", "serialize", "deserialize",
                           "register", "Buffer", "MessageChannel", "spawn",
                           "now", "timeout", "pollfd", "dirty", "getfd",
                           "events", "install" }) do
        fns[#fns + 1] = mc[k]
      end
      fns[#fns + 1] = function() return mc.step() end
      for _, obj in ipairs({ ch.port1, mc.Buffer(2), workers[1] }) do
        local mt = debug.getmetatable(obj)
        for _, f in pairs(mt) do
          if type(f) == "function" then fns[#fns + 1] = f end
        end
      end
      for _, name in ipairs({ "postMessage", "start", "close", "ref", "unref",
                              "hasRef", "addEventListener",
                              "removeEventListener", "dispatchEvent" }) do
        fns[#fns + 1] = function(a, b, c) return ch.port1[name](a, b, c) end
      end
      for _, name in ipairs({ "postMessage", "addEventListener",
                              "removeEventListener", "ref", "unref",
                              "hasRef" }) do
        fns[#fns + 1] = function(a, b, c)
          return workers[1][name](a, b, c)
        end
      end
      fns[#fns + 1] = function(a, b) return pick({ ch.port1, ch.port2 })[
        pick({ "onmessage", "onclose", "onmessageerror" })] end
      fns[#fns + 1] = function(a) ch.port2.onmessage = a end
      fns[#fns + 1] = function(a) workers[1].onmessage = a end
      fns[#fns + 1] = function(a, b) return tostring(a), #tostring(b) end

      mc.onerror = function() end
      local raised = 0
      for i = 1, CALLS do
        local ok = pcall(pick(fns), arg(), arg(), arg())
        if not ok then raised = raised + 1 end
        if i %% 1000 == 0 then pcall(mc.step) end
        if i %% 5000 == 0 then renew() collectgarbage() end
      end
      for i = 1, 2 do pcall(workers[i].postMessage, workers[i], "bye") end
      for i = 1, 2 do workers[i]:terminate() end
      assert(mc.run(60), "the scheduler did not become idle")
      -- a new channel still delivers, once
      local fresh, got = mc.MessageChannel(), 0
      fresh.port2.onmessage = function(e) got = got + e.data end
      assert(fresh.port1:postMessage(1))
      assert(mc.run(60))
      assert(got == 1, "delivered " .. got .. " times")
      io.write("ok ", CALLS, " ", raised, "\n")
    ]]):format(CALLS))
    if not out then return pending("the interpreter's name is not in arg[-1]") end
    assert.truthy(out:find("^ok %d+ %d+%s+exit:0"), out)
  end)
end)
