-- The tasks waiting in receive at one port, and the posts waiting for
-- room at one bounded port, were arrays taken from the front: each
-- message handed moved every later waiter down, so n waiters at one port
-- cost O(n^2) (40,000 receivers took 8.9 s; now 0.28 s). They are queues
-- now. These cases hold the rules the queue must keep, at sizes where the
-- front moves far: first come, first served (API.md 6.3), a waiter that
-- leaves from the middle (mc.receive served by another port, a timeout),
-- the close handed to every waiter in order (3.4), and a queue that
-- empties and fills again.

local helper = require "spec.helper"
local mc = require "messagechannel"

local N = 2000

-- Runs until idle: a bound far above what the cases take, for loaded
-- machines (helper.run's is 5 s).
local function run()
  assert.is_true(mc.run(120), "mc.run(120) did not become idle")
end

describe("regress: many waiters at one port", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  it("receivers get the messages in the order they began to wait", function()
    local ch = mc.MessageChannel()
    local got = {}
    for i = 1, N do
      mc.spawn(function() got[i] = ch.port2:receive().data end)
    end
    mc.step()
    for i = 1, N do ch.port1:postMessage(i) end
    run()
    for i = 1, N do assert.equal(i, got[i]) end
    assert.same({}, errors)
    ch.port1:close()
  end)

  it("a mc.receive waiter served by its other port leaves the middle of the queue", function()
    local a, b = mc.MessageChannel(), mc.MessageChannel()
    local plain, many = {}, {}
    for i = 1, N do
      if i % 3 == 0 then
        mc.spawn(function()
          local ev, from = mc.receive({ a.port2, b.port2 })
          many[#many + 1] = { i, ev.data, from == b.port2 }
        end)
      else
        mc.spawn(function()
          local data = a.port2:receive().data
          plain[#plain + 1] = { i, data }
        end)
      end
    end
    mc.step()
    local k = 0
    for _ = 3, N, 3 do k = k + 1; b.port1:postMessage(k) end
    run()
    assert.equal(k, #many)
    for j, m in ipairs(many) do assert.same({ 3 * j, j, true }, m) end
    local n = 0
    for i = 1, N do if i % 3 ~= 0 then n = n + 1; a.port1:postMessage(n) end end
    run()
    assert.equal(n, #plain)
    local j = 0
    for i = 1, N do
      if i % 3 ~= 0 then
        j = j + 1
        assert.same({ i, j }, plain[j])
      end
    end
    assert.same({}, errors)
    a.port1:close()
    b.port1:close()
  end)

  it("receivers whose timeout passed leave the queue; the others keep their order", function()
    local ch = mc.MessageChannel()
    local got, timed = {}, 0
    local N = 1000  -- luacheck: ignore 431 (each leaves from the middle)
    for i = 1, N do
      mc.spawn(function()
        local ev, why = ch.port2:receive(i % 2 == 0 and 0.001 or nil)
        if ev then got[#got + 1] = { i, ev.data } else
          assert.equal("timeout", why)
          timed = timed + 1
        end
      end)
    end
    mc.step()
    while timed < N / 2 do mc.sleep(0.001) end
    for i = 1, N / 2 do ch.port1:postMessage(i) end
    run()
    assert.equal(N / 2, #got)
    for j = 1, N / 2 do assert.same({ 2 * j - 1, j }, got[j]) end
    assert.same({}, errors)
    ch.port1:close()
  end)

  it("a close reaches every waiter, in order", function()
    local ch = mc.MessageChannel()
    local order = {}
    for i = 1, N do
      mc.spawn(function()
        local ev, why = ch.port2:receive()
        assert.is_nil(ev)
        assert.equal("closed", why)
        order[#order + 1] = i
      end)
    end
    mc.step()
    ch.port1:close()
    run()
    assert.equal(N, #order)
    for i = 1, N do assert.equal(i, order[i]) end
    assert.same({}, errors)
  end)

  it("posts waiting for room are sent in the order they waited", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    ch.port1:postMessage(0)
    local done = 0
    for i = 1, N do
      mc.spawn(function()
        assert.is_true(ch.port1:postMessage(i))
        done = done + 1
      end)
    end
    mc.step()
    local seen = {}
    mc.spawn(function()
      for i = 0, N do seen[i + 1] = ch.port2:receive().data end
    end)
    run()
    assert.equal(N, done)
    for i = 0, N do assert.equal(i, seen[i + 1]) end
    assert.same({}, errors)
    ch.port1:close()
  end)

  it("a queue that never empties keeps its order across many rounds", function()
    local ch = mc.MessageChannel()
    local got = {}
    local rounds = 20000
    -- Two receivers take turns: one always waits while the other takes.
    for r = 1, 2 do
      mc.spawn(function()
        while true do
          local ev = ch.port2:receive()
          if not ev then return end
          got[#got + 1] = { r, ev.data }
        end
      end)
    end
    mc.step()
    for i = 1, rounds do
      ch.port1:postMessage(i)
      mc.step()
    end
    ch.port1:close()
    run()
    assert.equal(rounds, #got)
    for i = 1, rounds do assert.same({ 2 - i % 2, i }, got[i]) end
    assert.same({}, errors)
  end)
end)
