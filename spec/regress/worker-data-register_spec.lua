-- mc.workerData was decoded while the worker loaded the module, before its
-- code could run: a value whose metatable was registered in the parent but
-- not yet in the worker killed the worker at start. API.md section 7 decodes
-- workerData on its first read instead, so the worker registers first; a
-- read that cannot decode raises DataCloneError: and leaves the data to be
-- read again.
--
-- Nothing here waits on time: every wait is a message, an exit or a close,
-- under mc.run(timeout) or receive(timeout) with a generous timeout only as
-- a safety net. Listeners record; the asserts run in the parent afterwards.

local mc = require "messagechannel"
local helper = require "spec.helper"

local has = helper.has

local TIMEOUT = helper.WAIT

-- Registered here in the parent only; each worker registers its own
-- metatable under the same name, or does not.
local NAME = "regress.worker-data.Point"
local Point = { __index = { kind = "point" } }
mc.register(NAME, Point)

local function point(value)
  return setmetatable({ value = value }, Point)
end

-- Worker source: `body` after the module is loaded, with NAME in scope.
local function source(body)
  return ('local mc = require "messagechannel"\nlocal NAME = %q\n'):format(NAME)
    .. body
end

-- Workers of the running spec, terminated after it.
local workers = {}

-- Starts a worker on Lua source and returns the record of what reached the
-- parent: rec.messages (each message's data), rec.errors (each error
-- event's error), rec.codes (each exit event's code).
local function start(body, options)
  options = options or {}
  options.eval = true
  local w = mc.Worker(source(body), options)
  workers[#workers + 1] = w
  local rec = { worker = w, messages = {}, errors = {}, codes = {} }
  w.onmessage = function(e) rec.messages[#rec.messages + 1] = e.data end
  w.onerror = function(e) rec.errors[#rec.errors + 1] = tostring(e.error) end
  w.onexit = function(e) rec.codes[#rec.codes + 1] = e.code end
  return rec
end

-- Runs the scheduler until idle, failing the spec when it is still busy
-- after TIMEOUT seconds.
local function run()
  assert.is_true(mc.run(TIMEOUT), "mc.run did not become idle")
end

-- Runs the scheduler until done() holds. When mc.run() is idle before that
-- (another thread still owes an event), the scheduler keeps running in
-- short sleeps, up to TIMEOUT seconds in all.
local function run_until(done)
  local deadline = mc.now() + TIMEOUT
  while not done() and mc.now() < deadline do
    if mc.run(math.max(deadline - mc.now(), 0)) and not done() then
      mc.sleep(0.01)
    end
  end
  assert.is_true(done(), "the awaited events did not all happen")
end

-- Asserts a clean, normal end: no error event, one exit event, code 0.
local function ended_normally(rec)
  assert.same({}, rec.errors, "the worker failed: " .. table.concat(rec.errors, "\n"))
  assert.same({ 0 }, rec.codes)
end

describe("regress: workerData decoded on its first read #threads", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(function()
    helper.terminate_all(workers)
    release()
  end)

  it("carries a registered metatable to a worker that registers it before reading", function()
    local rec = start([[
      local mt = {}
      mc.register(NAME, mt)
      local x = mc.workerData.x
      mc.parentPort:postMessage({ same_mt = getmetatable(x) == mt, value = x.value })
    ]], { data = { x = point(42) } })
    run()
    ended_normally(rec)
    assert.same({ { same_mt = true, value = 42 } }, rec.messages)
    assert.same({}, errors)
  end)

  it("raises DataCloneError on a read before the register, and a read after it succeeds",
    function()
      local rec = start([[
        local function read() return mc.workerData end
        local ok, err = pcall(read)
        local mt = {}
        mc.register(NAME, mt)
        local ok2, d = pcall(read)
        local ok3, d2 = pcall(read)
        mc.parentPort:postMessage({
          first_ok = ok, first_err = tostring(err),
          second_ok = ok2,
          same_mt = ok2 and getmetatable(d.x) == mt,
          value = ok2 and d.x.value,
          third_same = ok3 and rawequal(d, d2),
        })
      ]], { data = { x = point(7) } })
      run()
      ended_normally(rec)
      assert.equal(1, #rec.messages)
      local got = rec.messages[1]
      assert.is_false(got.first_ok)
      assert.truthy(has(got.first_err, "DataCloneError:"), got.first_err)
      assert.is_true(got.second_ok)
      assert.is_true(got.same_mt)
      assert.equal(7, got.value)
      assert.is_true(got.third_same)
    end)

  it("gives the same table on every read", function()
    local rec = start([[
      mc.register(NAME, {})
      local a, b = mc.workerData, mc.workerData
      mc.parentPort:postMessage({
        table = type(a) == "table",
        same = rawequal(a, b),
        same_x = rawequal(a.x, b.x),
        value = b.x.value,
      })
    ]], { data = { x = point(3) } })
    run()
    ended_normally(rec)
    assert.same({ { table = true, same = true, same_x = true, value = 3 } }, rec.messages)
  end)

  it("lets a worker that never reads workerData start and run normally", function()
    local rec = start([[
      local port = mc.parentPort
      port:postMessage("started")
      port.onmessage = function(e)
        port:postMessage("got " .. tostring(e.data))
        port:close()
      end
    ]], { data = { x = point(1) } })
    assert.is_true(rec.worker:postMessage("ping"))
    run()
    ended_normally(rec)
    assert.same({ "started", "got ping" }, rec.messages)
    assert.same({}, errors)
  end)

  it("delivers to a port carried in workerData a message posted before the read", function()
    local ch = mc.MessageChannel()
    local got = {}
    ch.port1.onmessage = function(e) got[#got + 1] = e.data end
    ch.port1.onclose = function() got[#got + 1] = "close" end
    -- The worker reads workerData only once the parent says "go", so the
    -- message on ch.port1 is surely posted before that read.
    local rec = start([[
      assert(mc.parentPort:receive(30), "no go from the parent")
      local mt = {}
      mc.register(NAME, mt)
      local d = mc.workerData
      local e, why = d.port:receive(30)
      d.port:postMessage({
        got = e and e.data or why,
        same_mt = getmetatable(d.x) == mt,
        value = d.x.value,
      })
    ]], { data = { port = ch.port2, x = point(5) }, transfer = { ch.port2 } })
    assert.is_true(ch.port1:postMessage("posted before the read"))
    assert.is_true(rec.worker:postMessage("go"))
    run()
    ended_normally(rec)
    assert.same({ { got = "posted before the read", same_mt = true, value = 5 }, "close" },
                got)
  end)

  for _, case in ipairs({
    { "a port alone", function(port) return { port = port } end },
    { "a port and a value it cannot decode",
      function(port) return { port = port, x = point(9) } end },
  }) do
    it("closes a port carried in workerData that the worker never read: " .. case[1],
      function()
        local ch = mc.MessageChannel()
        local closes = 0
        ch.port1.onclose = function() closes = closes + 1 end
        local rec = start([[mc.parentPort:postMessage("ran")]],
          { data = case[2](ch.port2), transfer = { ch.port2 } })
        run_until(function() return #rec.codes > 0 and closes > 0 end)
        ended_normally(rec)
        assert.equal(1, closes)
        assert.is_false(ch.port1:postMessage("nobody"))
        assert.same({ "ran" }, rec.messages)
      end)
  end
end)
