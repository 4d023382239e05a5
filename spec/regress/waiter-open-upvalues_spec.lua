-- regress: on Lua 5.3 a task waiting for good in receive or mc.receive,
-- at ports nothing reaches, took one full collection more to go than on
-- any other version: three, not two. The scheduler's receive made
-- closures over its locals (the waiter, which names the task, and the
-- port), and those locals stayed captured while the task waited; Lua 5.3
-- keeps the values of an unreachable coroutine's captured locals for one
-- more cycle (lgc.c's remarkupvals). Under the automatic collector that
-- cycle came on top of the one the ports' finalizers keep, so a loop that
-- left such tasks behind grew about twice as fast (200,000 tasks: 194 MB,
-- now 27 MB at the peak).

local mc = require "messagechannel"
local helper = require "spec.helper"

local count = helper.count

-- The full collections it takes until none of the tasks make(alive)
-- noted in alive is left, once they wait.
local function collections(make)
  local alive = setmetatable({}, { __mode = "k" })
  for _ = 1, 20 do make(alive) end
  mc.step()
  local jit = rawget(_G, "jit")  -- a compiled trace may hold a constant
  if jit then jit.flush() end
  local n = 0
  while count(alive) > 0 and n < 5 do
    collectgarbage()
    n = n + 1
  end
  return n
end

local function receive(port)
  port:receive()
end

local function receive_many(port)
  mc.receive({ port })
end

describe("regress: a task waiting at ports nothing reaches #gc", function()
  after_each(function()
    mc.run(30)
  end)

  -- two: the first finalizes the ports, whose finalizers keep what they
  -- reach for that cycle; the second frees the tasks
  it("in receive goes in two full collections", function()
    assert.equal(2, collections(function(alive)
      alive[mc.spawn(receive, mc.MessageChannel().port2)] = true
    end))
  end)

  it("in mc.receive goes in two full collections", function()
    assert.equal(2, collections(function(alive)
      alive[mc.spawn(receive_many, mc.MessageChannel().port2)] = true
    end))
  end)
end)
