-- Lifetime of ports (API.md section 3.6 and the GC rule of 3.4): what a
-- port keeps alive, what the collector may take, and that dropped channels
-- give their memory back. Objects are made inside helper functions so no
-- stack slot of the spec keeps them reachable.

local mc = require "messagechannel"
local helper = require "spec.helper"

local collect = helper.collect

describe("garbage collection #gc", function()
  local errors, catch, release = helper.error_hooks(5)

  before_each(function()
    catch()
    collect()
  end)

  after_each(function()
    collect()
    release()
  end)

  describe("a collected port", function()
    it("gives its entangled partner a close event", function()
      local events = {}
      local port2 = (function()
        local ch = mc.MessageChannel()
        ch.port2.onclose = function(e) events[#events + 1] = e end
        return ch.port2
      end)()
      collect()
      assert.equal(1, #events)
      assert.equal("close", events[1].type)
      assert.is_true(rawequal(port2, events[1].target))
      assert.is_false(port2:postMessage("nobody"))
      assert.equal("MessagePort (closed)", tostring(port2))
      assert.same({}, errors)
    end)

    it("wakes a task waiting in receive at its partner with nil, 'closed'", function()
      local res
      local port2 = (function()
        local ch = mc.MessageChannel()
        return ch.port2
      end)()
      mc.spawn(function() res = { port2:receive() } end)
      mc.step()
      collect()
      assert.is_table(res)
      assert.is_nil(res[1])
      assert.equal("closed", res[2])
    end)

    it("leaves its partner's queued messages to be received, then closed", function()
      local port2 = (function()
        local ch = mc.MessageChannel()
        ch.port1:postMessage("before")
        return ch.port2
      end)()
      collect()
      assert.equal("before", port2:receive(0).data)
      local ev, why = port2:receive(0)
      assert.is_nil(ev)
      assert.equal("closed", why)
    end)
  end)

  describe("a port with listeners", function()
    it("stays alive and receives while its partner is reachable", function()
      local got = {}
      local weak = setmetatable({}, { __mode = "v" })
      local port1 = (function()
        local ch = mc.MessageChannel()
        ch.port2.onmessage = function(e) got[#got + 1] = e.data end
        ch.port2:addEventListener("message", function(e) got[#got + 1] = e.data .. "!" end)
        weak.port2 = ch.port2
        return ch.port1
      end)()
      collect()
      assert.is_not_nil(weak.port2)
      assert.is_true(port1:postMessage("hi"))
      collect()
      assert.same({ "hi", "hi!" }, got)
      assert.is_not_nil(weak.port2)
    end)

    it("whose only listener is for close stays alive, and gets the close", function()
      local got = 0
      local weak = setmetatable({}, { __mode = "v" })
      local port1 = (function()
        local ch = mc.MessageChannel()
        ch.port2.onclose = function() got = got + 1 end
        weak.port2 = ch.port2
        return ch.port1
      end)()
      collect()
      assert.is_not_nil(weak.port2)
      assert.equal(0, got)
      port1:close()
      collect()
      assert.equal(1, got)
    end)

    it("that was not started stays alive, and receives once started", function()
      -- the listener itself holds the only way back to the port
      local got = {}
      local weak = setmetatable({}, { __mode = "v" })
      local port1 = (function()
        local ch = mc.MessageChannel()
        local p2 = ch.port2
        p2:addEventListener("message", function(e)
          got[#got + 1] = e.data
          p2:postMessage("ack " .. e.data)
        end)
        weak.port2 = p2
        return ch.port1
      end)()
      port1:postMessage("one")
      collect()
      assert.is_not_nil(weak.port2)
      weak.port2:start()
      collect()
      assert.same({ "one" }, got)
      assert.equal("ack one", port1:receive(0).data)
    end)

    it("gets the messages queued for it even when every reference was dropped", function()
      local got = {}
      ;(function()
        local ch = mc.MessageChannel()
        ch.port2.onmessage = function(e) got[#got + 1] = e.data end
        ch.port1:postMessage("first")
        ch.port1:postMessage("second")
      end)()
      collectgarbage("collect")
      collectgarbage("collect")
      assert.is_true(mc.run(helper.WAIT))
      assert.same({ "first", "second" }, got)
    end)
  end)

  describe("unreachable ports", function()
    it("are collected, listeners or not, even when a listener refers to its port", function()
      local weak = setmetatable({}, { __mode = "v" })
      local calls = 0
      ;(function()
        local plain = mc.MessageChannel()
        weak[1], weak[2] = plain.port1, plain.port2
        local busy = mc.MessageChannel()
        busy.port1.onmessage = function() calls = calls + 1 end
        busy.port2.onmessage = function(e) busy.port2:postMessage(e.data) end
        busy.port2.onclose = function() calls = calls + 1 end
        busy.port1:addEventListener("close", { handleEvent = function() calls = calls + 1 end })
        busy.port1.onmessageerror = function() calls = calls + 1 end
        weak[3], weak[4], weak[5] = busy.port1, busy.port2, busy
        local half = mc.MessageChannel()
        half.port2:addEventListener("message", helper.noop)
        weak[6], weak[7] = half.port1, half.port2
        local held = mc.MessageChannel()
        held.port1:postMessage({ 1, 2, 3 })
        held.port2:postMessage("back")
        weak[8], weak[9] = held.port1, held.port2
      end)()
      collect()
      for i = 1, 9 do
        assert.is_nil(weak[i], "object " .. i .. " was not collected")
      end
      assert.same({}, errors)
    end)

    it("are collected after their queued messages were delivered", function()
      local weak = setmetatable({}, { __mode = "v" })
      local got = {}
      ;(function()
        local ch = mc.MessageChannel()
        ch.port2.onmessage = function(e) got[#got + 1] = e.data end
        ch.port1:postMessage("last words")
        weak[1], weak[2] = ch.port1, ch.port2
      end)()
      collect()
      assert.same({ "last words" }, got)
      assert.is_nil(weak[1])
      assert.is_nil(weak[2])
    end)

    it("are collected after close, with their close events dispatched", function()
      local weak = setmetatable({}, { __mode = "v" })
      local closes = 0
      ;(function()
        local ch = mc.MessageChannel()
        ch.port1.onclose = function() closes = closes + 1 end
        ch.port2.onclose = function() closes = closes + 1 end
        ch.port1:close()
        weak[1], weak[2] = ch.port1, ch.port2
      end)()
      collect()
      assert.equal(2, closes)
      assert.is_nil(weak[1])
      assert.is_nil(weak[2])
    end)
  end)

  describe("a module required again", function()
    -- Test runners such as busted clear package.loaded between files, so
    -- ports of the first load meet the collector after the second load.
    -- A crash would take the whole run down, so this runs in a child.
    local child = [[
      local function load_mc()
        for k in pairs(package.loaded) do
          if k:find("^messagechannel") then package.loaded[k] = nil end
        end
        return require "messagechannel"
      end
      local mc = load_mc()
      local keep = {}
      for i = 1, 50 do
        local ch = mc.MessageChannel()
        ch.port2.onmessage = function() end
        ch.port1:postMessage(i)
        if i % 2 == 0 then keep[#keep + 1] = ch end
        if i % 3 == 0 then ch.port1:close() end
      end
      mc.spawn(function() mc.sleep(0.01) end)
      mc.step()
      local again = load_mc()
      for i = 1, 50 do
        local ch = again.MessageChannel()
        ch.port2.onmessage = function() end
        ch.port1:postMessage(i)
      end
      collectgarbage()
      collectgarbage()
      assert(again.run(60))
      keep[1].port1:postMessage("old")
      assert(again.run(60))
      assert(mc.run(60))
      keep = nil
      collectgarbage()
      collectgarbage()
      io.write("child ok")
    ]]

    it("leaves the ports of the first load safe to use and collect", function()
      local out = helper.run_child(child)
      if not out then
        pending("the interpreter's name is not in arg[-1]")
        return
      end
      assert.truthy(out:find("child ok exit:0", 1, true), out)
    end)
  end)

  describe("memory", function()
    -- Runs make(i) for WARMUP rounds, so one-time growth (pooled
    -- coroutines, table sizes such as the port table's, which grows to
    -- the most ports alive at once, LuaJIT traces) is in the baseline,
    -- then n more rounds. Both run in batches of BATCH rounds with a full
    -- collection after each, so the warm-up reaches the same peak. Returns
    -- the growth of the Lua heap in KB once everything was dropped. 512 KB
    -- over 100,000 channels catches a leak of 5 bytes per channel.
    local WARMUP, BATCH, MARGIN = 20000, 10000, 512
    local function rounds(n, make)
      for i = 1, n do
        make(i)
        if i % BATCH == 0 then
          collectgarbage("collect")
          assert.is_true(mc.run(helper.WAIT))
        end
      end
    end
    -- A table that doubles once (the string table, the port table) may
    -- land in either half; a leak shows in both: the smaller half counts.
    local function growth(n, make)
      rounds(WARMUP, make)
      collect()
      local base = collectgarbage("count")
      rounds(n / 2, make)
      collect()
      local mid = collectgarbage("count")
      rounds(n / 2, make)
      collect()
      local last = collectgarbage("count")
      return 2 * math.min(mid - base, last - mid)
    end

    it("comes back after 100,000 channels were made and dropped #slow", function()
      local kb = growth(100000, function()
        local ch = mc.MessageChannel()
        return ch.port1, ch.port2
      end)
      assert.is_true(kb < MARGIN, ("the Lua heap grew by %.0f KB"):format(kb))
    end)

    it("comes back after 100,000 channels with a listener and a message #slow", function()
      local delivered = 0
      local function count() delivered = delivered + 1 end
      local kb = growth(100000, function(i)
        local ch = mc.MessageChannel()
        ch.port2.onmessage = count
        ch.port1.onclose = helper.noop
        ch.port1:postMessage(i)
      end)
      assert.equal(WARMUP + 100000, delivered)
      assert.is_true(kb < MARGIN, ("the Lua heap grew by %.0f KB"):format(kb))
    end)

    it("comes back after 100,000 channels were closed #slow", function()
      local closes = 0
      local kb = growth(100000, function(i)
        local ch = mc.MessageChannel()
        ch.port2.onmessage = helper.noop
        ch.port2.onclose = function() closes = closes + 1 end
        ch.port1:postMessage({ i, "x" })
        ch.port1:close()
      end)
      assert.equal(WARMUP + 100000, closes)
      assert.is_true(kb < MARGIN, ("the Lua heap grew by %.0f KB"):format(kb))
    end)
  end)
end)
