-- A worker's lifecycle (API.md 7, as Node.js worker_threads has it):
-- os.exit inside a worker, the exit event last, a worker's error nobody
-- takes, the Worker's addEventListener/removeEventListener, threadId and
-- ref/unref/hasRef.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WAIT = helper.WAIT  -- seconds: the bound of every run

local workers = {}

local function worker(body, options)
  options = options or {}
  options.eval = true
  local w = mc.Worker('local mc = require "messagechannel"\n' .. body, options)
  workers[#workers + 1] = w
  return w
end

-- A log of a worker's events, in order.
local function logged(w)
  local log = {}
  w.onmessage = function(e) log[#log + 1] = "message " .. tostring(e.data) end
  w.onerror = function(e) log[#log + 1] = "error " .. tostring(e.error) end
  w.onexit = function(e) log[#log + 1] = "exit " .. tostring(e.code) end
  return log
end

local run = helper.run  -- until idle, or fails after helper.WAIT s

describe("worker lifecycle #threads", function()
  local default_onerror = mc.onerror
  after_each(function()
    mc.onerror = default_onerror
    helper.terminate_all(workers)
    mc.onerror = helper.noop
    mc.run(WAIT)
    mc.onerror = default_onerror
  end)

  describe("os.exit in a worker", function()
    local cases = {
      { "os.exit()", 0 }, { "os.exit(true)", 0 }, { "os.exit(false)", 1 },
      { "os.exit(0)", 0 }, { "os.exit(5)", 5 }, { "os.exit(3, true)", 3 },
    }
    for _, c in ipairs(cases) do
      it(("ends that worker only, %s giving code %d"):format(c[1], c[2]), function()
        local log = logged(worker("mc.parentPort:postMessage('before')\n"
                                  .. c[1] .. "\nmc.parentPort:postMessage('after')"))
        run()
        assert.same({ "message before", "exit " .. c[2] }, log)
      end)
    end

    it("cannot be caught by pcall, and runs no more of the worker", function()
      local log = logged(worker([[
        local ok = pcall(os.exit, 4)
        mc.parentPort:postMessage("after pcall " .. tostring(ok))
      ]]))
      run()
      assert.same({ "exit 4" }, log)
    end)

    it("closes the worker's ports at their partners; other workers go on", function()
      local ch = mc.MessageChannel()
      local closed = false
      ch.port1.onclose = function() closed = true end
      local other = logged(worker("mc.sleep(0.05) mc.parentPort:postMessage('alive')"))
      local w = worker([[
        local port = mc.parentPort:receive().ports[1]
        os.exit(2)
      ]])
      local log = logged(w)
      w:postMessage(nil, { ch.port2 })
      run()
      assert.same({ "exit 2" }, log)
      assert.is_true(closed)
      assert.same({ "message alive", "exit 0" }, other)
    end)

    it("raises a bad argument error for a code that is no number or boolean", function()
      local log = logged(worker([[
        local ok, err = pcall(os.exit, "x")
        mc.parentPort:postMessage(tostring(ok) .. " " .. tostring(err))
      ]]))
      run()
      assert.equal(2, #log)
      assert.truthy(log[1]:find("false", 1, true)
                    and log[1]:find("bad argument #1 to 'exit'", 1, true), log[1])
      assert.equal("exit 0", log[2])
    end)
  end)

  describe("the exit event", function()
    it("comes last: messages held for want of a message listener are dropped", function()
      local w = worker("mc.parentPort:postMessage('held')")
      local log = {}
      w.onexit = function(e)
        log[#log + 1] = "exit " .. e.code
        w.onmessage = function(ev) log[#log + 1] = "after exit " .. tostring(ev.data) end
      end
      run()
      assert.same({ "exit 0" }, log)
    end)

    it("comes after every message a listener was there for", function()
      local log = logged(worker([[
        for i = 1, 3 do mc.parentPort:postMessage(i) end
      ]]))
      run()
      assert.same({ "message 1", "message 2", "message 3", "exit 0" }, log)
    end)
  end)

  describe("a worker's error nobody takes", function()
    it("goes to mc.onerror when the program set one", function()
      local got = {}
      mc.onerror = function(err) got[#got + 1] = tostring(err) end
      local w = worker("error('boom', 0)")
      local code
      w.onexit = function(e) code = e.code end
      run()
      assert.equal(1, #got)
      assert.truthy(got[1]:find("boom", 1, true), got[1])
      assert.equal(1, code)
    end)

    it("is raised out of mc.run() with the default mc.onerror", function()
      local w = worker("error('boom', 0)")
      local ok, err = pcall(mc.run, WAIT)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("^Error in worker " .. w.threadId .. ": boom"),
                    tostring(err))
      assert.truthy(tostring(err):find("stack traceback", 1, true), tostring(err))
    end)

    it("is not raised when w.onerror or an error listener takes it", function()
      local w1 = worker("error('one', 0)")
      local w2 = worker("error('two', 0)")
      local got = {}
      w1.onerror = function(e) got[#got + 1] = e.error end
      w2:addEventListener("error", function(e) got[#got + 1] = e.error end)
      run()
      table.sort(got)
      assert.same({ "one", "two" }, got)
    end)

    it("lets mc.run() return when the worker fails before reading anything", function()
      local w = worker("this is not Lua")
      local code, err
      w.onerror = function(e) err = e.error end
      w.onexit = function(e) code = e.code end
      run()
      assert.equal(1, code)
      assert.truthy(tostring(err):find("worker", 1, true), tostring(err))
    end)
  end)

  describe("the Worker's listeners", function()
    it("addEventListener('message') receives without onmessage, the Worker as target", function()
      local w = worker("mc.parentPort:postMessage('hi')")
      local got = {}
      local function l(e) got[#got + 1] = tostring(e.data) .. " " .. tostring(e.target == w) end
      w:addEventListener("message", l)
      w:addEventListener("message", l)  -- the same listener once
      run()
      assert.same({ "hi true" }, got)
    end)

    it("takes error and exit listeners, beside the handler fields, in order", function()
      local w = worker("error('bad', 0)")
      local log = {}
      w:addEventListener("error", function(e) log[#log + 1] = "error listener " .. e.error end)
      w.onerror = function() log[#log + 1] = "onerror" end
      w:addEventListener("exit", function(e) log[#log + 1] = "exit listener " .. e.code end)
      w.onexit = function() log[#log + 1] = "onexit" end
      run()
      assert.same({ "error listener bad", "onerror", "exit listener 1", "onexit" }, log)
    end)

    it("removeEventListener takes them off", function()
      local w = worker("mc.parentPort:postMessage('hi')")
      local log = {}
      local function m(e) log[#log + 1] = "message " .. e.data end
      local function x() log[#log + 1] = "exit" end
      w:addEventListener("message", m)
      w:addEventListener("exit", x)
      w:removeEventListener("exit", x)
      w:removeEventListener("message", m)
      w:removeEventListener("message", function() end)  -- unknown: ignored
      w.onmessage = function() log[#log + 1] = "onmessage" end
      run()
      assert.same({ "onmessage" }, log)
    end)

    it("raises the usual errors for a bad listener or type", function()
      local w = worker("")
      assert.has_error(function() w:addEventListener(1, print) end)
      assert.has_error(function() w:addEventListener("message", 1) end)
      assert.has_error(function() w.addEventListener({}, "message", print) end)
      run()
    end)
  end)

  describe("threadId", function()
    it("is an integer never reused, kept after exit, and the worker's mc.threadId", function()
      assert.equal(0, mc.threadId)
      local w1 = worker("mc.parentPort:postMessage(mc.threadId)")
      local w2 = worker("mc.parentPort:postMessage(mc.threadId)")
      local ids = {}
      w1.onmessage = function(e) ids[1] = e.data end
      w2.onmessage = function(e) ids[2] = e.data end
      run()
      assert.equal(w1.threadId, ids[1])
      assert.equal(w2.threadId, ids[2])
      assert.is_true(w1.threadId > 0 and w2.threadId > w1.threadId)
      assert.equal(math.floor(w1.threadId), w1.threadId)
      local w3 = worker("")
      assert.is_true(w3.threadId > w2.threadId)
      run()
      assert.equal(ids[1], w1.threadId)
    end)
  end)

  describe("ref, unref, hasRef", function()
    it("an unref'd worker does not keep mc.run() going; ref() again does", function()
      local w = worker("mc.parentPort:receive()")
      w.onmessage = helper.noop  -- its port does not keep it going either
      assert.is_true(w:hasRef())
      w:unref()
      assert.is_false(w:hasRef())
      assert.is_true(mc.run(WAIT))  -- returns though the worker lives
      w:ref()
      assert.is_true(w:hasRef())
      local ended = false
      w.onexit = function() ended = true end
      w:postMessage("go")
      run()
      assert.is_true(ended)
    end)

    it("an unref'd worker's events still come while something else runs", function()
      local w = worker("mc.parentPort:postMessage('hi')")
      w:unref()
      local got
      w.onmessage = function(e) got = e.data end
      -- Something else: a task in timed sleeps until the message comes
      -- (one fixed sleep would race the worker's start).
      mc.spawn(function()
        while got == nil do mc.sleep(0.01) end
      end)
      run()
      assert.equal("hi", got)
    end)
  end)
end)

-- In a child process: not a thread spec, so that the ThreadSanitizer run
-- (whose preload the child's shell would get) leaves it out.
describe("worker lifecycle: the exit status", function()
  it("makes a script end with a status other than 0 when a worker fails unhandled",
     function()
    local out = helper.run_child([[
      local mc = require "messagechannel"
      mc.Worker("error('boom')", { eval = true })
      mc.run()
    ]])
    if not out then return pending("the interpreter's name is not in arg[-1]") end
    assert.truthy(out:find("Error in worker %d+: worker:1: boom"), out)
    assert.falsy(out:find("exit:0%s*$"), out)
  end)
end)
