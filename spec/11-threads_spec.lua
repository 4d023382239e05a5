-- Threads (API.md section 7, with the cross-thread parts of 3.4, 3.5, 4.3
-- and 6.2): workers from a file and from source, workerData, messages both
-- ways, ports and buffers moved into and out of workers, errors, exit and
-- terminate, close at the partner when a thread ends, what keeps mc.run()
-- going, and receive woken by another thread.
--
-- Nothing here waits on time. Every wait is a message, an exit or a close,
-- under mc.run(timeout) with a generous timeout, so a bug fails the spec
-- instead of hanging the suite. Listeners only record; the asserts run
-- after mc.run() has returned.

local mc = require "messagechannel"
local helper = require "spec.helper"

local has = helper.has

local TIMEOUT = helper.WAIT

local run = helper.run  -- until idle, or fails after helper.WAIT s

-- Worker source: `body` after the module is loaded.
local function source(body)
  return 'local mc = require "messagechannel"\n' .. body
end

local is_port = helper.is_port
local is_open_port = helper.is_open_port_name

-- Workers and temporary files of the running spec, cleaned up after it.
local workers, files = {}, {}

-- Writes `text` to a new temporary file and returns its name.
local function temp_file(text)
  local name = os.tmpname()
  files[#files + 1] = name
  local f = assert(io.open(name, "w"))
  f:write(text)
  f:close()
  return name
end

-- Watches worker w and returns the record of what reached the parent:
-- rec.messages (the data, unless on_message is given: then on_message(e)
-- runs instead), rec.errors (each error event's error), rec.types (each
-- error event's type), rec.codes (each exit event's code), rec.code (the
-- last) and rec.log ("message", "error", "exit", in arrival order).
local function watch(w, on_message)
  local rec = { worker = w, messages = {}, errors = {}, types = {},
                codes = {}, log = {} }
  workers[#workers + 1] = w
  w.onmessage = function(e)
    rec.log[#rec.log + 1] = "message"
    if on_message then
      on_message(e)
    else
      rec.messages[#rec.messages + 1] = e.data
    end
  end
  w.onerror = function(e)
    rec.log[#rec.log + 1] = "error"
    rec.errors[#rec.errors + 1] = e.error
    rec.types[#rec.types + 1] = e.type
  end
  w.onexit = function(e)
    rec.log[#rec.log + 1] = "exit"
    rec.codes[#rec.codes + 1] = e.code
    rec.code = e.code
  end
  return rec
end

-- A worker on Lua source, watched.
local function eval(body, options, on_message)
  options = options or {}
  options.eval = true
  return watch(mc.Worker(source(body), options), on_message)
end

-- Asserts a clean, normal end: one exit event, code 0, no error event.
local function ended_normally(rec)
  assert.same({}, rec.errors)
  assert.same({ 0 }, rec.codes)
end

-- Asserts one exit event with a non-zero code.
local function ended_abnormally(rec)
  assert.equal(1, #rec.codes)
  assert.is_number(rec.code)
  assert.are_not.equal(0, rec.code)
end

describe("threads #threads", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(function()
    helper.terminate_all(workers)
    release()
    for i = #files, 1, -1 do
      os.remove(files[i])
      files[i] = nil
    end
  end)

  describe("mc.Worker", function()
    it("runs a Lua file", function()
      local rec = watch(mc.Worker(temp_file(source([[
        mc.parentPort:postMessage("hello from a file")
      ]]))))
      run()
      assert.same({ "hello from a file" }, rec.messages)
      ended_normally(rec)
      assert.same({}, errors)
    end)

    it("runs Lua source with options.eval", function()
      local rec = eval([[mc.parentPort:postMessage("hello from source")]])
      run()
      assert.same({ "hello from source" }, rec.messages)
      ended_normally(rec)
    end)

    it("gives the worker the parent's package.path and package.cpath", function()
      local path, cpath = package.path, package.cpath
      local rec = eval([[
        mc.parentPort:postMessage({ path = package.path, cpath = package.cpath })
      ]])
      run()
      assert.same({ { path = path, cpath = cpath } }, rec.messages)
      ended_normally(rec)
    end)

    it("starts a fresh Lua state: the parent's globals are not there", function()
      rawset(_G, "spec_threads_marker", "parent only")
      local rec = eval([[
        mc.parentPort:postMessage(type(rawget(_G, "spec_threads_marker")))
      ]])
      rawset(_G, "spec_threads_marker", nil)
      run()
      assert.same({ "nil" }, rec.messages)
      ended_normally(rec)
    end)

    it("raises a bad argument error for a path that is not a string", function()
      for _, bad in ipairs({ {}, true }) do
        local err = helper.error_of(mc.Worker, bad)
        assert.truthy(has(err, "bad argument #1"), err)
      end
      local err = helper.error_of(mc.Worker)
      assert.truthy(has(err, "bad argument #1"), err)
    end)

    it("raises a bad argument error for options that are not a table", function()
      local err = helper.error_of(mc.Worker, source("error('must not run')"), 42)
      assert.truthy(has(err, "bad argument #2"), err)
    end)

    it("raises DataCloneError for uncloneable options.data, moving nothing", function()
      local buf = mc.Buffer("kept")
      local err = helper.error_of(mc.Worker, source("error('must not run')"),
        { eval = true, data = { buf = buf, f = print }, transfer = { buf } })
      assert.truthy(has(err, "DataCloneError:"), err)
      assert.is_false(buf.detached)
      assert.equal("kept", buf:sub())
    end)
  end)

  describe("mc.isMainThread, mc.parentPort and mc.workerData", function()
    it("are true, nil and nil in the main thread", function()
      assert.is_true(mc.isMainThread)
      assert.is_nil(mc.parentPort)
      assert.is_nil(mc.workerData)
    end)

    it("are false, a MessagePort and nil in a worker without data", function()
      local rec = eval([[
        mc.parentPort:postMessage({
          main = mc.isMainThread,
          port = tostring(mc.parentPort),
          post = type(mc.parentPort.postMessage),
          no_data = mc.workerData == nil,
        })
      ]])
      run()
      assert.equal(1, #rec.messages)
      local got = rec.messages[1]
      assert.is_false(got.main)
      assert.truthy(is_open_port(got.port), got.port)
      assert.equal("function", got.post)
      assert.is_true(got.no_data)
      ended_normally(rec)
    end)

    it("give the worker a clone of options.data: nesting, cycles, number types", function()
      local data = {
        list = { 1, 2, 3 },
        nested = { a = { b = { c = "deep" } } },
        int = 3, float = 2.5, whole = 4.0, big = 2 ^ 40, neg = -7,
        s = "x\0y", flag = true,
      }
      data.nested.self = data.nested
      data.shared = { data.list, data.list }
      local rec = eval([[
        local d = mc.workerData
        local mt = math.type
        mc.parentPort:postMessage({
          data = d,
          cycle = rawequal(d.nested.self, d.nested),
          shared = rawequal(d.shared[1], d.list) and rawequal(d.shared[2], d.list),
          types = mt and { int = mt(d.int), float = mt(d.float), whole = mt(d.whole),
                           neg = mt(d.neg) },
        })
      ]], { data = data })
      run()
      assert.equal(1, #rec.messages)
      local got = rec.messages[1]
      assert.is_true(helper.same_graph(data, got.data))
      assert.is_true(got.cycle)
      assert.is_true(got.shared)
      if helper.math_type then
        assert.same({ int = "integer", float = "float", whole = "float", neg = "integer" },
                    got.types)
      else
        assert.is_nil(got.types)
      end
      assert.equal("deep", data.nested.a.b.c) -- the parent's copy is untouched
      ended_normally(rec)
    end)

    it("give the worker a string, a number or false as workerData", function()
      for _, v in ipairs({ "text", 42, false }) do
        local rec = eval([[
          mc.parentPort:postMessage({ v = mc.workerData, t = type(mc.workerData) })
        ]], { data = v })
        run()
        assert.same({ { v = v, t = type(v) } }, rec.messages)
        ended_normally(rec)
      end
    end)
  end)

  describe("messages", function()
    it("go from w:postMessage to the worker's parentPort.onmessage and back", function()
      local rec = eval([[
        local port = mc.parentPort
        port.onmessage = function(e)
          port:postMessage({ echo = e.data, target = rawequal(e.target, port) })
          port:close()
        end
      ]])
      assert.is_true(rec.worker:postMessage({ hello = "worker" }))
      run()
      assert.same({ { echo = { hello = "worker" }, target = true } }, rec.messages)
      ended_normally(rec)
    end)

    it("ping-pong 1,000 times, in order", function()
      local N = 1000
      local expected, wrong, w = 1, 0, nil
      local rec = eval([[
        local port, n = mc.parentPort, mc.workerData
        port.onmessage = function(e)
          port:postMessage(e.data)
          if e.data == n then port:close() end
        end
      ]], { data = N }, function(e)
        if e.data ~= expected then wrong = wrong + 1 end
        expected = expected + 1
        if expected <= N then w:postMessage(expected) end
      end)
      w = rec.worker
      assert.is_true(w:postMessage(1))
      run()
      assert.equal(N + 1, expected)
      assert.equal(0, wrong)
      ended_normally(rec)
      assert.same({}, errors)
    end)

    it("keep their order both ways when 1,000 are posted at once", function()
      local N = 1000
      local got = {}
      local rec = eval([[
        local port, n = mc.parentPort, mc.workerData
        local seen = 0
        port.onmessage = function(e)
          seen = seen + 1
          port:postMessage({ i = e.data, seen = seen })
          if seen == n then port:close() end
        end
      ]], { data = N }, function(e) got[#got + 1] = e.data end)
      for i = 1, N do rec.worker:postMessage(i) end
      run()
      assert.equal(N, #got)
      local wrong = 0
      for i = 1, N do
        if got[i].i ~= i or got[i].seen ~= i then wrong = wrong + 1 end
      end
      assert.equal(0, wrong)
      ended_normally(rec)
    end)

    it("4 workers x 100,000 each reach the main thread, each worker's in order", function()
      local W, N = 4, 100000
      local body = [[
        local port, id, n = mc.parentPort, mc.workerData.id, mc.workerData.n
        for i = 1, n do port:postMessage({ w = id, i = i }) end
      ]]
      local total, wrong, nexti, recs = 0, 0, {}, {}
      for id = 1, W do
        nexti[id] = 1
        recs[id] = eval(body, { data = { id = id, n = N } }, function(e)
          local d = e.data
          total = total + 1
          if d.w ~= id or d.i ~= nexti[id] then wrong = wrong + 1 end
          nexti[id] = nexti[id] + 1
        end)
      end
      run(10 * TIMEOUT)
      assert.equal(W * N, total)
      assert.equal(0, wrong)
      for id = 1, W do
        assert.equal(N + 1, nexti[id])
        ended_normally(recs[id])
      end
    end)

    it("posted to a worker that has ended make w:postMessage return false", function()
      local rec = eval([[mc.parentPort:postMessage("done")]])
      run()
      ended_normally(rec)
      assert.is_false(rec.worker:postMessage("too late"))
    end)
  end)

  describe("transfer", function()
    it("moves a port and a Buffer into a worker with options.transfer", function()
      local ch = mc.MessageChannel()
      local bytes = "moved \0\255 bytes"
      local buf = mc.Buffer(bytes)
      local got = {}
      ch.port1.onmessage = function(e) got[#got + 1] = e.data end
      local rec = eval([[
        local d = mc.workerData
        d.port:postMessage({ bytes = d.buf:sub(), n = #d.buf, detached = d.buf.detached,
                             port = tostring(d.port) })
      ]], { data = { port = ch.port2, buf = buf }, transfer = { ch.port2, buf } })
      assert.is_true(buf.detached)
      assert.equal(0, #buf)
      assert.is_false(ch.port2:postMessage("the old object"))
      assert.equal("MessagePort (closed)", tostring(ch.port2))
      run()
      assert.equal(1, #got)
      assert.equal(bytes, got[1].bytes)
      assert.equal(#bytes, got[1].n)
      assert.is_false(got[1].detached)
      assert.truthy(is_open_port(got[1].port), got[1].port)
      ended_normally(rec)
    end)

    for _, form in ipairs({ "an array", "{ transfer = array }" }) do
      it("moves a port and a Buffer into a worker with w:postMessage, transfer as " .. form,
        function()
          local ch = mc.MessageChannel()
          local buf = mc.Buffer("abc\0def")
          local got = {}
          ch.port1.onmessage = function(e) got[#got + 1] = e.data end
          local rec = eval([[
            mc.parentPort.onmessage = function(e)
              local port, buf = e.data.port, e.data.buf
              port:postMessage({ bytes = buf:sub(), nports = #e.ports,
                                 same = rawequal(port, e.ports[1]) })
              mc.parentPort:close()
            end
          ]])
          local list = { ch.port2, buf }
          if form ~= "an array" then list = { transfer = list } end
          assert.is_true(rec.worker:postMessage({ port = ch.port2, buf = buf }, list))
          assert.is_true(buf.detached)
          assert.equal(0, #buf)
          assert.is_false(ch.port2:postMessage("the old object"))
          run()
          assert.same({ { bytes = "abc\0def", nports = 1, same = true } }, got)
          ended_normally(rec)
        end)
    end

    it("moves a port made in a worker to the main thread, with its queued messages", function()
      local got, port = {}, nil
      local rec = eval([[
        local ch = mc.MessageChannel()
        ch.port1:postMessage("queued 1")
        ch.port1:postMessage("queued 2")
        mc.parentPort:postMessage({ port = ch.port2 }, { ch.port2 })
        ch.port1:postMessage("after the transfer")
        -- the worker ends here: ch.port1 closes, the moved port gets close
      ]], nil, function(e)
        port = e.data.port
        got[#got + 1] = is_port(port) and rawequal(port, e.ports[1])
        port.onmessage = function(m) got[#got + 1] = m.data end
        port.onclose = function() got[#got + 1] = "close" end
      end)
      run()
      assert.same({ true, "queued 1", "queued 2", "after the transfer", "close" }, got)
      ended_normally(rec)
    end)

    it("moves a Buffer made in a worker to the main thread", function()
      local rec = eval([[
        local buf = mc.Buffer("from the worker")
        mc.parentPort:postMessage({ buf = buf }, { buf })
        mc.parentPort:postMessage({ detached = buf.detached, n = #buf })
      ]])
      run()
      assert.equal(2, #rec.messages)
      local buf = rec.messages[1].buf
      assert.truthy(helper.is_buffer(buf))
      assert.equal("from the worker", buf:sub())
      assert.same({ detached = true, n = 0 }, rec.messages[2])
      ended_normally(rec)
    end)

    it("keeps every message whole while small and larger ones alternate between threads", function()
      -- small messages reuse blocks freed by the other thread: sizes
      -- cross that pool's block size both ways, and two workers in turn
      -- take the blocks the first one gave back as it ended
      for round = 1, 2 do
        local rec = eval([[
          mc.parentPort.onmessage = function(e)
            if e.data == "end" then return mc.parentPort:close() end
            mc.parentPort:postMessage({ e.data[1], e.data[2]:upper() })
          end
        ]])
        local sent = {}
        for i = 1, 600 do
          local n = (i * 37) % 420
          sent[i] = { i, string.rep(string.char(97 + i % 26), n) }
          rec.worker:postMessage(sent[i])
        end
        rec.worker:postMessage("end")
        run()
        assert.equal(600, #rec.messages, "round " .. round)
        for i = 1, 600 do
          assert.same({ i, sent[i][2]:upper() }, rec.messages[i])
        end
        ended_normally(rec)
      end
    end)

    it("copies a large Buffer to a worker and back, every byte kept", function()
      -- copies of 32 MiB or more are written into memory that may get
      -- 2 MiB pages
      local MIB = 1024 * 1024
      local size = 33 * MIB + 3
      local marks = { 1, size }
      for k = 1, 16 do marks[#marks + 1] = 2 * k * MIB + k % 2 end
      local buf = mc.Buffer(size)
      for i, at in ipairs(marks) do buf:write(at, string.char(i)) end
      local rec = eval([[
        mc.parentPort.onmessage = function(e)
          local b = e.data
          mc.parentPort:postMessage({ b, #b, b:byte(1), b:byte(#b) })
          mc.parentPort:close()
        end
      ]])
      rec.worker:postMessage(buf)
      run()
      assert.equal(1, #rec.messages)
      local m = rec.messages[1]
      local back = m[1]
      assert.same({ size, 1, 2 }, { m[2], m[3], m[4] })
      assert.are_not.equal(buf, back)
      assert.is_false(buf.detached)
      for i, at in ipairs(marks) do assert.equal(i, back:byte(at)) end
      assert.is_true(back:sub() == buf:sub())
      ended_normally(rec)
    end)

    it("lets two workers talk through a channel made in the main thread", function()
      -- the receiver gets its port first: the sender may close the other
      -- one as soon as it runs
      local ch = mc.MessageChannel()
      local receiver = eval([[
        local port, sum, n = mc.workerData.port, 0, 0
        port.onmessage = function(e) sum, n = sum + e.data, n + 1 end
        port.onclose = function() mc.parentPort:postMessage({ sum = sum, n = n }) end
      ]], { data = { port = ch.port2 }, transfer = { ch.port2 } })
      local sender = eval([[
        local port = mc.workerData.port
        for i = 1, 100 do port:postMessage(i) end
        port:close()
      ]], { data = { port = ch.port1 }, transfer = { ch.port1 } })
      run()
      assert.same({ { sum = 5050, n = 100 } }, receiver.messages)
      ended_normally(sender)
      ended_normally(receiver)
    end)

    it("w:postMessage raises DataCloneError for a bad transfer list, moving nothing", function()
      local rec = eval([[
        mc.parentPort.onmessage = function(e)
          mc.parentPort:postMessage(e.data)
          mc.parentPort:close()
        end
      ]])
      local w = rec.worker
      local ch, buf = mc.MessageChannel(), mc.Buffer("kept")
      local bad = {
        { { buf = buf }, { buf, buf } },
        { "x", { ch.port2, buf, {} } },
        { { port = ch.port2 }, { buf } },
        { { f = print }, { ch.port2, buf } },
      }
      for i, case in ipairs(bad) do
        local err = helper.error_of(w.postMessage, w, case[1], case[2])
        assert.truthy(has(err, "DataCloneError:"), "case " .. i .. ": " .. err)
        assert.is_false(buf.detached)
        assert.equal("kept", buf:sub())
        assert.is_true(ch.port1:postMessage(i))
        assert.equal(i, ch.port2:receive(0).data)
      end
      assert.is_true(w:postMessage("fine"))
      run()
      assert.same({ "fine" }, rec.messages)
      ended_normally(rec)
    end)
  end)

  describe("errors", function()
    it("reach onerror with the error of a file that raises, then onexit, code non-zero", function()
      local rec = watch(mc.Worker(temp_file(source([[
        error("boom from the worker file")
      ]]))))
      run()
      assert.same({ "error", "exit" }, rec.log)
      assert.equal(1, #rec.errors)
      assert.truthy(has(rec.errors[1], "boom from the worker file"), tostring(rec.errors[1]))
      assert.same({ "error" }, rec.types)
      ended_abnormally(rec)
      assert.same({}, errors)
    end)

    it("come after the messages posted before them, and exit comes last", function()
      local rec = eval([[
        for i = 1, 3 do mc.parentPort:postMessage(i) end
        error("after three messages")
      ]])
      run()
      assert.same({ 1, 2, 3 }, rec.messages)
      assert.equal(5, #rec.log)
      assert.equal("exit", rec.log[5])
      local count = {}
      for _, what in ipairs(rec.log) do count[what] = (count[what] or 0) + 1 end
      assert.same({ message = 3, error = 1, exit = 1 }, count)
      assert.truthy(has(rec.errors[1], "after three messages"), tostring(rec.errors[1]))
      ended_abnormally(rec)
    end)

    it("do not happen at a normal end: code 0, messages first", function()
      local rec = eval([[
        mc.parentPort:postMessage("one")
        mc.parentPort:postMessage("two")
      ]])
      run()
      assert.same({ "message", "message", "exit" }, rec.log)
      assert.same({ "one", "two" }, rec.messages)
      ended_normally(rec)
    end)

    it("keep a raised table as a clone in event.error", function()
      local rec = eval([[error({ code = 42, why = "a table" })]])
      run()
      assert.same({ { code = 42, why = "a table" } }, rec.errors)
      assert.same({ "error", "exit" }, rec.log)
      ended_abnormally(rec)
    end)

    it("in a worker's listener that nobody takes end the worker with an error event", function()
      local rec = eval([[
        mc.parentPort.onmessage = function(e) error("listener failed on " .. e.data) end
      ]])
      rec.worker:postMessage("input")
      run()
      assert.equal(1, #rec.errors)
      assert.truthy(has(rec.errors[1], "listener failed on input"), tostring(rec.errors[1]))
      assert.equal("exit", rec.log[#rec.log])
      ended_abnormally(rec)
    end)

    it("in a worker go to the worker's own mc.onerror when it sets one", function()
      local rec = eval([[
        mc.onerror = function(err)
          mc.parentPort:postMessage("caught: " .. tostring(err))
          mc.parentPort:close()
        end
        mc.parentPort.onmessage = function() error("taken", 0) end
      ]])
      rec.worker:postMessage("go")
      run()
      assert.same({ "caught: taken" }, rec.messages)
      ended_normally(rec)
    end)

    it("of syntax in the source reach onerror, then onexit with a non-zero code", function()
      local rec = watch(mc.Worker("this is not Lua (", { eval = true }))
      run()
      assert.same({ "error", "exit" }, rec.log)
      assert.is_string(rec.errors[1])
      ended_abnormally(rec)
    end)
  end)

  describe("w:terminate", function()
    -- A worker that posts "started" and then waits, one way or another,
    -- forever; the parent terminates it on "started".
    local waits = {
      ["a busy loop"] = [[while true do end]],
      ["a busy loop calling functions"] = [[
        local x = 0
        local function f(i) return i + 1 end
        while true do x = f(x) % 7 end
      ]],
      ["receive on the parent port"] = [[
        mc.parentPort:receive()
        mc.parentPort:postMessage("receive returned")
      ]],
      ["mc.run, kept by a parentPort listener"] = [[
        mc.parentPort.onmessage = function() end
      ]],
      ["mc.sleep"] = [[
        mc.sleep(3600)
        mc.parentPort:postMessage("sleep returned")
      ]],
    }
    local names = {}
    for name in pairs(waits) do names[#names + 1] = name end
    table.sort(names)

    for _, name in ipairs(names) do
      it("stops a worker in " .. name .. ": exit with a non-zero code, no error", function()
        local w
        local rec = eval('mc.parentPort:postMessage("started")\n' .. waits[name], nil,
          function(e) if e.data == "started" then w:terminate() end end)
        w = rec.worker
        run()
        assert.same({ "message", "exit" }, rec.log)
        assert.same({}, rec.errors)
        ended_abnormally(rec)
      end)
    end

    it("is idempotent: one exit event, however often it is called", function()
      local w
      local rec = eval([[
        mc.parentPort:postMessage("started")
        while true do end
      ]], nil, function()
        w:terminate()
        w:terminate()
      end)
      w = rec.worker
      run()
      assert.is_true(pcall(w.terminate, w))
      run()
      ended_abnormally(rec)
    end)

    it("stops a worker right after it was made", function()
      local rec = eval([[while true do end]])
      rec.worker:terminate()
      run()
      ended_abnormally(rec)
      assert.same({}, rec.errors)
    end)

    it("after a normal end changes nothing", function()
      local rec = eval([[mc.parentPort:postMessage("done")]])
      run()
      rec.worker:terminate()
      run()
      ended_normally(rec)
    end)
  end)

  describe("close at the partner", function()
    -- port1 stays here with a listener; port2 goes to a worker that ends
    -- the given way. The listener keeps mc.run() going until the close.
    local function partner_of(body, on_message)
      local ch = mc.MessageChannel()
      local got = {}
      ch.port1.onmessage = function(e) got[#got + 1] = e.data end
      ch.port1.onclose = function(e) got[#got + 1] = e.type end
      local rec = eval(body, { data = { port = ch.port2 }, transfer = { ch.port2 } },
        on_message)
      return ch, got, rec
    end

    it("fires when the worker holding the port ends", function()
      local ch, got, rec = partner_of([[
        local port = mc.workerData.port
        port:postMessage("before the end")
      ]])
      run()
      assert.same({ "before the end", "close" }, got)
      assert.is_false(ch.port1:postMessage("nobody"))
      assert.equal("MessagePort (closed)", tostring(ch.port1))
      ended_normally(rec)
    end)

    it("fires when the worker holding the port fails", function()
      local ch, got, rec = partner_of([[
        local port = mc.workerData.port
        error("failing with a port")
      ]])
      run()
      assert.same({ "close" }, got)
      assert.is_false(ch.port1:postMessage("nobody"))
      ended_abnormally(rec)
    end)

    it("fires when the worker holding the port is terminated", function()
      local w
      local ch, got, rec = partner_of([[
        local port = mc.workerData.port
        mc.parentPort:postMessage("started")
        while true do end
      ]], function() w:terminate() end)
      w = rec.worker
      run()
      assert.same({ "close" }, got)
      assert.is_false(ch.port1:postMessage("nobody"))
      ended_abnormally(rec)
    end)
  end)

  describe("what keeps mc.run() going", function()
    -- In the worker, ch.port1 waits (as `wait` says, then `setup` runs) for
    -- a message from its partner, which is moved to the main thread. Nothing
    -- else keeps the worker: its mc.run() ends unless that port keeps it.
    local function worker_with_remote_partner(setup, wait)
      return [[
        local ch = mc.MessageChannel()
        local function got(e)
          mc.parentPort:postMessage("worker got " .. tostring(e.data))
          ch.port1:close()
        end
      ]] .. wait .. "\n" .. setup .. [[

        mc.parentPort:postMessage({ port = ch.port2, ref = ch.port1:hasRef() },
                                  { ch.port2 })
      ]]
    end

    local listener = "ch.port1.onmessage = got"
    local task = "mc.spawn(function() got(ch.port1:receive()) end)"

    for _, case in ipairs({
      { "a port with a message listener", "", listener },
      { "a task waiting in receive", "", task },
      { "a port ref()'d again after unref()", "ch.port1:unref() ch.port1:ref()", listener },
    }) do
      it("is " .. case[1] .. " whose partner is in another thread", function()
        local held, sent
        local rec = eval(worker_with_remote_partner(case[2], case[3]))
        rec.worker.onmessage = function(e)
          rec.log[#rec.log + 1] = "message"
          if type(e.data) == "table" then
            held = e.data.port
            rec.messages[#rec.messages + 1] = e.data.ref
            sent = held:postMessage("wake")
          else
            rec.messages[#rec.messages + 1] = e.data
          end
        end
        run()
        assert.is_true(sent)
        assert.same({ true, "worker got wake" }, rec.messages)
        ended_normally(rec)
      end)
    end

    it("is not a port with a remote partner after unref(): the worker ends", function()
      local closes, held = 0, nil
      local rec = eval(worker_with_remote_partner("ch.port1:unref()", listener))
      rec.worker.onmessage = function(e)
        held = e.data.port
        rec.messages[#rec.messages + 1] = e.data.ref
        held.onmessage = helper.noop -- keeps this thread's mc.run() until the close
        held.onclose = function() closes = closes + 1 end
      end
      run()
      assert.same({ false }, rec.messages)
      assert.equal(1, closes)
      assert.is_false(held:postMessage("nobody"))
      ended_normally(rec)
    end)

    it("is a port with messages and a close still to dispatch, its partner closed", function()
      -- The sender closes its port right after posting: the receiver's
      -- mc.run() must still dispatch all 100 messages and the close before
      -- it returns. Twenty rounds, since the sender may close at any point.
      local reports = {}
      for round = 1, 20 do
        local ch = mc.MessageChannel()
        eval([[
          local port, n, closed = mc.workerData.port, 0, false
          port.onmessage = function() n = n + 1 end
          port.onclose = function() closed = true end
          local idle = mc.run(]] .. TIMEOUT .. [[)
          mc.parentPort:postMessage({ idle = idle, n = n, closed = closed })
        ]], { data = { port = ch.port2 }, transfer = { ch.port2 } }, function(e)
          reports[round] = e.data
        end)
        eval([[
          local port = mc.workerData.port
          for i = 1, 100 do port:postMessage(i) end
          port:close()
        ]], { data = { port = ch.port1 }, transfer = { ch.port1 } })
        run()
      end
      local wrong = {}
      for round = 1, 20 do
        local r = reports[round]
        if not (r and r.idle == true and r.n == 100 and r.closed == true) then
          wrong[#wrong + 1] = r and ("round %d: idle=%s n=%d closed=%s"):format(
            round, tostring(r.idle), r.n, tostring(r.closed)) or "no report in round " .. round
        end
      end
      assert.same({}, wrong)
    end)

    it("is a live worker: mc.run() waits for it to exit", function()
      local rec = eval([[
        local e = mc.parentPort:receive()
        mc.parentPort:postMessage(e.data * 2)
      ]])
      local w = rec.worker
      w.onmessage = nil
      mc.spawn(function() w:postMessage(21) end)
      run()
      ended_normally(rec)
    end)
  end)

  describe("port:receive", function()
    -- port2 goes to a worker that runs body; port1 stays here.
    local function with_worker(body)
      local ch = mc.MessageChannel()
      local rec = eval(body, { data = { port = ch.port2 }, transfer = { ch.port2 } })
      return ch.port1, rec
    end

    it("in the main thread, outside a task, is woken by a worker's post", function()
      local port, rec = with_worker([[mc.workerData.port:postMessage("from the worker")]])
      local ev = port:receive()
      assert.is_table(ev)
      assert.equal("from the worker", ev.data)
      run()
      ended_normally(rec)
    end)

    it("in a task of the main thread is woken by a worker's post", function()
      local port, rec = with_worker([[mc.workerData.port:postMessage("from the worker")]])
      local ev
      mc.spawn(function() ev = port:receive() end)
      run()
      assert.is_table(ev)
      assert.equal("from the worker", ev.data)
      ended_normally(rec)
    end)

    it("returns nil, 'closed' when the worker holding the partner ends", function()
      local port, rec = with_worker([[local port = mc.workerData.port]])
      local ev, why = port:receive()
      assert.is_nil(ev)
      assert.equal("closed", why)
      run()
      ended_normally(rec)
    end)

    it("in a worker is woken by the parent's post", function()
      local rec = eval([[
        local e = mc.parentPort:receive()
        mc.parentPort:postMessage("worker got " .. e.data)
      ]])
      rec.worker:postMessage("hello")
      run()
      assert.same({ "worker got hello" }, rec.messages)
      ended_normally(rec)
    end)
  end)

  describe("messageerror", function()
    it("reaches w.onmessageerror, data nil, DataCloneError, for a metatable name unknown here",
      function()
        local rec = eval([[
          local mt = {}
          mc.register("spec.threads: known only in a worker", mt)
          mc.parentPort:postMessage(setmetatable({ x = 1 }, mt))
          mc.parentPort:postMessage("after")
        ]])
        local events = {}
        rec.worker.onmessageerror = function(e) events[#events + 1] = e end
        run()
        assert.equal(1, #events)
        assert.equal("messageerror", events[1].type)
        assert.is_nil(events[1].data)
        assert.truthy(has(events[1].error, "DataCloneError:"), tostring(events[1].error))
        assert.same({ "after" }, rec.messages)
        ended_normally(rec)
      end)

    it("reaches a port's onmessageerror, and the port keeps working", function()
      local ch = mc.MessageChannel()
      local got = {}
      ch.port1.onmessage = function(e) got[#got + 1] = e.data end
      ch.port1.onmessageerror = function(e)
        got[#got + 1] = { type = e.type, data_nil = e.data == nil,
                          clone_error = has(e.error, "DataCloneError:") }
      end
      local rec = eval([[
        local mt = {}
        mc.register("spec.threads: known only in a worker, on a port", mt)
        local port = mc.workerData.port
        port:postMessage("before")
        port:postMessage(setmetatable({}, mt))
        port:postMessage("after")
      ]], { data = { port = ch.port2 }, transfer = { ch.port2 } })
      run()
      assert.same({ "before", { type = "messageerror", data_nil = true, clone_error = true },
                    "after" }, got)
      ended_normally(rec)
      assert.same({}, errors)
    end)

    it("reaches the worker's parentPort for a metatable name only the main thread knows",
      function()
        local mt = {}
        mc.register("spec.threads: known only in the main thread", mt)
        local rec = eval([[
          local port = mc.parentPort
          port.onmessageerror = function(e)
            port:postMessage({ type = e.type, data_nil = e.data == nil,
                               clone_error = type(e.error) == "string"
                                 and e.error:find("DataCloneError:", 1, true) ~= nil })
          end
          port.onmessage = function(e)
            port:postMessage("worker got " .. tostring(e.data))
            port:close()
          end
        ]])
        rec.worker:postMessage(setmetatable({ x = 1 }, mt))
        rec.worker:postMessage("after")
        run()
        assert.same({ { type = "messageerror", data_nil = true, clone_error = true },
                      "worker got after" }, rec.messages)
        ended_normally(rec)
      end)
  end)
  describe("mc.spin", function()
    local saved
    before_each(function() saved = mc.spin() end)
    after_each(function() mc.spin(saved) end)

    it("reads and sets the spin before a wait sleeps, in microseconds", function()
      assert.equal(50, saved)
      assert.equal(50, mc.spin(0))
      assert.equal(0, mc.spin())
      assert.equal(0, mc.spin(12.5))
      assert.equal(12.5, mc.spin())
    end)

    it("refuses what is not a number from 0 to 1000000", function()
      for _, bad in ipairs({ -1, 1e6 + 1, 0 / 0, "x", {} }) do
        local ok, err = pcall(mc.spin, bad)
        assert.is_false(ok)
        assert.truthy(has(err, "bad argument #1 to"), err)
      end
      assert.equal(50, mc.spin())
    end)

    it("is one setting for every thread", function()
      mc.spin(7)
      local w = mc.Worker(source("mc.parentPort:postMessage(mc.spin(3))"),
                          { eval = true })
      local got
      w.onmessage = function(e) got = e.data end
      run()
      assert.equal(7, got)
      assert.equal(3, mc.spin())
    end)

    for _, us in ipairs({ 0, 50, 1000 }) do
      it(("delivers every round trip in order with %d us"):format(us), function()
        mc.spin(us)
        local w = mc.Worker(source([[
          local port = mc.parentPort
          port.onmessage = function(e)
            if e.data == "bye" then port:close() else port:postMessage(e.data) end
          end
        ]]), { eval = true })
        local n, bad = 0, 0
        w.onmessage = function(e)
          if e.data ~= n + 1 then bad = bad + 1 end
          n = e.data
          w:postMessage(n < 300 and n + 1 or "bye")
        end
        w:postMessage(1)
        run()
        assert.equal(300, n)
        assert.equal(0, bad)
      end)
    end
  end)
end)
