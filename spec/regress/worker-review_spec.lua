-- Faults of the Worker object found by a review against API.md 2, 7 and 9:
-- its port-event handler fields took any value (the port got a wrapper,
-- which always passed the port's check, and the worker's messages then
-- failed at dispatch); a listener added to it and removed again stayed
-- referenced for the Worker's life (and a `once` listener that ran);
-- an error value of nil or false, or one the parent cannot decode, reached
-- onerror as the clone format's bytes; os.exit(2.5) in a worker named an
-- internal function.

local mc = require "messagechannel"
local helper = require "spec.helper"

local ECHO = [[
local mc = require "messagechannel"
mc.parentPort.onmessage = function(e)
  mc.parentPort:postMessage(e.data)
  if e.data == "stop" then mc.parentPort:close() end
end]]

describe("regress: the Worker object #threads", function()
  -- a failed spec leaves no worker running
  local errors, start = helper.worker_specs(5, before_each, after_each)

  describe("handler fields", function()
    for _, k in ipairs({ "onmessage", "onmessageerror", "onerror", "onexit" }) do
      it(k .. " raises TypeError for a value that is not callable, and keeps its handler",
         function()
        local w = start(ECHO)
        local got = {}
        local h = function(e) got[#got + 1] = e.data end
        w[k] = h
        for _, bad in ipairs({ 42, "x", {}, true }) do
          local err = helper.error_of(function() w[k] = bad end)
          assert.equal(k .. " must be a function, a callable value or nil (got "
                       .. type(bad) .. ")", err:match("TypeError: (.*)$"), err)
          assert.equal(h, w[k])
        end
        w.onmessage = function(e)
          got[#got + 1] = e.data
          if e.data == "hi" then w:postMessage("stop") end
        end
        w:postMessage("hi")
        helper.run()
        assert.same({ "hi", "stop" }, got)
        assert.same({}, errors)
      end)
    end

    it("onmessage takes a callable table, with the Worker as the target", function()
      local w = start(ECHO)
      local got = {}
      w.onmessage = setmetatable({}, { __call = function(_, e)
        got[#got + 1] = { e.data, e.target == w, e.currentTarget == w }
        if e.data == "hi" then w:postMessage("stop") end
      end })
      w:postMessage("hi")
      helper.run()
      assert.same({ { "hi", true, true }, { "stop", true, true } }, got)
    end)
  end)

  describe("listeners", function()
    local function kept(body)
      collectgarbage(); collectgarbage()
      local before = collectgarbage("count")
      body()
      collectgarbage(); collectgarbage()
      return collectgarbage("count") - before
    end

    it("are let go once removed", function()
      local w = start(ECHO)
      local kb = kept(function()
        for _ = 1, 20000 do
          local l = function() end
          w:addEventListener("message", l)
          w:removeEventListener("message", l)
          w:addEventListener("messageerror", l, { once = true })
          w:removeEventListener("messageerror", l)
        end
      end)
      assert.is_true(kb < 500, kb .. " KB kept")  -- about 4 MB before
      w:postMessage("stop")
      helper.run()
    end)

    it("are let go once a `once` listener ran, and a listener added twice hears once", function()
      local w = start(ECHO)
      local got, twice = 0, 0
      local function t2(e) if e.data == "stop" then twice = twice + 1 end end
      w:addEventListener("message", t2)
      w:addEventListener("message", t2, { once = true })
      local kb = kept(function()
        local n = 0
        local function one()
          n = n + 1
          w:addEventListener("message", function()
            got = got + 1
            if n < 3000 then one() else w:postMessage("stop") end
          end, { once = true })
          w:postMessage(n)
        end
        one()
        helper.run()
      end)
      assert.equal(3000, got)
      assert.equal(1, twice)
      assert.is_true(kb < 500, kb .. " KB kept")
    end)

    it("removed from inside their own call hear nothing more", function()
      local w = start(ECHO)
      local got = {}
      local function l(e)
        got[#got + 1] = e.data
        w:removeEventListener("message", l)
        w:postMessage("stop")
      end
      w:addEventListener("message", l)
      w:addEventListener("message", helper.noop)
      w:postMessage(1)
      helper.run()
      assert.same({ 1 }, got)
    end)
  end)

  describe("error values", function()
    local function error_of_worker(source)
      local w = start(source)
      local events = {}
      w.onerror = function(e) events[#events + 1] = { e.error } end
      helper.run()
      assert.equal(1, #events)
      return events[1][1]
    end

    it("nil and false reach onerror as themselves", function()
      assert.is_nil(error_of_worker("error(nil)"))
      assert.is_false(error_of_worker("error(false)"))
    end)

    it("one the parent cannot decode arrives as the worker's tostring of it", function()
      local e = error_of_worker([[
        local mc = require "messagechannel"
        local mt = mc.register("regress.OnlyInWorker", {
          __tostring = function(t) return "only in worker: " .. t.msg end })
        error(setmetatable({ msg = "x" }, mt))]])
      assert.equal("only in worker: x", e)
    end)

    it("the text of one the parent cannot decode keeps every byte", function()
      local e = error_of_worker([[
        local mc = require "messagechannel"
        local mt = mc.register("regress.OnlyInWorker2", {
          __tostring = function() return "x\0y" end })
        error(setmetatable({}, mt))]])
      assert.equal("x\0y", e)
    end)

    it("a table still arrives as its clone", function()
      assert.same({ code = 7 }, error_of_worker("error({ code = 7 })"))
    end)

    it("false with no error listener leaves mc.run as Error in worker N: false", function()
      mc.onerror = nil  -- the default (after_each puts the catcher's back)
      local w = start("error(false)")
      local ok, err = pcall(mc.run, helper.WAIT)
      assert.is_false(ok)
      assert.truthy(helper.has(err, "Error in worker " .. w.threadId .. ": false"), err)
      helper.run()
    end)

    it("a table with no error listener is named once, not once per thread", function()
      mc.onerror = nil
      local w = start("error({ code = 5 })")
      local ok, err = pcall(mc.run, helper.WAIT)
      assert.is_false(ok)
      local head, rest = err:match("^(Error in worker %d+: table: [^\n]*)\n(.*)$")
      assert.truthy(head, err)
      -- the worker's own text of the table (another address) is not
      -- repeated as the traceback's first line
      assert.is_nil(rest:match("^table: "), err)
      assert.truthy(helper.has(err, "Error in worker " .. w.threadId .. ": "), err)
      helper.run()
    end)
  end)

  -- API.md 7: codes as os.exit on Lua 5.4, on every version (5.1 and
  -- 5.2's os.exit would truncate 2.5 to 2)
  for _, bad in ipairs { "2.5", "0/0", "1/0", "2^63" } do
    it("os.exit(" .. bad .. ") raises as os.exit on 5.4 does", function()
      local w = start("os.exit(" .. bad .. ")")
      local err, code
      w.onerror = function(e) err = e.error end
      w.onexit = function(e) code = e.code end
      helper.run()
      assert.equal("worker:1: bad argument #1 to 'exit' (number has no "
                   .. "integer representation)", err)
      assert.equal(1, code)
    end)
  end
end)
