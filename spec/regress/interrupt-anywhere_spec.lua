-- regress: an error raised by a hook (an instruction limit, the
-- standalone interpreter's Ctrl-C) at an instruction of the scheduler's
-- own Lua code left it half-changed. Found by fault injection, a kind
-- with many members:
-- - mc.run() raised "cannot be called while the scheduler is running"
--   forever (the loop's mark was cleared after its pcall returned);
-- - the timer heap and the pool of runners, whose moves were several
--   stores, lost an entry or read a hole ("attempt to index a nil value");
-- - a sleeping task, a receive(timeout) or a post waiting for room was
--   woken and its timer taken out, but its wait not marked done: it
--   waited for good;
-- - a run-queue token left the queue before the work it stood for was
--   noted: a spawned task never started, a message taken for a listener
--   or a waiting receive was lost, a close never reached its waiters, the
--   listeners after an interrupted one never got the message;
-- - a post sent after waiting for room never woke its task;
-- - a wait registered just before its yield stayed registered: it took
--   the next message, which was lost;
-- - the counts of live workers and of their ends went wrong for good;
-- - a listener added or removed was in the listener table while the port
--   did not know it (its messages held), or a `once` listener was removed
--   without its call;
-- - a Worker made as the error landed ran unwatched (its error lost), a
--   worker's end a poll returned was never seen, its error event came
--   twice or not at all;
-- - on Lua 5.1 and LuaJIT a task was resumed twice (a post that waited
--   for room returned false once sent);
-- - a timer's wake was queued before the timer was marked fired: a
--   listener that slept was woken twice, its runner resumed in the pool
--   or by itself ("cannot resume non-suspended coroutine");
-- - on 5.3 and 5.4 a listener that had yielded and returned was still
--   marked as called, so an interrupt after it was taken for its error;
-- - a close that came while a listener of its port waited was lost: it
--   was neither held for the listeners nor handed to them (scenario
--   held; it may still come before that listener returns, README
--   Signals).
--
-- Here, in a child process, every coroutine the module makes has a count
-- hook that raises "INT" at the N-th instruction of the module's own code
-- (never in the scenario's tasks or listeners), for each N from 1 to the
-- end of the scenario (one N in MC_INTERRUPT_EVERY where that is set:
-- see below). After each: mc.run() runs again, and what the scenario did
-- must be whole: each message delivered once and in order, each task
-- finished, each wait ended as it should, no error but the interrupt's.
-- The interrupt itself leaves mc.run() (as Ctrl-C's does), or is the
-- error of the listener whose call it preceded (then that one message
-- goes to messageerror, or to mc.onerror).

local helper = require "spec.helper"

local CHILD = [=[
local which = ...
local user = setmetatable({}, { __mode = "k" })  -- the scenario's tasks
local budget, fired, where = 0, false, nil
local budget_left = 0  -- budget when the last run ended
local getinfo, running = debug.getinfo, coroutine.running
-- whether a function is the module's own code, kept per function: the
-- hook runs at every instruction, and its source is the costly part
local own = setmetatable({}, { __mode = "k" })
local function hook()
  if budget <= 0 or user[running() or false] then return end
  local f = getinfo(2, "f").func
  local mine = own[f]
  if mine == nil then
    mine = getinfo(2, "S").source:find("messagechannel/", 1, true) ~= nil
    own[f] = mine
  end
  if mine then
    budget = budget - 1
    budget_left = budget
    if budget == 0 then
      fired = true
      local i = getinfo(2, "Sl")
      where = i.short_src .. ":" .. tostring(i.currentline)
      error("INT", 0)
    end
  end
end
local create = coroutine.create
coroutine.create = function(f)
  local co = create(f)
  debug.sethook(co, hook, "", 1)
  return co
end
if rawget(_G, "jit") then jit.off() end  -- hooks run in interpreted code
local mc = require "messagechannel"
local core = require "messagechannel.core"
local errs = {}
mc.onerror = function(e) errs[#errs + 1] = tostring(e) end
local function spawn(f) user[mc.spawn(f)] = true end
-- Adds the data of what is queued at port to list got.
local function drain(port, got)
  while true do
    local ev = port:receive(0)
    if not ev then return end
    got[#got + 1] = ev.data
  end
end

local S = {}

S.sleep = function()
  local done = 0
  for i = 1, 5 do
    spawn(function() mc.sleep(i % 2 == 0 and 0 or 1e-4 * i); done = done + 1 end)
  end
  return function() return done == 5, "done " .. done end
end

S.receive = function()
  local got, finished = {}, 0
  local ch = mc.MessageChannel()
  for i = 1, 4 do
    spawn(function()
      local ev = ch.port2:receive(i % 2 == 0 and 1e-4 or 1)
      if ev then got[#got + 1] = ev.data end
      finished = finished + 1
    end)
  end
  spawn(function()
    mc.sleep(3e-4)
    ch.port1:postMessage(1)
    ch.port1:postMessage(2)
  end)
  return function()
    drain(ch.port2, got)
    ch.port1:close()
    table.sort(got)
    local s = table.concat(got, ",")
    return finished == 4 and s == "1,2", "finished " .. finished .. " got " .. s
  end
end

S.listen = function()
  local got, lost = {}, 0
  local ch = mc.MessageChannel()
  ch.port2.onmessage = function(ev) got[#got + 1] = ev.data end
  ch.port2.onmessageerror = function(ev)
    lost = lost + 1
    errs[#errs + 1] = tostring(ev.error)
  end
  for i = 1, 8 do ch.port1:postMessage(i) end
  return function(attributed)
    ch.port1:close()
    local k = 1
    for i = 1, 8 do if got[k] == i then k = k + 1 end end
    local s = table.concat(got, ",")
    -- each message once, in order; one whose listener's call the
    -- interrupt preceded (or followed, before the runner noted the
    -- return: 5.1, 5.2) goes to messageerror too
    return k == #got + 1 and #got + lost >= 8 and #got >= 8 - attributed
      and lost <= attributed, s
  end
end

S.listeners = function()
  local a, b = {}, {}
  local ch = mc.MessageChannel()
  ch.port2:addEventListener("message", function(ev) a[#a + 1] = ev.data end)
  ch.port2:addEventListener("message", function(ev) b[#b + 1] = ev.data end)
  ch.port2:start()
  for i = 1, 4 do ch.port1:postMessage(i) end
  return function(attributed)
    ch.port1:close()
    local s = table.concat(a, ",") .. "/" .. table.concat(b, ",")
    local whole = s == "1,2,3,4/1,2,3,4"
    return whole or attributed == 1 and #a + #b >= 7, s
  end
end

S.close = function()
  local ch = mc.MessageChannel()
  local out, closes = {}, 0
  ch.port2.onclose = function() closes = closes + 1 end
  for _ = 1, 3 do
    spawn(function()
      local _, why = ch.port2:receive()
      out[#out + 1] = tostring(why)
    end)
  end
  spawn(function() mc.sleep(1e-4); ch.port1:close() end)
  return function(attributed)
    local s = table.concat(out, ",")
    return s == "closed,closed,closed" and closes + attributed >= 1
      and closes <= 1, s .. " closes " .. closes
  end
end

-- A close that comes while a listener of its port waits is held until
-- the listener returns: it comes once (not before, but for the window
-- README Signals names).
S.held = function()
  local q = mc.MessageChannel()
  local log, closes = {}, 0
  do
    local ch = mc.MessageChannel()
    ch.port2.onmessage = function(ev)
      log[#log + 1] = "m" .. ev.data
      local r, why = q.port2:receive()
      log[#log + 1] = "r" .. tostring(r and r.data or why)
    end
    ch.port2.onclose = function() closes = closes + 1 end
    ch.port1:postMessage(1)
    spawn(function()
      mc.sleep(1e-4)
      ch.port1:close()
      mc.sleep(1e-4)
      q.port1:postMessage("x")
    end)
  end
  return function(attributed)
    q.port1:close()
    local s = table.concat(log, ",")
    -- attributed: to the message's listener (never called) or the close's
    return (s:sub(1, 2) == "m1" or attributed == 1)
      and closes + attributed >= 1 and closes <= 1, s .. " closes " .. closes
  end
end

S.bounded = function()
  local ch = mc.MessageChannel({ capacity = 1 })
  local got, res = {}, {}
  spawn(function()
    for i = 1, 4 do
      local ok, why = ch.port1:postMessage(i, { timeout = i == 3 and 0 or 0.05 })
      res[i] = ok and "ok" or tostring(why)
    end
  end)
  spawn(function()
    for _ = 1, 4 do
      mc.sleep(1e-4)
      local ev = ch.port2:receive(0.01)
      if ev then got[#got + 1] = ev.data end
    end
  end)
  return function()
    drain(ch.port2, got)
    ch.port1:close()
    local sent = {}
    for i = 1, 4 do if res[i] == "ok" then sent[#sent + 1] = i end end
    local g, s = table.concat(got, ","), table.concat(sent, ",")
    return #res == 4 and g == s, "got " .. g .. " sent " .. s
  end
end

S.many = function()
  local a, b = mc.MessageChannel(), mc.MessageChannel()
  local got, fin = {}, 0
  for _ = 1, 3 do
    spawn(function()
      local ev = mc.receive({ a.port2, b.port2 }, 2e-3)
      if ev then got[#got + 1] = ev.data end
      fin = fin + 1
    end)
  end
  spawn(function()
    mc.sleep(1e-4)
    a.port1:postMessage("a")
    b.port1:postMessage("b")
  end)
  return function()
    drain(a.port2, got)
    drain(b.port2, got)
    a.port1:close()
    b.port1:close()
    table.sort(got)
    local s = table.concat(got, ",")
    return s == "a,b" and fin == 3, "got " .. s .. " fin " .. fin
  end
end

-- Listeners that wait (sleep, receive with a timeout): their timers fire
-- once, and the runners that ran them are woken once (a second wake
-- resumed a runner back in the pool, or the turn's runner itself).
S.timeouts = function()
  local a, b, q = mc.MessageChannel(), mc.MessageChannel(), mc.MessageChannel()
  local log = {}
  a.port2.onmessage = function(ev)
    mc.sleep(1e-4)
    log[#log + 1] = "a" .. ev.data
  end
  b.port2.onmessage = function(ev)
    q.port2:receive(1e-4)
    log[#log + 1] = "b" .. ev.data
  end
  a.port1:postMessage(1)
  b.port1:postMessage(1)
  a.port1:postMessage(2)
  return function(attributed)
    a.port1:close()
    b.port1:close()
    q.port1:close()
    local seen, s = {}, table.concat(log, ",")
    for _, x in ipairs(log) do
      if seen[x] then return false, s end  -- a call twice
      seen[x] = true
    end
    if seen.a1 and seen.a2 and s:find("a2", 1, true) < s:find("a1", 1, true) then
      return false, s
    end
    return #log >= 3 - attributed, s
  end
end

-- A listener dispatchEvent calls from a listener, waiting there (its own
-- coroutine, whose yields pass on): a wait the interrupt cut short before
-- its yield is no wait of a closed coroutine (Lua 5.4) at the next turn.
S.nested = function()
  local ch = mc.MessageChannel()
  local p = ch.port2
  local log = {}
  p:addEventListener("ping", function()
    mc.sleep(1e-4)
    log[#log + 1] = "ping"
  end)
  p.onmessage = function(ev)
    p:dispatchEvent({ type = "ping" })
    log[#log + 1] = "m" .. ev.data
  end
  ch.port1:postMessage(1)
  ch.port1:postMessage(2)
  return function(attributed)
    ch.port1:close()
    local s = table.concat(log, ",")
    local pings, ms = 0, {}
    for _, x in ipairs(log) do
      if x == "ping" then pings = pings + 1 else ms[#ms + 1] = x end
    end
    table.sort(ms)  -- a listener that waits lets the next message by
    local m = table.concat(ms, ",")
    -- each message's listener ran whole, or took the interrupt (its
    -- ping's, or its own call's, which then may lack its ping)
    return pings <= 2 and pings >= #ms - attributed
      and (m == "m1,m2" or attributed == 1 and (m == "m1" or m == "m2")), s
  end
end

-- Listener changes (Lua, from inside a listener): U and C's view of it
-- change together. A message is delivered when U has a listener for it,
-- and stays queued when it has none; a step the interrupt cut is redone
-- as a program would (each step idempotent), and then the listeners are
-- the ones the steps leave.
S.handlers = function()
  local got, stage = {}, 0
  local ch = mc.MessageChannel()
  local p = ch.port2
  local function B(ev) got[#got + 1] = "b" .. ev.data end
  local function C(ev) got[#got + 1] = "c" .. ev.data end
  p.onmessage = function(ev)
    got[#got + 1] = "h" .. ev.data
    p.onmessage = nil
    stage = 1
    p:addEventListener("message", B)
    stage = 2
    p:removeEventListener("message", B)
    stage = 3
    p.onmessage = C
    stage = 4
  end
  ch.port1:postMessage(1)
  return function(attributed)
    local lists = core.uservalue(p).lists
    local listened = lists and lists.message and #lists.message > 0
    local n = #got
    ch.port1:postMessage(2)
    mc.run(30)
    local took, queued = #got - n, p:receive(0)
    if listened and (took ~= 1 or queued) or not listened and (took ~= 0 or not queued) then
      return false, "listened " .. tostring(listened) .. " took " .. took
        .. " queued " .. tostring(queued and queued.data)
    end
    if stage < 1 then p.onmessage = nil end
    if stage < 2 then p:addEventListener("message", B) end
    if stage < 3 then p:removeEventListener("message", B) end
    if stage < 4 then p.onmessage = C end
    ch.port1:postMessage(3)
    mc.run(30)
    ch.port1:close()
    local s = table.concat(got, ",")
    return got[#got] == "c3" and got[#got - 1] ~= "c3" and (got[1] == "h1"
      or attributed == 1), s
  end
end

-- A `once` listener is called once (or its call took the interrupt),
-- never removed unseen.
S.once = function()
  local o, h = {}, {}
  local ch = mc.MessageChannel()
  local p = ch.port2
  p:addEventListener("message", function(ev) o[#o + 1] = ev.data end,
                     { once = true })
  p:addEventListener("message", function(ev) h[#h + 1] = ev.data end)
  p:start()
  for i = 1, 3 do ch.port1:postMessage(i) end
  return function(attributed)
    ch.port1:close()
    local s = table.concat(o, ",") .. "/" .. table.concat(h, ",")
    local k = 1
    for i = 1, 3 do if h[k] == i then k = k + 1 end end
    return #o <= 1 and (o[1] == nil or o[1] == 1) and k == #h + 1
      and #o + #h >= 4 - attributed, s
  end
end

-- A Worker made by a listener: a worker whose thread started (it took
-- the buffer of its transfer list) is watched, even when the constructor
-- raised: mc.run() waits for its end, and its uncaught error is reported,
-- once (also when the interrupt lands in the report: its mark and its
-- call of mc.onerror are one step).
S.worker = function()
  local ch = mc.MessageChannel()
  local buf = mc.Buffer("x")
  ch.port2.onmessage = function()
    mc.Worker('error("boom", 0)', { eval = true, data = buf,
                                    transfer = { buf } })
  end
  ch.port1:postMessage(1)
  return function(attributed)
    ch.port1:close()
    local booms = 0
    for _, e in ipairs(errs) do
      if e:find("boom", 1, true) then booms = booms + 1 end
    end
    local want = buf.detached and 1 or 0
    return booms == want, "booms " .. booms
      .. " detached " .. tostring(buf.detached), booms
  end
end

-- Runs the scenario from a clean state (what earlier runs left to
-- collect, ports whose close a finalizer queues, would add to this run's
-- instructions), with the interrupt at instruction N of the module's
-- code; returns its check, whether mc.run() returned, its error, and
-- whether the interrupt fired.
local function run(N)
  collectgarbage()
  collectgarbage()
  assert(mc.run(30), "not idle before the run")
  for k in pairs(errs) do errs[k] = nil end
  local check = S[which]()
  fired, budget = false, N
  debug.sethook(hook, "", 1)
  local ok, err = pcall(mc.run)
  debug.sethook()
  budget = 0
  return check, ok, err, fired
end

-- Every instruction of a run without the interrupt, one by one; beyond
-- it, in runs that took longer (a worker's thread that was slow to end),
-- every 7th, up to three times as far. With MC_INTERRUPT_EVERY=k, one
-- instruction in k, from the MC_INTERRUPT_FROM-th (1 to k): the runs
-- under a sanitizer or Lua's API checks, which take several times as
-- long, share the sweep (Makefile: check, apicheck).
local function setting(name)  -- a whole number >= 1, 1 when unset
  return math.max(1, math.floor(tonumber(os.getenv(name) or "") or 1))
end
local every, from = setting("MC_INTERRUPT_EVERY"), setting("MC_INTERRUPT_FROM")
local BIG = 2 ^ 40
local _, ok0 = run(BIG)
local length = BIG - budget_left
assert(ok0 and #errs == (which == "worker" and 1 or 0), "the scenario alone")
assert(mc.run(30), "not idle after the scenario")

io.stdout:setvbuf("line")
local bad, n, N = 0, 0, from - every
while true do
  N = N + (N < length and every or 7)
  if N > 3 * length then break end
  local check, ok, err = run(N)
  if not fired then break end
  n = N
  local ok2, err2 = pcall(mc.run, 30)
  -- the interrupt: out of mc.run(), or a listener's error
  local attributed = 0
  for _, e in ipairs(errs) do
    if e:find("INT", 1, true) then attributed = attributed + 1 end
  end
  local good, what, other = false, "mc.run() again: " .. tostring(err2), 0
  if ok2 and err2 == true then
    local ok3, g, w, o = pcall(check, attributed)
    good, what = ok3 and g, ok3 and w or ("check: " .. tostring(g))
    other = ok3 and o or 0  -- the errors the scenario expects
  end
  good = good and #errs == attributed + other and attributed <= 1
    and (ok and attributed == 1 or not ok and err == "INT")
  if not good then
    bad = bad + 1
    if bad <= 5 then
      io.write("bad N=", N, " at ", tostring(where), ": ", tostring(err),
               "; ", tostring(what), "; ", table.concat(errs, " | "), "\n")
    end
  end
  assert(mc.run(30), "not idle after the check")
end
io.write("swept ", n, " bad ", bad, "\n")
]=]

describe("regress: an error raised by a hook in the scheduler's own code", function()
  for _, which in ipairs({ "sleep", "receive", "listen", "listeners",
                           "bounded", "close", "many", "timeouts",
                           "nested", "handlers", "once", "worker",
                           "held" }) do
    it("at any instruction leaves it whole: " .. which, function()
      local out = helper.run_child(("local arg = { %q }\n"):format(which)
                                   .. "local function main(...)\n" .. CHILD
                                   .. "\nend\nmain(arg[1])\n", 600)
      if not out then return pending(helper.NO_CHILD) end
      local swept, bad = out:match("swept (%d+) bad (%d+)")
      assert.truthy(swept, out)
      assert.truthy(tonumber(swept) > 100, out)  -- the sweep reached the loop
      assert.are.equal("0", bad, out)
    end)
  end
end)
