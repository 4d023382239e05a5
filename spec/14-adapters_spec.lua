-- The event-loop adapters of API.md section 10 against the real libraries:
-- messagechannel.luv (.start() then uv.run()) and messagechannel.cqueues
-- (.attach(cq) then cq:loop()). A Lua version where the library does not
-- load skips its specs with a pending line and a note on stderr.
--
-- No spec waits on speed: each loop runs under a bound (an unref'd luv
-- watchdog timer, cq:loop(WAIT)) only so that a bug fails the spec instead
-- of hanging the suite. The one timing assertion is the issue's own: a
-- listener in cqueues.sleep(0.2) resumes after at least 0.2 s.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WAIT = helper.WAIT      -- seconds: the bound of every loop
local EPS = 1e-6     -- slack for float rounding in mc.now() differences

local has_luv, uv = pcall(require, "luv")
local has_cqueues, cqueues = pcall(require, "cqueues")
local has_socket, socket = pcall(require, "socket")

local function skip(why) pending(helper.skipped("14-adapters", why)) end

local function source(body)
  return 'local mc = require "messagechannel"\n' .. body
end

-- Workers of the running spec, terminated after it.
local workers = {}

-- A worker on Lua source and the record of what reaches the parent
-- (helper.record_worker); `log` is a shared log to append to as well.
local function eval(body, options, log)
  return helper.record_worker(workers, body, options, log)
end

-- A worker that stays alive until the parent posts to it, then ends.
local STAY = "mc.parentPort:receive()"

local run = helper.run  -- until idle, or fails after helper.WAIT s

-- A worker's ch.port1 has a message listener (unref'd or not), and its
-- partner ch.port2 is held by the main thread; nothing else keeps the
-- worker's messagechannel going. The worker runs `kind`'s adapter ("luv"
-- or "cqueues") and reports what its port got and how the loop ended.
-- Once the loop runs, the main thread posts "ping" to a ref'd port: only
-- the port keeps the loop alive until then. (A live worker always keeps
-- its parent going, so the rule is checked in the worker.)
local function port_in_worker(kind, unref)
  local held, report
  local w = mc.Worker(source(([[
    local KIND, UNREF, WAIT = %q, %s, %d
    local ch = mc.MessageChannel()
    local got = {}
    ch.port1.onmessage = function(e)
      got[#got + 1] = e.data
      ch.port1:close()
    end
    ch.port1.onclose = function(e) got[#got + 1] = e.type end
    if UNREF then ch.port1:unref() end
    mc.parentPort:postMessage({ port = ch.port2 }, { ch.port2 })
    mc.parentPort:receive()   -- the main thread holds ch.port2 now
    local function in_loop() mc.parentPort:postMessage("in loop") end
    local ended
    if KIND == "luv" then
      local uv = require "luv"
      local adapter = require "messagechannel.luv"
      adapter.start()
      local t = uv.new_timer()
      t:start(0, 0, function()
        t:close()
        in_loop()
      end)
      local dog = uv.new_timer()
      dog:start(WAIT * 1000, 0, function()
        ended = "watchdog"
        uv.stop()
      end)
      dog:unref()
      uv.run()
      dog:close()
      adapter.stop()
      uv.run("nowait")
      ended = ended or "returned"
    else
      local cqueues = require "cqueues"
      local adapter = require "messagechannel.cqueues"
      local cq = cqueues.new()
      adapter.attach(cq)
      cq:wrap(in_loop)
      local ok, err = cq:loop(WAIT)
      ended = not ok and tostring(err) or cq:empty() and "returned" or "timeout"
    end
    mc.parentPort:postMessage({ got = got, ended = ended })
  ]]):format(kind, tostring(unref), WAIT)), { eval = true })
  workers[#workers + 1] = w
  local code
  w.onmessage = function(e)
    if type(e.data) == "table" and e.data.port then
      held = e.data.port
      w:postMessage("held")
    elseif e.data == "in loop" then
      -- a little later, so that the worker's loop is waiting by then (the
      -- spec passes either way; the delay only makes it sharper)
      if not unref then
        mc.spawn(function()
          mc.sleep(0.05)
          held:postMessage("ping")
        end)
      end
    else
      report = e.data
    end
  end
  w.onerror = function(e) report = { error = tostring(e.error) } end
  w.onexit = function(e) code = e.code end
  run()
  return report, code
end

-- Whether mc.pollfd() is readable within `timeout` seconds, seen with
-- LuaSocket alone (not through any loop).
local fd_only = { getfd = function() return mc.pollfd() end }
local function readable(timeout)
  return socket.select({ fd_only }, nil, timeout)[1] == fd_only
end

describe("event-loop adapters", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(function()
    helper.terminate_all(workers)
    release()
  end)

  describe("messagechannel.luv", function()
    if not has_luv then
      skip("luv is not installed for " .. _VERSION)
      return
    end
    local loaded, adapter = pcall(require, "messagechannel.luv")

    -- luv handles a spec made, closed after it.
    local handles = {}
    local function handle(h)
      handles[#handles + 1] = h
      return h
    end
    local function timer(ms, repeat_ms, cb)
      local t = handle(uv.new_timer())
      t:start(ms, repeat_ms, cb)
      return t
    end

    before_each(function()
      assert(loaded, adapter)
    end)
    after_each(function()
      if loaded then adapter.stop() end
      for i = #handles, 1, -1 do
        if not handles[i]:is_closing() then handles[i]:close() end
        handles[i] = nil
      end
      uv.run("nowait")   -- lets the closes complete
    end)

    -- uv.run() under a watchdog; true when it returned by itself.
    local function uv_run()
      return helper.uv_run(uv, WAIT)
    end

    it("lets uv.run() return at once when both are idle", function()
      adapter.start()
      run()
      assert.is_true(uv_run(), "uv.run() did not return")
    end)

    it("delivers a worker's messages; uv.run() returns once it has ended #threads", function()
      adapter.start()
      local rec = eval([[
        for i = 1, 10 do mc.parentPort:postMessage(i) end
      ]])
      assert.is_true(uv_run(), "uv.run() did not return")
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, rec.messages)
      assert.equal(0, rec.code)
      assert.equal("exit 0", rec.log[#rec.log])
      assert.is_false(mc.step())
      assert.same({}, errors)
    end)

    it("runs mc.sleep in spawned tasks while the other tasks run", function()
      adapter.start()
      local log, t0, t1 = {}, nil, nil
      mc.spawn(function()
        t0 = mc.now()
        mc.sleep(0.05)
        t1 = mc.now()
        log[#log + 1] = "slept"
      end)
      mc.spawn(function() log[#log + 1] = "other" end)
      assert.is_true(uv_run(), "uv.run() did not return")
      assert.same({ "other", "slept" }, log)
      assert.is_true(t1 - t0 >= 0.05 - EPS)
    end)

    it("runs receive in tasks, with and without a timeout", function()
      adapter.start()
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      local got, timed
      mc.spawn(function() got = a.port2:receive() end)
      mc.spawn(function() timed = helper.pack(b.port2:receive(0.03)) end)
      mc.spawn(function()
        mc.sleep(0.01)
        a.port1:postMessage("late")
      end)
      assert.is_true(uv_run(), "uv.run() did not return")
      assert.equal("late", got and got.data)
      assert.is_nil(timed[1])
      assert.equal("timeout", timed[2])
      assert.same({}, errors)
    end)

    it("mixes with the user's luv timers; uv.run() returns when both are idle #threads", function()
      adapter.start()
      local log, ticks = {}, 0
      local rec = eval([[
        local e = mc.parentPort:receive()
        mc.parentPort:postMessage("done " .. e.data)
      ]], nil, log)
      local w = rec.worker
      timer(20, 0, function()
        log[#log + 1] = "timer"
        w:postMessage("go")
      end)
      local ticker
      ticker = timer(5, 5, function()
        ticks = ticks + 1
        if ticks == 3 then ticker:stop() end
      end)
      assert.is_true(uv_run(), "uv.run() did not return")
      assert.same({ "timer", "message done go", "exit 0" }, log)
      assert.equal(3, ticks)
      assert.same({}, errors)
    end)

    it("keeps uv.run() going for a worker started in a luv callback #threads", function()
      adapter.start()
      local log = {}
      timer(20, 0, function()
        log[#log + 1] = "timer"
        eval([[mc.parentPort:postMessage("from the worker")]], nil, log)
      end)
      assert.is_true(uv_run(), "uv.run() did not return")
      assert.same({ "timer", "message from the worker", "exit 0" }, log)
    end)

    it("delivers a local postMessage made in a luv callback before the next luv event", function()
      adapter.start()
      local ch = mc.MessageChannel()
      local got, seen_at_tick2 = {}, nil
      ch.port2.onmessage = function(e) got[#got + 1] = e.data end
      local ticks = 0
      local ticker
      ticker = timer(10, 10, function()
        ticks = ticks + 1
        if ticks == 1 then
          ch.port1:postMessage("from luv")
        else
          seen_at_tick2 = #got
          ticker:stop()
        end
      end)
      assert.is_true(uv_run(), "uv.run() did not return")
      assert.equal(1, seen_at_tick2)
      assert.same({ "from luv" }, got)
    end)

    it("delivers a local post made in the last luv callback before uv.run() returns", function()
      adapter.start()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port2.onmessage = function(e) got[#got + 1] = e.data end
      timer(10, 0, function() ch.port1:postMessage("last") end)
      assert.is_true(uv_run(), "uv.run() did not return")
      assert.same({ "last" }, got)
    end)

    local detaches = "detaches with .stop(): uv.run() returns while a worker lives, "
      .. "its messages wait for mc.run() #threads"
    if not has_socket then
      skip("LuaSocket (needed to see the news) is not installed for " .. _VERSION)
    else it(detaches, function()
      adapter.start()
      adapter.stop()
      local rec = eval([[
        mc.parentPort:postMessage("late")
      ]] .. STAY)
      assert.is_true(uv_run(), "uv.run() did not return while detached")
      assert.is_true(readable(WAIT), "the worker's message did not arrive")
      assert.is_true(uv_run(), "uv.run() did not return while detached")
      assert.same({}, rec.messages)
      rec.worker:postMessage("bye")
      run()
      assert.same({ "late" }, rec.messages)
      assert.equal(0, rec.code)
    end) end

    it("is kept alive by a ref'd port with a partner in another thread #threads", function()
      local report, code = port_in_worker("luv", false)
      assert.same({ got = { "ping", "close" }, ended = "returned" }, report)
      assert.equal(0, code)
    end)

    it("is not kept alive by an unref'd port with a partner in another thread #threads",
       function()
      local report, code = port_in_worker("luv", true)
      assert.same({ got = {}, ended = "returned" }, report)
      assert.equal(0, code)
    end)
  end)

  describe("messagechannel.cqueues", function()
    if not has_cqueues then
      skip("cqueues is not installed for " .. _VERSION)
      return
    end
    local loaded, adapter = pcall(require, "messagechannel.cqueues")
    local csocket = require "cqueues.socket"

    before_each(function()
      assert(loaded, adapter)
    end)

    -- A new controller with messagechannel attached.
    local function attached()
      local cq = cqueues.new()
      adapter.attach(cq)
      return cq
    end

    -- cq:loop() under a bound; true when the controller emptied by itself.
    local function loop(cq)
      local ok, err = cq:loop(WAIT)
      assert(ok, err)
      return cq:empty()
    end

    it("lets cq:loop() return at once when both are idle", function()
      run()
      assert.is_true(loop(attached()), "cq:loop() did not return")
    end)

    it("delivers a worker's messages; cq:loop() returns once it has ended #threads", function()
      local rec = eval([[
        for i = 1, 10 do mc.parentPort:postMessage(i) end
      ]])
      assert.is_true(loop(attached()), "cq:loop() did not return")
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, rec.messages)
      assert.equal(0, rec.code)
      assert.equal("exit 0", rec.log[#rec.log])
      assert.is_false(mc.step())
      assert.same({}, errors)
    end)

    it("runs mc.sleep and receive in tasks, with and without a timeout", function()
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      local log, got, timed, t0, t1 = {}, nil, nil, nil, nil
      mc.spawn(function()
        t0 = mc.now()
        mc.sleep(0.05)
        t1 = mc.now()
        log[#log + 1] = "slept"
      end)
      mc.spawn(function() log[#log + 1] = "other" end)
      mc.spawn(function() got = a.port2:receive() end)
      mc.spawn(function() timed = helper.pack(b.port2:receive(0.03)) end)
      mc.spawn(function()
        mc.sleep(0.01)
        a.port1:postMessage("late")
      end)
      assert.is_true(loop(attached()), "cq:loop() did not return")
      assert.same({ "other", "slept" }, log)
      assert.is_true(t1 - t0 >= 0.05 - EPS)
      assert.equal("late", got and got.data)
      assert.is_nil(timed[1])
      assert.equal("timeout", timed[2])
      assert.same({}, errors)
    end)

    it("mixes with the user's cqueues tasks; cq:loop() ends when both are idle #threads", function()
      local log = {}
      local rec = eval([[
        local e = mc.parentPort:receive()
        mc.parentPort:postMessage("done " .. e.data)
      ]], nil, log)
      local cq = attached()
      cq:wrap(function()
        cqueues.sleep(0.02)
        log[#log + 1] = "cqueues task"
        rec.worker:postMessage("go")
      end)
      assert.is_true(loop(cq), "cq:loop() did not return")
      assert.same({ "cqueues task", "message done go", "exit 0" }, log)
      assert.same({}, errors)
    end)

    it("delivers a local post made in a cqueues task without other news #threads", function()
      local log = {}
      local rec = eval(STAY, nil, log)
      local ch = mc.MessageChannel()
      ch.port2.onmessage = function(e) log[#log + 1] = e.data end
      local cq = attached()
      cq:wrap(function()
        cqueues.sleep(0.01)
        ch.port1:postMessage("from cqueues")
        local deadline = mc.now() + WAIT
        while #log == 0 and mc.now() < deadline do cqueues.sleep(0.01) end
        log[#log + 1] = "bye"
        rec.worker:postMessage("bye")
      end)
      assert.is_true(loop(cq), "cq:loop() did not return")
      assert.same({ "from cqueues", "bye", "exit 0" }, log)
    end)

    -- The controller's own tasks may make work for messagechannel after it
    -- was idle: cq:loop() still returns only when both are idle.
    it("keeps cq:loop() going for a message a cqueues task posts later", function()
      local cq = attached()
      local got = {}
      cq:wrap(function()
        cqueues.sleep(0.02)
        local ch = mc.MessageChannel()
        ch.port2.onmessage = function(e) got[#got + 1] = e.data end
        ch.port1:postMessage("posted later")
      end)
      assert.is_true(loop(cq), "cq:loop() did not return")
      assert.same({ "posted later" }, got)
    end)

    it("keeps cq:loop() going for a worker a cqueues task starts later #threads", function()
      local cq = attached()
      local log = {}
      cq:wrap(function()
        cqueues.sleep(0.02)
        log[#log + 1] = "cqueues task"
        eval([[mc.parentPort:postMessage("from the worker")]], nil, log)
      end)
      assert.is_true(loop(cq), "cq:loop() did not return")
      assert.same({ "cqueues task", "message from the worker", "exit 0" }, log)
    end)

    it("lets a listener sleep in cqueues.sleep(0.2) while other ports' messages come", function()
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      local log, slept = {}, nil
      a.port2.onmessage = function()
        log[#log + 1] = "A sleeps"
        for i = 1, 3 do b.port1:postMessage(i) end
        local t0 = mc.now()
        cqueues.sleep(0.2)
        slept = mc.now() - t0
        log[#log + 1] = "A woke"
      end
      b.port2.onmessage = function(e)
        log[#log + 1] = "B " .. e.data
        -- a chain of later turns while A sleeps
        if e.data >= 3 and e.data < 5 then b.port1:postMessage(e.data + 1) end
      end
      a.port1:postMessage("go")
      assert.is_true(loop(attached()), "cq:loop() did not return")
      assert.same({ "A sleeps", "B 1", "B 2", "B 3", "B 4", "B 5", "A woke" }, log)
      assert.is_true(slept >= 0.2 - EPS, tostring(slept))
      assert.same({}, errors)
    end)

    it("lets a listener wait in a cqueues socket read while other tasks run", function()
      local s1, s2 = csocket.pair()
      s1:settimeout(WAIT)
      local a, b = mc.MessageChannel(), mc.MessageChannel()
      local log = {}
      a.port2.onmessage = function()
        log[#log + 1] = "A reads"
        b.port1:postMessage("write")
        local line, err = s1:read("*l")
        log[#log + 1] = "A got " .. tostring(line or err)
      end
      b.port2.onmessage = function()
        log[#log + 1] = "B writes"
        assert(s2:write("hello\n"))
        assert(s2:flush())
      end
      a.port1:postMessage("go")
      assert.is_true(loop(attached()), "cq:loop() did not return")
      s1:close()
      s2:close()
      assert.same({ "A reads", "B writes", "A got hello" }, log)
      assert.same({}, errors)
    end)

    it("is kept going by a ref'd port with a partner in another thread #threads", function()
      local report, code = port_in_worker("cqueues", false)
      assert.same({ got = { "ping", "close" }, ended = "returned" }, report)
      assert.equal(0, code)
    end)

    it("is not kept going by an unref'd port with a partner in another thread #threads",
       function()
      local report, code = port_in_worker("cqueues", true)
      assert.same({ got = {}, ended = "returned" }, report)
      assert.equal(0, code)
    end)
  end)
end)
