-- oomcheck: what the cases of spec/oom check once allocations work again
-- (spec/oom/host.c runs them). A check raises a string that says what is
-- not coherent; the host reports it as an inconsistency. A listener
-- records only into fields and array slots that exist before the action,
-- so that recording allocates nothing: a listener that raised out of
-- memory after it counted would look like a lost event. For the same
-- reason an action stores its results only into fields its setup made.

local mc = require "messagechannel"

local M = {}

local error, pairs, pcall, rawget, tostring, type = error, pairs, pcall,
  rawget, tostring, type
local format = string.format
local concat = table.concat

-- How long mc.run() may take to go idle before it counts as a hang.
M.BOUND = tonumber(os.getenv("OOM_BOUND")) or 5

function M.fail(fmt, ...)
  error(format(fmt, ...), 0)
end

function M.expect(cond, fmt, ...)
  if not cond then M.fail(fmt, ...) end
end

-- What an action that raised raised must be: a string.
function M.is_error(err)
  return type(err) == "string"
end

-- Runs the scheduler until idle: an error out of it, or a timeout, is a
-- finding.
function M.run(what)
  local ok, r = pcall(mc.run, M.BOUND)
  if not ok then M.fail("%s: mc.run() raised: %s", what, tostring(r)) end
  if r ~= true then
    M.fail("%s: mc.run(%s) did not return: a hang", what, M.BOUND)
  end
end

-- A table of n zeros: counters a listener bumps without allocating.
function M.zeros(n)
  local t = {}
  for i = 1, n do t[i] = 0 end
  return t
end

-- A recorder of deliveries of the messages 1..n (their data): rec.count[i]
-- is how many times message i arrived, rec.order the data in arrival
-- order (rec.n of them), rec.errors[i] the messageerror events for i, and
-- rec.other the deliveries of anything else.
function M.recorder(n, room)
  local rec = { count = M.zeros(n), order = M.zeros(room or 4 * n), n = 0,
                errors = M.zeros(n), other = 0, closes = 0, reported = 0,
                close_after = -1 }
  local count, order, errors = rec.count, rec.order, rec.errors
  function rec.on_message(ev)
    local i = ev.data
    if count[i] then
      count[i] = count[i] + 1
      local k = rec.n + 1
      rec.n = k
      if order[k] then order[k] = i end
    else
      rec.other = rec.other + 1
    end
  end
  -- a message that could not be decoded has no data: its messageerror
  -- counts as a report
  function rec.on_error(ev)
    local i = ev.data
    if errors[i] then
      errors[i] = errors[i] + 1
    else
      rec.reported = rec.reported + 1
    end
  end
  function rec.on_close()
    rec.closes = rec.closes + 1
  end
  function rec.on_report()
    rec.reported = rec.reported + 1
  end
  return rec
end

-- Records the events of Worker w in c: its messages in c.rec (a recorder
-- of 4, made unless c has one), c.exits and c.code, c.errors and c.error;
-- reports to mc.onerror count in c.rec.reported.
function M.watch_worker(w, c)
  c.rec = c.rec or M.recorder(4)
  c.exits, c.errors, c.code, c.error = 0, 0, false, false
  w.onmessage = c.rec.on_message
  w.onmessageerror = c.rec.on_error
  w.onexit = function(ev)
    c.exits = c.exits + 1
    c.code = ev.code
  end
  w.onerror = function(ev)
    c.errors = c.errors + 1
    c.error = ev.error
  end
  mc.onerror = c.rec.on_report
end

local function show(t, n)
  local s = {}
  for i = 1, n or #t do s[i] = tostring(t[i]) end
  return "{" .. concat(s, ",") .. "}"
end
M.show = show

-- Every message 1..n was delivered exactly once, in order, unless it is
-- reported: a messageerror for it, or (when `lost_ok` counts them) as
-- many reports to mc.onerror as messages missing.
function M.delivered_once(rec, what, n, lost_ok)
  local missing = 0
  for i = 1, n do
    local c = rec.count[i]
    M.expect(c <= 1, "%s: message %d was delivered %d times", what, i, c)
    M.expect(rec.errors[i] <= 1, "%s: message %d got %d messageerror events",
             what, i, rec.errors[i])
    if c == 0 and rec.errors[i] == 0 then missing = missing + 1 end
  end
  M.expect(missing == 0 or (lost_ok and missing <= lost_ok),
           "%s: %d of %d messages never arrived and no error said so "
           .. "(counts %s)", what, missing, n, show(rec.count, n))
  local last = 0
  for k = 1, rec.n do
    local i = rec.order[k]
    M.expect(i > last, "%s: messages arrived out of order: %s", what,
             show(rec.order, rec.n))
    last = i
  end
  M.expect(rec.other == 0, "%s: %d unexpected deliveries", what, rec.other)
end

-- Takes every message queued at port now, with receive(0); returns their
-- data and why it stopped.
function M.drain(port, what)
  local got = {}
  while true do
    local ok, ev, why = pcall(port.receive, port, 0)
    if not ok then M.fail("%s: receive(0) raised: %s", what, tostring(ev)) end
    if not ev then return got, why end
    got[#got + 1] = ev.data
  end
end

-- After mc.run() went idle, a port that is started and has a message
-- listener holds no message: none was stranded without its token.
function M.idle(port, what)
  local got = M.drain(port, what)
  M.expect(#got == 0, "%s: messages %s wait at a started port with a "
           .. "listener after mc.run() went idle", what, show(got))
end

-- The next message at port within the bound (another thread may post it):
-- its event, or nil and why not.
function M.receive(port, what, timeout)
  local ok, ev, why = pcall(port.receive, port, timeout or M.BOUND)
  if not ok then M.fail("%s: receive() raised: %s", what, tostring(ev)) end
  return ev, why
end

local fresh = 0

-- A fresh message from a reaches b once, and nothing else was queued at
-- b before it: b's queue is read with receive, so b must hold no listener
-- that takes messages first (or the scheduler must not run meanwhile).
function M.delivers(a, b, what)
  fresh = fresh + 1
  local token = "fresh " .. fresh
  local ok, r, why = pcall(a.postMessage, a, token)
  M.expect(ok, "%s: postMessage of a fresh message raised: %s", what,
           tostring(r))
  M.expect(r == true, "%s: postMessage of a fresh message gave %s, %s", what,
           tostring(r), tostring(why))
  local got = M.drain(b, what)
  M.expect(#got == 1 and got[1] == token, "%s: a fresh message posted "
           .. "alone arrived as %s", what, show(got))
end

-- Port p is detached or closed: postMessage returns false.
function M.dead(p, what)
  local ok, r = pcall(p.postMessage, p, "after")
  M.expect(ok and r == false, "%s: postMessage on a port that should be "
           .. "closed or detached gave %s", what, tostring(r))
end

-- Deep equality of plain data (tables, strings, numbers, booleans),
-- keeping shared references shared.
function M.same(a, b, seen)
  if type(a) ~= "table" or type(b) ~= "table" then
    if a ~= a then return b ~= b end
    return a == b
  end
  seen = seen or {}
  if seen[a] then return seen[a] == b end
  seen[a] = b
  for k, v in pairs(a) do
    if type(k) ~= "table" and not M.same(v, rawget(b, k), seen) then
      return false
    end
  end
  for k in pairs(b) do
    if type(k) ~= "table" and rawget(a, k) == nil then return false end
  end
  return true
end

-- A nested value with shared references, a cycle, strings and numbers.
function M.sample(depth)
  local shared = { "shared", 1.5, true }
  local v = { a = { 1, 2, 3, "x" }, b = shared, c = shared,
              s = string.rep("z", 100), n = -0.25, i = 7, f = false }
  v.self = v
  local t = v
  for i = 1, depth or 20 do
    t.next = { level = i }
    t = t.next
  end
  return v
end

return M
