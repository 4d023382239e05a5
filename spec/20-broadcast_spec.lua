-- mc.BroadcastChannel (API.md 11, after HTML's BroadcastChannel): every
-- other open channel of the same name receives, in any thread, the sender
-- excluded, in post order per sender; close(); messageerror; ref/unref;
-- what may not be cloned or transferred. Nothing waits on wall-clock time:
-- cross-thread runs end on messages and exits under mc.run(TIMEOUT).

local mc = require "messagechannel"

local TIMEOUT = 60

local function run()
  assert.is_true(mc.run(TIMEOUT), "mc.run did not become idle")
end

describe("BroadcastChannel", function()
  it("has its name, a tostring, and checks the name", function()
    local bc = mc.BroadcastChannel("news")
    assert.are.equal("news", bc.name)
    assert.are.equal("BroadcastChannel (news)", tostring(bc))
    assert.are.equal("news", mc.BroadcastChannel.new("news").name)
    for _, bad in ipairs { 1, nil, {}, true } do
      local ok, err = pcall(mc.BroadcastChannel, bad)
      assert.is_false(ok)
      assert.truthy(tostring(err):find(
        "bad argument #1 to 'BroadcastChannel' (string expected, got "
        .. type(bad) .. ")", 1, true), err)
    end
    bc:close()
    assert.are.equal("BroadcastChannel (news, closed)", tostring(bc))
  end)

  it("delivers to every other channel of the name, not the sender", function()
    local a = mc.BroadcastChannel("spec-deliver")
    local b = mc.BroadcastChannel("spec-deliver")
    local c = mc.BroadcastChannel("spec-deliver")
    local other = mc.BroadcastChannel("spec-deliver-other")
    local got = { a = {}, b = {}, c = {}, other = {} }
    for k, bc in pairs { a = a, b = b, c = c, other = other } do
      bc.onmessage = function(e)
        assert.are.equal(bc, e.target)
        assert.are.equal("message", e.type)
        got[k][#got[k] + 1] = e.data
      end
    end
    a:postMessage({ n = 1 })
    a:postMessage("two")
    b:postMessage("from b")
    for _, bc in ipairs { a, b, c, other } do bc:unref() end
    run()
    assert.are.same({ "from b" }, got.a)
    assert.are.same({ { n = 1 }, "two" }, got.b)
    assert.are.same({ { n = 1 }, "two", "from b" }, got.c)
    assert.are.same({}, got.other)
    for _, bc in ipairs { a, b, c, other } do bc:close() end
  end)

  it("clones each message: receivers get copies of their own", function()
    local a = mc.BroadcastChannel("spec-clone")
    local b = mc.BroadcastChannel("spec-clone")
    local c = mc.BroadcastChannel("spec-clone")
    local msg = { list = { 1, 2 } }
    local seen = {}
    b.onmessage = function(e) seen[1] = e.data end
    c.onmessage = function(e) seen[2] = e.data end
    a:postMessage(msg)
    msg.list[1] = "changed after posting"
    b:unref()
    c:unref()
    run()
    assert.are.same({ list = { 1, 2 } }, seen[1])
    assert.are.same({ list = { 1, 2 } }, seen[2])
    assert.are_not.equal(seen[1], seen[2])
    for _, bc in ipairs { a, b, c } do bc:close() end
  end)

  it("works with addEventListener and removeEventListener", function()
    local a = mc.BroadcastChannel("spec-listeners")
    local b = mc.BroadcastChannel("spec-listeners")
    local calls = {}
    local function one(e) calls[#calls + 1] = "one " .. e.data end
    local function two(e) calls[#calls + 1] = "two " .. e.data end
    b:addEventListener("message", one)
    b:addEventListener("message", two)
    b:unref()
    a:postMessage("x")
    run()
    b:removeEventListener("message", one)
    a:postMessage("y")
    run()
    assert.are.same({ "one x", "two x", "two y" }, calls)
    a:close()
    b:close()
  end)

  it("raises InvalidStateError on postMessage after close, and drops what was not dispatched",
     function()
    local a = mc.BroadcastChannel("spec-close")
    local b = mc.BroadcastChannel("spec-close")
    local got = {}
    b.onmessage = function(e) got[#got + 1] = e.data end
    a:postMessage("queued, not dispatched")
    b:close()
    a:postMessage("after b closed")
    run()
    assert.are.same({}, got)
    a:close()
    a:close()  -- again: nothing
    local ok, err = pcall(a.postMessage, a, "x")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("InvalidStateError:", 1, true), err)
  end)

  it("drops what arrives while nothing listens, as HTML dispatches at once",
     function()
    local a = mc.BroadcastChannel("spec-drop")
    local b = mc.BroadcastChannel("spec-drop")
    a:postMessage("nobody listens")
    mc.run()
    local got = {}
    b.onmessage = function(e)
      got[#got + 1] = e.data
      b:close()
    end
    a:postMessage("heard")
    run()
    assert.are.same({ "heard" }, got)
    a:close()
  end)

  it("takes no transfer list", function()
    local a = mc.BroadcastChannel("spec-no-transfer")
    local buf = mc.Buffer(1)
    local ok, err = pcall(function() a:postMessage(buf, { buf }) end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find(
      "bad argument #2 to 'postMessage' (a BroadcastChannel takes no "
      .. "transfer list)", 1, true), err)
    assert.is_false(buf.detached)
    assert.is_nil(a:postMessage(buf))  -- returns nothing, as HTML's
    a:close()
  end)

  it("refuses what cannot be cloned, and cannot be cloned or transferred",
     function()
    local a = mc.BroadcastChannel("spec-refuse")
    local ok, err = pcall(a.postMessage, a, { f = print })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("DataCloneError:", 1, true), err)
    ok, err = pcall(mc.structuredClone, a)
    assert.is_false(ok)
    assert.truthy(tostring(err):find(
      "DataCloneError: BroadcastChannel is not cloneable", 1, true), err)
    local ch = mc.MessageChannel()
    ok, err = pcall(ch.port1.postMessage, ch.port1, a, { a })
    assert.is_false(ok)
    assert.truthy(tostring(err):find(
      "DataCloneError: transfer list entry 1 is a BroadcastChannel, not a "
      .. "MessagePort or Buffer", 1, true), err)
    a:close()
  end)

  it("gives a messageerror for a message it cannot decode", function()
    local a = mc.BroadcastChannel("spec-messageerror")
    local b = mc.BroadcastChannel("spec-messageerror")
    -- a metatable registered in the worker only: its name is unknown here
    local errors, messages = {}, {}
    b.onmessageerror = function(e)
      errors[#errors + 1] = tostring(e.error)
    end
    b.onmessage = function(e) messages[#messages + 1] = e.data end
    b:unref()
    local w = mc.Worker([[
local mc = require "messagechannel"
local mt = {}
mc.register("spec-broadcast-worker-only", mt)
local bc = mc.BroadcastChannel("spec-messageerror")
bc:postMessage(setmetatable({}, mt))
bc:postMessage("fine")
bc:close()
]], { eval = true })
    run()
    assert.are.equal(1, #errors)
    assert.truthy(errors[1]:find("DataCloneError:", 1, true), errors[1])
    assert.are.same({ "fine" }, messages)
    a:close()
    b:close()
    assert.truthy(w)
  end)

  it("is collected when unreachable without a listener, and closes then",
     function()
    local helper = require "spec.helper"
    local weak = setmetatable({}, { __mode = "k" })
    local got = 0
    local b = mc.BroadcastChannel("spec-collect")
    b.onmessage = function() got = got + 1 end
    b:unref()
    do
      local a = mc.BroadcastChannel("spec-collect")
      weak[a] = true
      a:postMessage("before")
    end
    mc.run()
    assert.are.equal(1, got)
    helper.collect()
    assert.is_nil(next(weak))
    -- b still works with a new sender; the collected one no longer hears
    local c = mc.BroadcastChannel("spec-collect")
    c:postMessage("after")
    mc.run()
    assert.are.equal(2, got)
    b:close()
    c:close()
  end)

  it("with a message listener keeps mc.run() going until closed", function()
    local a = mc.BroadcastChannel("spec-keep")
    local b = mc.BroadcastChannel("spec-keep")
    b.onmessage = function() b:close() end
    assert.is_true(b:hasRef())
    a:postMessage("bye")
    run()  -- returns only once b closed
    b = mc.BroadcastChannel("spec-keep")
    b.onmessage = function() end
    assert.is_false(mc.run(0.01))  -- still going
    b:unref()
    assert.is_false(b:hasRef())
    run()
    a:close()
    b:close()
  end)

  it("with a message listener, unreachable, stays open and receives",
     function()
    local got = {}
    do
      local b = mc.BroadcastChannel("spec-unreachable")
      b.onmessage = function(e)
        got[#got + 1] = e.data
        if #got == 2 then b:close() end
      end
    end
    collectgarbage("collect")
    collectgarbage("collect")
    local a = mc.BroadcastChannel("spec-unreachable")
    a:postMessage(1)
    a:postMessage(2)
    run()  -- returns once b closed itself
    assert.are.same({ 1, 2 }, got)
    a:close()
  end)

  it("unref'd, with a message listener, is collected once unreachable",
     function()
    local helper = require "spec.helper"
    local weak = setmetatable({}, { __mode = "k" })
    local got = 0
    do
      local b = mc.BroadcastChannel("spec-unref-collect")
      b.onmessage = function() got = got + 1 end
      b:unref()
      weak[b] = true
    end
    helper.collect()
    assert.is_nil(next(weak))
    local a = mc.BroadcastChannel("spec-unref-collect")
    a:postMessage("after")  -- the collected one was closed: no one hears
    run()
    assert.are.equal(0, got)
    a:close()
  end)
end)

describe("BroadcastChannel across threads #threads", function()
  it("8 threads each receive every other's messages in per-sender order",
     function()
    local THREADS, N = 8, 200
    local name = "spec-8-threads"
    -- each worker opens its channel, says so, waits for "go", posts N
    -- messages, then counts until it has every other worker's N and the
    -- main thread's N, and reports what it got
    local src = [[
local mc = require "messagechannel"
local k, threads, n, name = mc.workerData.k, mc.workerData.threads,
  mc.workerData.n, mc.workerData.name
local bc = mc.BroadcastChannel(name)
local last, total, bad, posted = {}, 0, false, false
local expected = (threads - 1) * n + n  -- the others', and main's
-- done once it has every message and has posted its own (it may hear
-- all the others before its "go" comes)
local function done()
  if total == expected and posted then
    mc.parentPort:postMessage({ k = k, total = total, bad = bad })
    bc:close()
  end
end
bc.onmessage = function(e)
  local from, i = e.data[1], e.data[2]
  if from == k then bad = "got its own message" end
  if i ~= (last[from] or 0) + 1 and not bad then
    bad = from .. ": " .. i .. " after " .. tostring(last[from])
  end
  last[from] = i
  total = total + 1
  done()
end
mc.parentPort.onmessage = function()
  for i = 1, n do bc:postMessage({ k, i }) end
  mc.parentPort.onmessage = nil
  posted = true
  done()
end
mc.parentPort:postMessage("ready")
]]
    local main = mc.BroadcastChannel(name)
    local reports, ready, failed = {}, 0, {}
    local workers = {}
    for k = 1, THREADS do
      local w = mc.Worker(src, { eval = true, data = { k = k,
        threads = THREADS, n = N, name = name } })
      workers[k] = w
      w.onerror = function(e) failed[#failed + 1] = tostring(e.error) end
      w.onmessage = function(e)
        if e.data == "ready" then
          ready = ready + 1
          if ready == THREADS then  -- every channel is open: go
            for j = 1, THREADS do workers[j]:postMessage("go") end
            for i = 1, N do main:postMessage({ 0, i }) end
          end
        else
          reports[e.data.k] = e.data
        end
      end
    end
    local main_last, main_total = {}, 0
    main.onmessage = function(e)
      local from, i = e.data[1], e.data[2]
      assert(i == (main_last[from] or 0) + 1, "main: order from " .. from)
      main_last[from] = i
      main_total = main_total + 1
      if main_total == THREADS * N then main:close() end
    end
    run()
    assert.are.same({}, failed)
    assert.are.equal(THREADS * N, main_total)
    for k = 1, THREADS do
      assert.are.same({ k = k, total = THREADS * N, bad = false },
                      reports[k])
    end
  end)
end)
