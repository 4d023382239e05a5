-- terminate() and the coroutine a worker runs (README, w:terminate()): a
-- busy loop is stopped wherever it runs, at the top of the worker's file,
-- in a listener, or in a coroutine resumed with coroutine.resume or called
-- through coroutine.wrap, however deep, and a loop that catches the error
-- is stopped again. The worker wraps coroutine.resume and coroutine.wrap
-- to know which coroutine it runs; their results and error messages stay
-- those of the main thread's. Nothing waits on time: every wait is a
-- message or an exit under mc.run with a long timeout.

local helper = require "spec.helper"

local run = helper.run  -- until idle, or fails after helper.WAIT s

local workers = {}
after_each(function() helper.terminate_all(workers) end)

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

-- After a coroutine that C code resumed (cqueues') resumed another with
-- coroutine.resume and ended, the worker's main chunk runs again: the hook
-- goes there, not to the ended coroutine.
if pcall(require, "cqueues") then
  CASES[#CASES + 1] = { "after a coroutine that cqueues resumed", [[
local cqueues = require "cqueues"
local cq = cqueues.new()
cq:wrap(function()
  coroutine.resume(coroutine.create(function() end))
end)
assert(cq:loop())
cq = nil
collectgarbage()
mc.parentPort:postMessage("started")
]] .. BUSY }
end

-- Lua 5.4's coroutine.close runs a to-be-closed variable's __close in the
-- closed coroutine; one that resumes another there leaves the hook where
-- it was, not on the closed (and collected) coroutine.
if _VERSION == "Lua 5.4" and not rawget(_G, "jit") then
  CASES[#CASES + 1] = { "in a __close that coroutine.close runs", [[
local co = coroutine.create(function()
  local x <close> = setmetatable({}, { __close = function()
    mc.parentPort:postMessage("started")
]] .. BUSY .. [[
  end })
  coroutine.yield()
end)
coroutine.resume(co)
coroutine.close(co)
]] }
  CASES[#CASES + 1] = { "in a __close that coroutine.wrap runs on an error",
    [[
coroutine.wrap(function()
  local x <close> = setmetatable({}, { __close = function()
    mc.parentPort:postMessage("started")
]] .. BUSY .. [[
  end })
  error("wrapped")
end)()
]] }
  CASES[#CASES + 1] = { "after coroutine.close ran a __close that resumes",
    [[
local co = coroutine.create(function()
  local x <close> = setmetatable({}, { __close = function()
    coroutine.resume(coroutine.create(function() end))
  end })
  coroutine.yield()
end)
coroutine.resume(co)
coroutine.close(co)
co = nil
collectgarbage()
mc.parentPort:postMessage("started")
]] .. BUSY }
end

describe("terminate() stops a busy loop #threads", function()
  for _, case in ipairs(CASES) do
    it(case[1], function()
      local rec = helper.worker_stopped_at_first(workers, case[2])
      if case[3] then rec.worker:postMessage("go") end
      run()
      assert.is_nil(helper.not_stopped(rec))
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
local me
me = coroutine.create(function() return coroutine.resume(me) end)
probe(coroutine.resume, me)
local a, b
a = coroutine.create(function() return coroutine.resume(b) end)
b = coroutine.create(function() return coroutine.resume(a) end)
probe(coroutine.resume, a)
probe(coroutine.wrap(function() local w
  w = coroutine.wrap(function() return w() end)
  return w() end))
add(tostring(coroutine.isyieldable and coroutine.isyieldable()))
add(tostring(select("#", coroutine.resume(coroutine.create(function()
  return nil, nil, 3 end)))))
]=]
-- Lua 5.4's coroutine.close, and what coroutine.wrap closes on an error.
if _VERSION == "Lua 5.4" and not rawget(_G, "jit") then
  PROBE = PROBE .. [=[
local function closing(what)
  return setmetatable({}, { __close = function(_, err)
    add("closed " .. what .. " " .. tostring(err))
    if what == "raising" then error("in close", 0) end
  end })
end
probe(coroutine.wrap(function()
  local x <close> = closing("plain")
  error("wrapped")
end))
probe(coroutine.wrap(function()
  local x <close> = closing("raising")
  error("wrapped")
end))
local sus = coroutine.create(function()
  local x <close> = closing("suspended")
  coroutine.yield()
end)
coroutine.resume(sus)
probe(coroutine.close, sus)
probe(coroutine.close, sus)
local bad = coroutine.create(function()
  local x <close> = closing("raising")
  coroutine.yield()
end)
coroutine.resume(bad)
probe(coroutine.close, bad)
local selfclose
selfclose = coroutine.create(function() return coroutine.close(selfclose) end)
probe(coroutine.resume, selfclose)
local outer
outer = coroutine.create(function()
  return coroutine.resume(coroutine.create(function()
    return coroutine.close(outer) end))
end)
probe(coroutine.resume, outer)
probe(coroutine.close)
probe(coroutine.close, 1)
]=]
end
PROBE = PROBE .. "return out\n"

-- How deep coroutines nest, by coroutine.wrap and by coroutine.resume,
-- before Lua's limit of nested C calls stops them.
local DEPTH = [=[
local function by_wrap(n)
  local ok, r = pcall(coroutine.wrap(function() return by_wrap(n + 1) end))
  return ok and r or n
end
local function by_resume(n)
  local ok, r = coroutine.resume(coroutine.create(function()
    return by_resume(n + 1) end))
  return ok and r or n
end
return { by_wrap(1), by_resume(1) }
]=]

-- What the chunk `source` (named "=" .. name) returns here, and in a
-- worker (posted back), with the worker's exit code.
local function here_and_there(source, name)
  local load = rawget(_G, "loadstring") or load
  local here = assert(load(source, "=" .. name))()
  local rec = helper.record_worker(workers, ([[
local load = rawget(_G, "loadstring") or load
mc.parentPort:postMessage(assert(load(mc.workerData, "=%s"))())
]]):format(name), { data = source })
  run()
  return here, rec.messages[1], rec.code
end

describe("coroutine.resume and coroutine.wrap in a worker #threads",
         function()
  it("nest as deep as in the main thread", function()
    -- LuaJIT's workers keep the base library's functions (its hooks are
    -- global), and LuaJIT 2.1 itself crashes at about 200 nested resumes
    if type(rawget(_G, "jit")) == "table" then return end
    local here, there = here_and_there(DEPTH, "depth")
    assert.is_table(there)
    -- the worker's file runs a few C calls deeper than this spec's code
    for i = 1, 2 do
      assert.is_true(there[i] >= here[i] - 5,
                     ("%d levels in the worker, %d here"):format(there[i],
                                                                 here[i]))
    end
  end)

  it("give the results and error messages they give in the main thread",
     function()
    local here, there, code = here_and_there(PROBE, "probe")
    assert.are.equal(0, code)
    assert.are.same(here, there)
  end)
end)
