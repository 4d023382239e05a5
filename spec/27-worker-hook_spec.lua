-- terminate() and the coroutine a worker runs (README, w:terminate()): a
-- busy loop is stopped wherever it runs, at the top of the worker's file,
-- in a listener, or in a coroutine resumed with coroutine.resume or called
-- through coroutine.wrap, however deep, and a loop that catches the error
-- is stopped again. The worker wraps coroutine.resume and coroutine.wrap
-- to know which coroutine it runs; their results and error messages stay
-- those of the main thread's. Nothing waits on time: every wait is a
-- message or an exit under mc.run with a long timeout.

local mc = require "messagechannel"

local TIMEOUT = 30

local function run()
  assert.is_true(mc.run(TIMEOUT), "mc.run did not become idle")
end

-- Starts a worker from source; records its messages, errors and exit, and
-- terminates it at its first message.
local function start_and_stop(body)
  local w = mc.Worker('local mc = require "messagechannel"\n' .. body,
                      { eval = true })
  local got = { messages = {}, errors = {} }
  w.onmessage = function(e)
    got.messages[#got.messages + 1] = e.data
    if #got.messages == 1 then w:terminate() end
  end
  w.onerror = function(e) got.errors[#got.errors + 1] = tostring(e.error) end
  w.onexit = function(e) got.code = e.code end
  return w, got
end

local function assert_stopped(got)
  assert.are.equal(1, got.code)
  assert.are.same({}, got.errors)
  assert.are.equal("started", got.messages[1])
end

local BUSY = "local x = 0\nwhile true do x = x + 1 end\n"

local CASES = {
  { "at the top of the worker's file", [[
mc.parentPort:postMessage("started")
]] .. BUSY },
  { "in a listener", [[
local port = mc.parentPort
port.onmessage = function()
  port:postMessage("started")
]] .. BUSY .. [[
end
]], true },
  { "in a coroutine resumed with coroutine.resume", [[
local co = coroutine.create(function()
  mc.parentPort:postMessage("started")
]] .. BUSY .. [[
end)
coroutine.resume(co)
]] },
  { "in a function made by coroutine.wrap", [[
coroutine.wrap(function()
  mc.parentPort:postMessage("started")
]] .. BUSY .. [[
end)()
]] },
  { "three coroutines deep", [[
local inner = coroutine.wrap(function()
  mc.parentPort:postMessage("started")
]] .. BUSY .. [[
end)
local middle = coroutine.create(function() inner() end)
coroutine.wrap(function() coroutine.resume(middle) end)()
]] },
  { "after the coroutine that loops yields back", [[
local co = coroutine.wrap(function()
  while true do coroutine.yield() end
end)
mc.parentPort:postMessage("started")
while true do co() end
]] },
  { "in a loop that catches the error in a coroutine", [[
local co = coroutine.create(function()
  mc.parentPort:postMessage("started")
  while true do
    pcall(function()
]] .. BUSY .. [[
    end)
  end
end)
while true do coroutine.resume(co) end
]] },
  { "in a loop that makes a new coroutine each time it is stopped", [[
mc.parentPort:postMessage("started")
while true do
  local co = coroutine.create(function()
]] .. BUSY .. [[
  end)
  coroutine.resume(co)
end
]] },
}

describe("terminate() stops a busy loop #threads", function()
  for _, case in ipairs(CASES) do
    it(case[1], function()
      local w, got = start_and_stop(case[2])
      if case[3] then w:postMessage("go") end
      run()
      assert_stopped(got)
    end)
  end
end)

-- Runs PROBE (a chunk named "=probe") here and in a worker, and returns
-- both lists of what it found.
local PROBE = [=[
local out = {}
local function add(...) out[#out + 1] = table.concat({ ... }, "|") end
local function probe(f, ...)
  local r = { pcall(f, ...) }
  for i = 1, #r do r[i] = tostring(r[i]) end
  add(table.concat(r, ","))
end
local dead = coroutine.wrap(function() return 1 end)
dead()
probe(dead)
probe(coroutine.wrap(function() error("boom") end))
probe(coroutine.wrap(function() error("boom", 0) end))
probe(coroutine.wrap(function() error(42) end))
probe(coroutine.wrap(function() error(setmetatable({}, {
  __tostring = function() return "a table" end })) end))
probe(function() local f = coroutine.wrap(function() error("x") end) f() end)
probe(coroutine.wrap(function(a, b) local c = coroutine.yield(a + b)
                                     return c * 2 end), 1, 2)
local gen = coroutine.wrap(function(a, b) local c = coroutine.yield(a + b)
                                          return c * 2, "done" end)
add(gen(1, 2))
add(gen(5))
probe(coroutine.wrap)
probe(coroutine.wrap, 1)
probe(coroutine.resume)
probe(coroutine.resume, 1)
local co = coroutine.create(function(a) local b = coroutine.yield(a)
                                        error("late " .. b) end)
probe(coroutine.resume, co, "first")
probe(coroutine.resume, co, "second")
probe(coroutine.resume, co)
add(coroutine.status(co))
add(tostring(coroutine.isyieldable and coroutine.isyieldable()))
add(tostring(select("#", coroutine.resume(coroutine.create(function()
  return nil, nil, 3 end)))))
return out
]=]

describe("coroutine.resume and coroutine.wrap in a worker #threads",
         function()
  it("give the results and error messages they give in the main thread",
     function()
    local load = rawget(_G, "loadstring") or load
    local here = assert(load(PROBE, "=probe"))()
    local w = mc.Worker([[
local mc = require "messagechannel"
local load = rawget(_G, "loadstring") or load
mc.parentPort:postMessage(assert(load(mc.workerData, "=probe"))())
]], { eval = true, data = PROBE })
    local there
    w.onmessage = function(e) there = e.data end
    local code
    w.onexit = function(e) code = e.code end
    run()
    assert.are.equal(0, code)
    assert.are.same(here, there)
  end)
end)
