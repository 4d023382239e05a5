-- Bounded queues (API.md 11): mc.MessageChannel{capacity = n},
-- postMessage waiting for room (in a task, outside any task, with a
-- timeout, across threads), what a post that does not happen leaves
-- (nothing sent, nothing detached), and port:pending(). Nothing waits on
-- wall-clock time for a result: timeouts are only asserted as the reason
-- returned, and cross-thread runs end on messages and exits.

local mc = require "messagechannel"
local helper = require "spec.helper"

-- Seconds: a hang guard, five times the usual one for the runs of
-- 100,000 messages (under ThreadSanitizer on a loaded machine they have
-- taken 40 s).
local TIMEOUT = 5 * helper.WAIT

local function run() helper.run(TIMEOUT) end

local function datas(port)
  local out = {}
  while true do
    local ev = port:receive(0)
    if not ev then return out end
    out[#out + 1] = ev.data
  end
end

describe("MessageChannel{capacity = n}", function()
  it("takes an integer >= 1 and nothing else", function()
    for _, bad in ipairs { 0, -1, 1.5, "3", {}, true, 0 / 0, math.huge } do
      local ok, err = pcall(mc.MessageChannel, { capacity = bad })
      assert.is_false(ok)
      assert.truthy(tostring(err):find(
        "bad argument #1 to 'MessageChannel' (capacity must be an integer "
        .. ">= 1)", 1, true), err)
    end
    local ok, err = pcall(mc.MessageChannel, 16)
    assert.is_false(ok)
    assert.truthy(tostring(err):find(
      "bad argument #1 to 'MessageChannel' (table expected, got number)", 1,
      true), err)
    assert.truthy(mc.MessageChannel({}).port1)
    assert.truthy(mc.MessageChannel.new({ capacity = 2 }).port1)
  end)

  it("holds at most n messages at each port; timeout = 0 tries once",
     function()
    local ch = mc.MessageChannel({ capacity = 2 })
    assert.is_true(ch.port1:postMessage("a"))
    assert.is_true(ch.port1:postMessage("b"))
    local ok, why = ch.port1:postMessage("c", { timeout = 0 })
    assert.is_false(ok)
    assert.are.equal("timeout", why)
    assert.are.equal(2, ch.port2:pending())
    -- the other direction has its own room
    assert.is_true(ch.port2:postMessage(1))
    assert.is_true(ch.port2:postMessage(2))
    assert.are.same({ false, "timeout" },
                    { ch.port2:postMessage(3, { timeout = 0 }) })
    assert.are.same({ "a", "b" }, datas(ch.port2))
    assert.are.same({ 1, 2 }, datas(ch.port1))
    assert.is_true(ch.port1:postMessage("d", { timeout = 0 }))
    assert.are.same({ "d" }, datas(ch.port2))
  end)

  it("leaves the transfer list attached when the post times out", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    local other = mc.MessageChannel()
    local buf = mc.Buffer("payload")
    assert.is_true(ch.port1:postMessage(0))
    local ok, why = ch.port1:postMessage({ buf = buf, port = other.port1 },
      { transfer = { buf, other.port1 }, timeout = 0 })
    assert.is_false(ok)
    assert.are.equal("timeout", why)
    assert.is_false(buf.detached)
    assert.are.equal("payload", buf:sub())
    assert.is_true(other.port1:postMessage("still mine"))
    assert.are.equal("still mine", other.port2:receive(0).data)
    assert.are.same({ 0 }, datas(ch.port2))
    -- then the same list goes through
    assert.is_true(ch.port1:postMessage({ buf = buf }, { transfer = { buf } }))
    assert.is_true(buf.detached)
    assert.are.equal("payload", ch.port2:receive(0).data.buf:sub())
  end)

  it("suspends a task until a reader makes room, keeping order", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    local results, got = {}, {}
    mc.spawn(function()
      for i = 1, 5 do results[i] = ch.port1:postMessage(i) end
    end)
    mc.spawn(function()
      for _ = 1, 5 do
        assert.is_true(ch.port2:pending() <= 1)
        got[#got + 1] = ch.port2:receive().data
      end
    end)
    run()
    assert.are.same({ true, true, true, true, true }, results)
    assert.are.same({ 1, 2, 3, 4, 5 }, got)
  end)

  it("runs the scheduler outside any task until there is room", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    assert.is_true(ch.port1:postMessage("first"))
    local taken
    mc.spawn(function() taken = ch.port2:receive().data end)
    assert.is_true(ch.port1:postMessage("second"))
    assert.are.equal("first", taken)
    assert.are.same({ "second" }, datas(ch.port2))
  end)

  it("counts a message handed to a waiting receive as taken", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    local got = {}
    mc.spawn(function()
      for _ = 1, 2 do got[#got + 1] = ch.port2:receive().data end
    end)
    mc.step()  -- the reader waits now
    assert.is_true(ch.port1:postMessage("a"))
    run()
    assert.is_true(ch.port1:postMessage("b", { timeout = 0 }))
    run()
    assert.are.same({ "a", "b" }, got)
  end)

  it("gives up after timeout seconds, in a task and outside, with nothing sent",
     function()
    local ch = mc.MessageChannel({ capacity = 1 })
    assert.is_true(ch.port1:postMessage("kept"))
    local buf = mc.Buffer(4)
    local r
    mc.spawn(function()
      r = { ch.port1:postMessage(buf, { transfer = { buf }, timeout = 0.01 }) }
    end)
    run()
    assert.are.same({ false, "timeout" }, r)
    assert.is_false(buf.detached)
    assert.are.same({ false, "timeout" },
                    { ch.port1:postMessage(buf, { transfer = { buf },
                                                  timeout = 0.01 }) })
    assert.is_false(buf.detached)
    assert.are.same({ "kept" }, datas(ch.port2))
  end)

  it("returns false, 'closed' when the pair closes while it waits", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    local buf = mc.Buffer(8)
    assert.is_true(ch.port1:postMessage(1))
    local r
    mc.spawn(function()
      r = { ch.port1:postMessage(buf, { transfer = { buf } }) }
    end)
    mc.spawn(function() ch.port2:close() end)
    run()
    assert.are.same({ false, "closed" }, r)
    assert.is_false(buf.detached)
    assert.are.same({ false, "closed" }, { ch.port1:postMessage(2) })
  end)

  it("raises instead of waiting forever outside a task", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    assert.is_true(ch.port1:postMessage(1))
    local ok, err = pcall(ch.port1.postMessage, ch.port1, 2)
    assert.is_false(ok)
    assert.truthy(tostring(err):find(
      "postMessage() would wait forever: no task, timer or other thread can "
      .. "take from the partner port", 1, true), err)
    assert.are.same({ 1 }, datas(ch.port2))
  end)

  it("checks the timeout option", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    for _, bad in ipairs { -1, "1", 0 / 0, true } do
      local ok, err = pcall(function()
        local r = ch.port1:postMessage(1, { timeout = bad })
        return r  -- not a tail call, which would hide the method's name
      end)
      assert.is_false(ok)
      assert.truthy(tostring(err):find(
        "bad argument #2 to 'postMessage' ('timeout' must be a non-negative "
        .. "number)", 1, true), err)
    end
    assert.are.equal(0, ch.port2:pending())
  end)

  it("never waits without a capacity, timeout or not", function()
    local ch = mc.MessageChannel()
    for i = 1, 100 do
      assert.is_true(ch.port1:postMessage(i, { timeout = 0 }))
    end
    assert.are.equal(100, ch.port2:pending())
  end)

  it("keeps the capacity of a port that was transferred", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    local carrier = mc.MessageChannel()
    assert.is_true(carrier.port1:postMessage(ch.port1, { ch.port1 }))
    local moved = carrier.port2:receive(0).data
    assert.is_true(moved:postMessage("one", { timeout = 0 }))
    assert.are.same({ false, "timeout" },
                    { moved:postMessage("two", { timeout = 0 }) })
    assert.are.same({ "one" }, datas(ch.port2))
  end)
end)

describe("bounded queues across threads #threads", function()
  -- Under ThreadSanitizer (make tsan preloads it) every lock costs tens of
  -- times more: a quarter of the messages keeps each case well inside
  -- run()'s bound on a loaded machine.
  local tsan = (os.getenv("LD_PRELOAD") or ""):find("libtsan", 1, true)
  local N = tsan and 25000 or 100000

  it("4 tasks x " .. N .. " messages through capacity 16 into a worker",
     function()
    local ch = mc.MessageChannel({ capacity = 16 })
    local w = mc.Worker([[
local mc = require "messagechannel"
local port, n = mc.workerData.port, mc.workerData.n
local last, total, bad = {}, 0, nil
while total < 4 * n do
  local ev = port:receive()
  if not ev then break end
  local k, i = ev.data[1], ev.data[2]
  if i ~= (last[k] or 0) + 1 and not bad then
    bad = "writer " .. k .. ": " .. i .. " after " .. tostring(last[k])
  end
  last[k] = i
  total = total + 1
end
mc.parentPort:postMessage({ total = total, bad = bad or false })
]], { eval = true, data = { port = ch.port2, n = N },
      transfer = { ch.port2 } })
    local result, failed = nil, {}
    w.onmessage = function(e) result = e.data end
    w.onerror = function(e) failed[#failed + 1] = tostring(e.error) end
    local posted = { 0, 0, 0, 0 }
    for k = 1, 4 do
      mc.spawn(function()
        for i = 1, N do
          if ch.port1:postMessage({ k, i }) then posted[k] = posted[k] + 1 end
        end
      end)
    end
    run()
    assert.are.same({}, failed)
    assert.are.same({ N, N, N, N }, posted)
    assert.are.same({ total = 4 * N, bad = false }, result)
  end)

  it("4 worker writers, each through capacity 16, into mc.receive",
     function()
    local ports, codes = {}, {}
    for k = 1, 4 do
      local ch = mc.MessageChannel({ capacity = 16 })
      ports[k] = ch.port2
      local w = mc.Worker([[
local mc = require "messagechannel"
local port, n, k = mc.workerData.port, mc.workerData.n, mc.workerData.k
for i = 1, n do
  assert(port:postMessage({ k, i }))
  assert(port:pending() == 0)
end
port:close()
]], { eval = true, data = { port = ch.port1, n = N, k = k },
      transfer = { ch.port1 } })
      w.onexit = function(e) codes[k] = e.code end
    end
    local last, total, bad, peak = {}, 0, nil, 0
    while true do
      local ev, port = mc.receive(ports)
      if not ev then
        assert.are.equal("closed", port)
        break
      end
      for k = 1, 4 do
        local p = ports[k]:pending()
        if p > peak then peak = p end
      end
      local k, i = ev.data[1], ev.data[2]
      if port ~= ports[k] then bad = bad or "message on the wrong port" end
      if i ~= (last[k] or 0) + 1 then
        bad = bad or ("writer " .. k .. ": " .. i .. " after "
                      .. tostring(last[k]))
      end
      last[k] = i
      total = total + 1
    end
    run()
    assert.are.same({ 0, 0, 0, 0 }, codes)
    assert.is_nil(bad)
    assert.are.equal(4 * N, total)
    assert.is_true(peak <= 16, "a port held " .. peak .. " messages")
  end)
end)
