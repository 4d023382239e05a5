-- Shared helpers for the messagechannel specs: version fallbacks, a
-- deterministic byte generator, a graph-aware comparison of a value with its
-- clone, deep-structure builders and the checks the decoder specs share.
-- Every walk here is iterative and raw, so it works on 200,000-level
-- structures and never runs a metamethod of the data it inspects.

local mc = require "messagechannel"

local M = {}

-- busted gives each spec file a fresh package.loaded, so a module a file
-- required is collected after it. luv cannot be loaded again into the
-- same Lua state once collected (its loop is freed, its context keeps the
-- pointer: the next uv.new_poll crashes), so the first load stays, held
-- from the registry, and is what every later file's require gets.
do
  local registry = debug.getregistry()
  local first = registry["spec.helper: luv"]
  if first then
    package.loaded.luv = first  -- the same instance, never opened again
  else
    local ok, uv = pcall(require, "luv")
    if ok then registry["spec.helper: luv"] = uv end
  end
end

local error, next, pcall, rawequal, rawget, select, tostring, type =
  error, next, pcall, rawequal, rawget, select, tostring, type
local concat = table.concat
local char, format = string.char, string.format

-- Version fallbacks, in one place.
M.math_type = rawget(math, "type")                     -- nil before 5.3
M.maxinteger = rawget(math, "maxinteger")
M.mininteger = rawget(math, "mininteger")
M.unpack = rawget(table, "unpack") or rawget(_G, "unpack")

-- Special floats, computed at run time so no compiler folds them away.
M.negzero = -1 / math.huge
M.nan = 0 / 0

function M.is_negzero(x)
  return x == 0 and 1 / x == -math.huge
end

-- Every byte value 0..255 once, in order.
do
  local t = {}
  for i = 0, 255 do t[i + 1] = char(i) end
  M.all_bytes = concat(t)
end

-- Packs results with their count, so trailing nils are kept.
function M.pack(...)
  return { n = select("#", ...), ... }
end

function M.is_buffer(v)
  return type(v) == "userdata" and tostring(v):find("^Buffer %(") ~= nil
end

function M.is_port(v)
  return type(v) == "userdata" and tostring(v):find("^MessagePort %(") ~= nil
end

-- Whether s is what tostring gives for a port that is open (not closed,
-- disentangled or detached).
function M.is_open_port_name(s)
  return type(s) == "string" and s:find("^MessagePort %(0x%x+%)$") ~= nil
end

-- True when x and y are the same number in every way a clone must keep:
-- value, NaN-ness, the sign of zero and, on 5.3+, integer or float.
function M.same_number(x, y)
  if type(x) ~= "number" or type(y) ~= "number" then return false end
  if M.math_type and M.math_type(x) ~= M.math_type(y) then return false end
  if x ~= x then return y ~= y end
  if x == 0 and y == 0 then return 1 / x == 1 / y end
  return x == y
end

------------------------------------------------------------------------------
-- A tiny deterministic generator (Park-Miller minimal standard LCG). Every
-- product stays below 2^53, so it yields the same sequence with doubles
-- (5.1, LuaJIT) and with integers (5.3+). math.random differs by version.
------------------------------------------------------------------------------

function M.prng(seed)
  local state = seed % 2147483646 + 1
  local g = {}
  function g.next()
    state = state * 16807 % 2147483647
    return state
  end
  -- an integer in lo..hi
  function g.int(lo, hi)
    return lo + g.next() % (hi - lo + 1)
  end
  -- n random bytes, or n bytes drawn from the string alphabet
  function g.bytes(n, alphabet)
    local t = {}
    for i = 1, n do
      if alphabet then
        local k = g.next() % #alphabet + 1
        t[i] = alphabet:sub(k, k)
      else
        t[i] = char(g.next() % 256)
      end
    end
    return concat(t)
  end
  return g
end

------------------------------------------------------------------------------
-- Graph comparison
------------------------------------------------------------------------------

local function is_ref(v)
  return type(v) == "table" or M.is_buffer(v)
end

-- Checks that b is a faithful clone of a: same primitive values, every table
-- and Buffer of a matched one-to-one with a distinct new object of b (so
-- shared references, cycles and tables used as keys keep their identity), no
-- object of a reused in b. Metatables are not compared. Tables used as keys
-- are matched through their other appearances, or when a table has exactly
-- one such key. Returns true, or false and a message.
function M.same_graph(a, b)
  local map, back = {}, {}
  local queue, head = {}, 1
  local pending = {}       -- tables whose reference keys still need matching

  local function pair(x, y, what)
    local tx, ty = type(x), type(y)
    if tx ~= ty then
      return format("%s: %s in the original, %s in the clone", what, tx, ty)
    end
    if tx == "number" then
      if not M.same_number(x, y) then
        return format("%s: number %s became %s", what, tostring(x), tostring(y))
      end
      return nil
    end
    if is_ref(x) then
      if not is_ref(y) then
        return what .. ": a Buffer became another userdata"
      end
      if rawequal(x, y) then
        return what .. ": the clone shares an object with the original"
      end
      local mx, my = map[x], back[y]
      if mx == nil and my == nil then
        map[x], back[y] = y, x
        queue[#queue + 1] = x
        return nil
      end
      if not rawequal(mx, y) then
        return what .. ": identity not kept (one object cloned twice, or two merged)"
      end
      return nil
    end
    if not rawequal(x, y) then
      return format("%s: %s became %s", what, tostring(x), tostring(y))
    end
    return nil
  end

  local function visit(x)
    local y = map[x]
    if type(x) ~= "table" then -- a Buffer
      if #x ~= #y or x:sub() ~= y:sub() then
        return "a Buffer's bytes differ in the clone"
      end
      return nil
    end
    if type(y) ~= "table" then return "a table became a Buffer" end
    local nx, ny, refkeys = 0, 0, false
    for k, v in next, x do
      nx = nx + 1
      if is_ref(k) then
        refkeys = true
      else
        local yv = rawget(y, k)
        if yv == nil then
          return format("key %s is missing in the clone", tostring(k))
        end
        local err = pair(v, yv, "value at key " .. tostring(k))
        if err then return err end
      end
    end
    for _ in next, y do ny = ny + 1 end
    if nx ~= ny then
      return format("a table has %d entries, its clone %d", nx, ny)
    end
    if refkeys then pending[#pending + 1] = x end
    return nil
  end

  -- Matches the reference keys of table x; returns done, err.
  local function match_keys(x)
    local y = map[x]
    local ux, uy = {}, {}
    for k in next, y do
      if is_ref(k) and back[k] == nil then uy[#uy + 1] = k end
    end
    for k, v in next, x do
      if is_ref(k) then
        local yk = map[k]
        if yk == nil then
          ux[#ux + 1] = k
        else
          local yv = rawget(y, yk)
          if yv == nil then return true, "a table key is missing in the clone" end
          local err = pair(v, yv, "value at a table key")
          if err then return true, err end
        end
      end
    end
    if #ux == 0 then return true end
    if #ux == 1 and #uy == 1 then
      local err = pair(ux[1], uy[1], "a table key")
      if err then return true, err end
      err = pair(rawget(x, ux[1]), rawget(y, uy[1]), "value at a table key")
      return true, err
    end
    return false
  end

  local err = pair(a, b, "top level")
  if err then return false, err end
  repeat
    while head <= #queue do
      local x = queue[head]
      queue[head] = nil
      head = head + 1
      err = visit(x)
      if err then return false, err end
    end
    local progress, still = false, {}
    for i = 1, #pending do
      local done, kerr = match_keys(pending[i])
      if kerr then return false, kerr end
      if done then progress = true else still[#still + 1] = pending[i] end
    end
    pending = still
  until not progress or #pending == 0
  if #pending > 0 then
    return false, "ambiguous table keys: give them another reference"
  end
  return true
end

------------------------------------------------------------------------------
-- Deep structures
------------------------------------------------------------------------------

-- A chain of `depth` tables linked by the field `next`; the last one holds
-- bottom = depth.
function M.chain(depth)
  local root = {}
  local cur = root
  for _ = 2, depth do
    local t = {}
    cur.next = t
    cur = t
  end
  cur.bottom = depth
  return root
end

-- Checks that clone is a distinct copy of the chain orig; true or false, msg.
function M.same_chain(orig, clone)
  local depth = 0
  while orig do
    depth = depth + 1
    if type(clone) ~= "table" then
      return false, format("level %d is not a table in the clone", depth)
    end
    if rawequal(orig, clone) then
      return false, format("level %d is shared with the original", depth)
    end
    if orig.bottom ~= clone.bottom then
      return false, format("level %d: bottom mark differs", depth)
    end
    orig, clone = orig.next, clone.next
  end
  if clone ~= nil then return false, "the clone is deeper than the original" end
  return true
end

-- A chain of `depth` tables where each table is the only key of its parent
-- (parent[child] = level); the last one holds bottom = depth.
function M.key_chain(depth)
  local root = {}
  local cur = root
  for level = 2, depth do
    local t = {}
    cur[t] = level
    cur = t
  end
  cur.bottom = depth
  return root
end

function M.same_key_chain(orig, clone)
  local level = 1
  while true do
    if type(clone) ~= "table" or rawequal(orig, clone) then
      return false, format("level %d is not a new table", level)
    end
    local ko, vo = next(orig)
    local kc, vc = next(clone)
    if next(clone, kc) ~= nil then
      return false, format("level %d has more than one entry", level)
    end
    if type(ko) ~= "table" then
      if ko ~= kc or vo ~= vc then
        return false, format("level %d: bottom mark differs", level)
      end
      return true
    end
    if vo ~= vc then
      return false, format("level %d: value differs", level)
    end
    orig, clone, level = ko, kc, level + 1
  end
end

------------------------------------------------------------------------------
-- Error checks
------------------------------------------------------------------------------

-- The message of a call that must fail; raises (failing the spec) when the
-- call succeeds or raises a non-string.
function M.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error, the call succeeded", 2) end
  if type(err) ~= "string" then
    error("expected a string error, got " .. type(err), 2)
  end
  return err
end

-- The four bytes, least significant first, of an integer 0 <= n < 2^32:
-- the sizes of the clone format and of the wire.
function M.u32(n)
  local floor = math.floor
  return string.char(n % 256, floor(n / 256) % 256, floor(n / 65536) % 256,
                     floor(n / 16777216) % 256)
end

-- Does string s contain needle (plainly)?
function M.has(s, needle)
  return type(s) == "string" and s:find(needle, 1, true) ~= nil
end

function M.ends_with(s, suffix)
  return s:sub(-#suffix) == suffix
end

-- nil when err is a DataCloneError naming a byte offset, else what it is.
local function classify_decode_error(err)
  if type(err) ~= "string" then
    return "raised a " .. type(err)
  end
  if not err:find("DataCloneError:", 1, true) then
    return "raised " .. err
  end
  if not err:find("at byte %d+") then
    return "error without a byte offset: " .. err
  end
  return nil
end

-- Decodes s, which must fail; returns nil when it raised a DataCloneError
-- naming a byte offset, else a description of what happened.
function M.decode_error_problem(s)
  local ok, err = pcall(mc.deserialize, s)
  if ok then return "decoded without an error" end
  return classify_decode_error(err)
end

-- Types a decoder may produce.
local cloneable = { ["nil"] = true, boolean = true, number = true,
                    string = true, table = true }

-- Decodes s and returns nil when the outcome is allowed: a DataCloneError
-- naming a byte offset, or data made only of cloneable values. Otherwise
-- returns a description of what went wrong.
function M.decode_problem(s)
  local ok, res = pcall(mc.deserialize, s)
  if not ok then return classify_decode_error(res) end
  local seen, stack = {}, { res }
  while #stack > 0 do
    local v = stack[#stack]
    stack[#stack] = nil
    if not cloneable[type(v)] and not M.is_buffer(v) then
      return "decoded a " .. type(v)
    end
    if type(v) == "table" and not seen[v] then
      seen[v] = true
      for k, x in next, v do
        stack[#stack + 1] = k
        stack[#stack + 1] = x
      end
    end
  end
  return nil
end

-- Printable form of a byte string, for failure messages.
function M.hex(s)
  return (s:gsub(".", function(c) return format("%02x", c:byte()) end))
end

-- A metatable whose every listed metamethod raises, and the log of those
-- that ran: a clone that traverses raw leaves the log empty.
function M.trap_metatable(events)
  local log, mt = {}, {}
  for _, e in ipairs(events) do
    mt[e] = function()
      log[#log + 1] = e
      error("metamethod " .. e .. " ran", 2)
    end
  end
  return mt, log
end

------------------------------------------------------------------------------
-- Ports and the scheduler
------------------------------------------------------------------------------

function M.noop() end

-- Waits, without running the scheduler, until the file at path holds
-- "posted" (a worker writes it once it has posted everything, so that
-- what it posted is all queued before the scheduler looks); gives up
-- after a minute of CPU time (a worker that failed never writes it).
function M.wait_for_file(path)
  local t0 = os.clock()
  while os.clock() - t0 < 60 do
    local f = io.open(path, "r")
    local text = f and f:read("*a")
    if f then f:close() end
    if text == "posted" then return end
  end
  error("the worker did not post (see its error at mc.run())")
end

-- A function that returns a new name at each call, "<prefix>1",
-- "<prefix>2", ...: a BroadcastChannel name no other case uses.
function M.namer(prefix)
  local n = 0
  return function()
    n = n + 1
    return prefix .. n
  end
end

-- How many messages from other threads one poll takes at most
-- (MC_TAKE_MAX, src/mc.h): a backlog larger than that is taken in parts.
function M.take_max()
  local f = assert(io.open("src/mc.h", "r"))
  local take = tonumber(f:read("*a"):match("#define MC_TAKE_MAX (%d+)"))
  f:close()
  return assert(take, "MC_TAKE_MAX not found in src/mc.h")
end

-- Starts a worker that takes `port` (transferred), posts 1..n and then
-- "stop" to it, and then writes "posted" to path (M.wait_for_file).
function M.post_then_flag(port, n, path)
  return mc.Worker([[
    local d = require("messagechannel").workerData
    for i = 1, d.n do d.port:postMessage(i) end
    d.port:postMessage("stop")
    local f = assert(io.open(d.path, "w"))
    f:write("posted")
    f:close()
  ]], { eval = true, data = { port = port, n = n, path = path },
        transfer = { port } })
end

-- Lua source that defines on_gc(fn): an object whose finalizer calls fn
-- (Lua 5.1 and LuaJIT run __gc for userdata only). Source, so that a
-- worker or a child process can have it too, before it requires anything.
M.ON_GC = [[
local function on_gc(fn)
  local newproxy = rawget(_G, "newproxy")
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = fn
    return p
  end
  return setmetatable({}, { __gc = fn })
end
]]
M.on_gc = assert((rawget(_G, "loadstring") or load)(M.ON_GC
                                                  .. "return on_gc"))()

-- Makes the next allocations run fin: on Lua 5.4 the collector is parked
-- in its finalizer phase (thousands of finalizers due, a few run at each
-- allocation, the first already run); elsewhere one object is left for
-- the collector, whose finalizer runs wherever the collector calls it.
-- park_done() puts the collector back as it was.
function M.park(fin)
  if _VERSION ~= "Lua 5.4" then
    M.on_gc(fin)
    return
  end
  local first = true
  local function each()
    if first then first = false else fin() end
  end
  collectgarbage("stop")
  collectgarbage("incremental", 1, 100, 1)
  for _ = 1, 20000 do M.on_gc(each) end
  collectgarbage("restart")
  while first do collectgarbage("step", 0) end
end

function M.park_done()
  if _VERSION == "Lua 5.4" then collectgarbage("incremental", 200, 100, 13) end
  collectgarbage()
end

-- The number of keys of table t.
function M.count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- Full collections, with the scheduler run in between so close events
-- queued by finalizers are dispatched and their ports released.
function M.collect()
  for _ = 1, 3 do
    collectgarbage("collect")
    collectgarbage("collect")
    if mc.run(M.WAIT) ~= true then
      error(("mc.run(%d) did not become idle"):format(M.WAIT), 2)
    end
  end
end

-- Seconds a run may take before a spec fails: a guard against a hang only,
-- never a claim on speed (a loaded machine under ThreadSanitizer is tens of
-- times slower than an idle one).
M.WAIT = 60

-- Runs the scheduler until idle; a spec that never gets idle within
-- `seconds` (M.WAIT by default) fails instead of hanging the suite.
function M.run(seconds)
  seconds = seconds or M.WAIT
  if mc.run(seconds) ~= true then
    error(("mc.run(%d) did not become idle"):format(seconds), 2)
  end
end

-- Asserts that `errors` (error_hooks) holds one error, a yield with values
-- raised at a line of the spec file named `file`.
function M.assert_one_yield_error(errors, file)
  local err = errors[1] and tostring(errors[1].err) or "none"
  if #errors ~= 1 or not M.has(err, "yield with values")
      or not M.has(err, file .. ":") then
    error(("expected one yield-with-values error at %s, got %d: %s")
          :format(file, #errors, err), 2)
  end
end

-- A pair for before_each and after_each: each spec may set mc.onerror,
-- and it is put back after.
function M.onerror_keeper()
  local saved
  return function() saved = mc.onerror end,
         function() mc.onerror = saved end
end

-- Errors sent to mc.onerror during a spec: returns the list ({err,
-- traceback} records), a function for before_each that empties it and
-- installs the catcher, and one for after_each that lets the scheduler
-- settle (up to `settle` seconds) with errors ignored, then restores the
-- default mc.onerror.
function M.error_hooks(settle)
  local errors, default = {}, mc.onerror
  local function catch()
    for k in pairs(errors) do errors[k] = nil end
    mc.onerror = function(err, traceback)
      errors[#errors + 1] = { err = err, traceback = traceback }
    end
  end
  local function release()
    mc.onerror = M.noop
    -- The spec's ports are garbage now. One collected closes at its
    -- partner through the hub, even a partner in this state, and so makes
    -- the descriptor readable and a step due: collected here, with that
    -- news taken by the run, and not in the middle of a later spec that
    -- asserts idleness.
    collectgarbage()
    mc.run(settle)
    mc.onerror = default
  end
  return errors, catch, release
end

-- Terminates the workers of the array `workers` (started by a spec) and
-- empties it.
function M.terminate_all(workers)
  for i = #workers, 1, -1 do
    pcall(workers[i].terminate, workers[i])
    workers[i] = nil
  end
end

-- For a describe block whose specs start workers, given busted's
-- before_each and after_each: catches mc.onerror into `errors` around
-- each spec (error_hooks(settle)) and terminates the workers that
-- start(source [, options]) started (options.eval is set) after it, and
-- those added to `workers` (record_worker's list). Returns errors, start
-- and workers.
function M.worker_specs(settle, before_each, after_each)
  local errors, catch, release = M.error_hooks(settle)
  local workers = {}
  before_each(catch)
  after_each(function()
    M.terminate_all(workers)
    release()
  end)
  local function start(source, options)
    options = options or {}
    options.eval = true
    local w = mc.Worker(source, options)
    workers[#workers + 1] = w
    return w
  end
  return errors, start, workers
end

-- For a describe block whose specs run messagechannel.luv (`adapter`) in
-- luv's loop (`uv`), given busted's before_each and after_each: catches
-- mc.onerror into `errors` around each spec (error_hooks(settle)); after
-- it, stops the adapter and closes the luv handles that handle(h) was
-- given (returning h), letting the closes complete. Returns errors,
-- handle and the array of those handles.
function M.luv_specs(uv, adapter, settle, before_each, after_each)
  local errors, catch, release = M.error_hooks(settle)
  local handles = {}
  before_each(catch)
  after_each(function()
    adapter.stop()
    for i = #handles, 1, -1 do
      if not handles[i]:is_closing() then handles[i]:close() end
      handles[i] = nil
    end
    uv.run("nowait")   -- lets the closes complete
    release()
  end)
  return errors, function(h)
    handles[#handles + 1] = h
    return h
  end, handles
end

-- Starts a worker on Lua source (with `local mc = require
-- "messagechannel"` put first), adds it to the array `workers`, and
-- returns the record of what reaches the parent: rec.worker,
-- rec.messages (each message's data), rec.code (the exit code, once the
-- exit was dispatched) and rec.log ("message <data>", "error <error>",
-- "exit <code>" in order; the array `log` when given, to share it).
function M.record_worker(workers, body, options, log)
  options = options or {}
  options.eval = true
  local w = mc.Worker('local mc = require "messagechannel"\n' .. body,
                      options)
  workers[#workers + 1] = w
  local rec = { worker = w, messages = {}, log = log or {} }
  w.onmessage = function(e)
    rec.messages[#rec.messages + 1] = e.data
    rec.log[#rec.log + 1] = "message " .. tostring(e.data)
  end
  w.onerror = function(e)
    rec.log[#rec.log + 1] = "error " .. tostring(e.error)
  end
  w.onexit = function(e)
    rec.code = e.code
    rec.log[#rec.log + 1] = "exit " .. tostring(e.code)
  end
  return rec
end

-- Starts a worker on Lua source as record_worker does, and terminates it
-- when its first message arrives; returns its record.
function M.worker_stopped_at_first(workers, body)
  local rec = M.record_worker(workers, body)
  local record = rec.worker.onmessage
  rec.worker.onmessage = function(e)
    record(e)
    if #rec.messages == 1 then rec.worker:terminate() end
  end
  return rec
end

-- Why the worker of such a record did not end as terminate() ends one
-- whose first message was "started" (exit code 1, no error event), or nil.
function M.not_stopped(rec)
  if rec.messages[1] ~= "started" or rec.code ~= 1 then
    return "log: " .. concat(rec.log, "; ")
  end
  for i = 1, #rec.log do
    if rec.log[i]:sub(1, 6) == "error " then return "log: " .. concat(rec.log, "; ") end
  end
  return nil
end

-- Says on stderr why specs are skipped (a library missing for this Lua),
-- so that nothing is skipped silently, and returns the reason for busted's
-- pending(), which only a spec file sees: pending(helper.skipped(who, why)).
-- `who` names the spec file.
function M.skipped(who, why)
  io.stderr:write(who, ": skipped: ", why, "\n")
  return why
end

-- uv.run() of luv module `uv` under an unref'd watchdog timer: it never
-- keeps the loop alive, but stops it after `seconds` if something else
-- does. Returns true when uv.run() returned by itself.
function M.uv_run(uv, seconds)
  local fired = false
  local dog = uv.new_timer()
  uv.update_time()  -- the loop's clock is as old as its last run
  dog:start(seconds * 1000, 0, function()
    fired = true
    uv.stop()
  end)
  dog:unref()
  uv.run()
  dog:close()
  return not fired
end

-- Starts Lua source in a child process of the same interpreter, with this
-- process's package paths, so that a crash fails a spec instead of the
-- whole run. Returns a function that waits for the child's end and
-- returns its output followed by " exit:<status>"; or nil when the
-- interpreter is unknown or ThreadSanitizer is preloaded (make tsan: the
-- shell io.popen starts dies of it). The child runs meanwhile: this
-- process may be its peer (its output must fit the pipe, 64 KiB, until
-- it is read). With `bound`, the child is killed after that many seconds
-- (status 124). `env`, when given, is put before the command
-- ("NAME=value ...").
M.NO_CHILD = "no child process here (the interpreter is unknown, or "
             .. "ThreadSanitizer is preloaded)"

function M.spawn_child(source, bound, env)
  local interpreter = arg and arg[-1]
  if type(interpreter) ~= "string"
     or (os.getenv("LD_PRELOAD") or ""):find("libtsan", 1, true) then
    return nil
  end
  if bound then
    interpreter = ("timeout %d %s"):format(bound, interpreter)
  end
  if env then
    interpreter = ("env %s %s"):format(env, interpreter)
  end
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(("package.path = %q\npackage.cpath = %q\n"):format(package.path,
                                                          package.cpath))
  f:write(source)
  f:close()
  local pipe = assert(io.popen(interpreter .. " " .. file
                               .. " 2>&1; echo \" exit:$?\""))
  return function()
    local out = pipe:read("*a")
    pipe:close()
    os.remove(file)
    return out
  end
end

-- spawn_child's child, waited for at once.
function M.run_child(source, bound, env)
  local wait = M.spawn_child(source, bound, env)
  return wait and wait()
end

-- run_child of source as the body of a function called with `which`
-- (its `...`), a scenario's name.
function M.run_scenario(source, which, bound)
  return M.run_child(("local arg = { %q }\n"):format(which)
                     .. "local function main(...)\n" .. source
                     .. "\nend\nmain(arg[1])\n", bound)
end

return M
