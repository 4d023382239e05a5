-- messagechannel.worker: mc.Worker, the parent's side of a worker thread,
-- and main, what the worker thread runs in its own Lua state (src/worker.c
-- calls it). The thread, its state and the messages that bring it its
-- parentPort and workerData are C; the events a worker's end makes are
-- dispatched here.

local core = require "messagechannel.core"
local ET = require "messagechannel.eventtarget"
local scheduler = require "messagechannel.scheduler"
local port = require "messagechannel.port"

local M = {}

local error, pcall, rawget, rawset, select, setmetatable, tostring, type,
  xpcall = error, pcall, rawget, rawset, select, setmetatable, tostring,
  type, xpcall
local format, find, match, sub = string.format, string.find, string.match,
  string.sub
local traceback, getinfo = debug.traceback, debug.getinfo
local debug_setmetatable = debug.setmetatable
local load_string = rawget(_G, "loadstring") or load

---------------------------------------------------------------------------
-- The parent's side
---------------------------------------------------------------------------

local WORKER_MT = { __name = "Worker" }  -- as argument errors name it
core.not_cloneable(WORKER_MT, "Worker")
-- A Worker is a table that holds its fields under this key. (A weak-keyed
-- table of fields would keep every Worker alive on Lua 5.1 and LuaJIT,
-- whose weak tables are not ephemerons: the fields refer to the Worker.)
local STATE = {}

local function state(w)
  return type(w) == "table" and rawget(w, STATE) or nil
end

-- Events the worker's port gets (what the worker posts), and its own.
local PORT_EVENTS = { message = true, messageerror = true }
local HANDLERS = { onmessage = "message", onmessageerror = "messageerror",
                   onerror = "error", onexit = "exit" }

local function noop() end

-- Given a method's name and arguments: the Worker's fields, or raises.
local function check(name, ...)
  local w = ...
  local s = state(w)
  if not s then
    error(format("bad argument #1 to '%s' (Worker expected, got %s)", name,
                 ET.typename(w, select("#", ...) >= 1)), 3)
  end
  return s
end

local methods = {}

-- The port's own postMessage (in C), given the Worker: it finds the port
-- in the Worker's state, and its errors name the caller's line, as they
-- do for a port.
methods.postMessage = core.owner_post(STATE, "Worker")

function methods.terminate(...)
  core.worker_terminate(check("terminate", ...).handle)
end

-- An unref'd worker keeps nothing going: neither itself nor the port its
-- messages come through, even with a message listener.
local function set_ref(s, on)
  s.unref = not on
  if on then s.port:ref() else s.port:unref() end
  scheduler.ref_worker(s.watch, on)
end

function methods.ref(...) set_ref(check("ref", ...), true) end

function methods.unref(...) set_ref(check("unref", ...), false) end

function methods.hasRef(...)  -- false once it exited, as Node's
  local s = check("hasRef", ...)
  return not (s.unref or s.exited)
end

-- A listener of the port's events sees the Worker as the target: the port
-- gets a wrapper, one per (type, listener) while the port has it, so that
-- adding a listener twice adds it once and removing it finds the wrapper.
-- The wrapper of a `once` listener lets go of it as it is called (the port
-- has removed it then), and removeEventListener of the rest.
local function wrapper(s, w, typ, l, once)
  local by = s.wraps[typ]
  local f = by[l]
  if not f then
    f = function(ev)
      if once and by[l] == f then by[l] = nil end
      ev.target, ev.currentTarget = w, nil  -- as in onmessage's, below
      return ET.call({ fn = l }, ev)
    end
    by[l] = f
  end
  return f
end

-- addEventListener(type, listener [, options]): message and messageerror
-- listeners are the port's (a message listener starts it: a Worker has no
-- start()), error and exit listeners the Worker's own.
function methods.addEventListener(...)
  local s = check("addEventListener", ...)
  local w, typ, l, options = ...
  local n = select("#", ...) - 1
  if PORT_EVENTS[typ] then
    local err = ET.add(w, {}, noop, n, typ, l, options)  -- checks only
    if err then error(err, 2) end
    local once = type(options) == "table" and options.once and true
    s.port:addEventListener(typ, wrapper(s, w, typ, l, once), options)
    if typ == "message" then
      s.port:start()
      s.started, s.listened = true, true
    end
  else
    local err = ET.add(w, s.U, noop, n, typ, l, options)
    if err then error(err, 2) end
  end
end

function methods.removeEventListener(...)
  local s = check("removeEventListener", ...)
  local w, typ, l = ...
  local n = select("#", ...) - 1
  local f = PORT_EVENTS[typ] and n >= 2 and s.wraps[typ][l]
  if f then
    s.port:removeEventListener(typ, f)
    s.wraps[typ][l] = nil
  else
    local err = ET.remove(w, s.U, noop, n, typ, l)
    if err then error(err, 2) end
  end
end

WORKER_MT.__index = function(w, k)
  local m = methods[k]
  if m then return m end
  local s = state(w)
  if k == "threadId" then return s.thread_id end
  if HANDLERS[k] then return s[k] or nil end  -- false: not set
  return nil
end

WORKER_MT.__newindex = function(w, k, v)
  local s = state(w)
  local typ = HANDLERS[k]
  if PORT_EVENTS[typ] then
    -- checked here: the port gets a wrapper; its events reach v with the
    -- worker as target
    local err = ET.check_handler(k, v)
    if err then error(err, 2) end
    s.port[k] = v ~= nil and function(ev)
      -- currentTarget, once no field of ev's own, reads the target
      -- (EVENT_MT): an event made in C has none, and gets none
      ev.target, ev.currentTarget = w, nil
      return v(ev)
    end or v
    if v ~= nil and typ == "message" then
      s.started, s.listened = true, true
    end
    s[k] = v or false  -- never nil, so that setting it allocates nothing
  elseif typ then
    local err = ET.set_handler(w, s.U, noop, k, typ, v)
    if err then error(err, 2) end
    s[k] = v or false
  else
    error(ET.field_error(k, "Worker"), 2)
  end
end

WORKER_MT.__tostring = function(w)
  local s = state(w)
  return format("Worker (%s)", s.exited and "exited" or "running")
end

local text_of = scheduler.text_of

-- A worker's error that no listener takes: to mc.onerror when the program
-- set one, else out of the scheduler loop (API.md 7).
-- text is the worker's own text of the error (its __tostring there: a
-- table's copy here has no metatable), nil when the error value came from
-- elsewhere. ev is the error event: reported once (see scheduler.report).
local function unhandled(s, err, tb, text, ev)
  local h = scheduler.facade.onerror
  if h ~= nil and h ~= scheduler.default_onerror then
    return scheduler.report(err, tb or "", ev)
  end
  scheduler.raise_out(format("Error in worker %d: %s\n%s", s.thread_id,
                             text or text_of(err), tostring(tb or "")), ev)
end

-- Dispatches the end of worker w: its error, then its exit, the last
-- event it sees. A task of the scheduler runs it; out of memory it may
-- run again (see the scheduler's worker watches), so each step is done
-- once (error_done, exit_state, exit_done), and the waits may come again.
-- Messages the port holds for want of a message listener are dropped when
-- exit is dispatched (API.md 7), not when the end is seen: exit_marker,
-- the Worker's first exit listener, drops them then; and when a message
-- listener came since, which started them, it stops that exit, so that
-- they come first and a new exit after them.
-- An error value this state cannot decode (a metatable registered in the
-- worker only) arrives as its text, the worker's tostring of it.
local function on_exit(w, code, err_bytes, tb, text)
  local s = state(w)
  s.exited = true
  if not s.error_done then
    local failed, err = err_bytes ~= nil or tb ~= nil, nil
    if err_bytes then
      local ok, e = pcall(core.deserialize, err_bytes)
      if ok then err = e else err = text end
    elseif tb then  -- only the error's text reached us
      err, tb = tb, nil
    end
    if failed then  -- even when the error value is nil or false
      -- to the error listeners there are when it is dispatched, or else
      -- to mc.onerror or out of the loop
      local ev = ET.new_event("error", w, nil)
      ev.error = err
      ev.traceback = tb
      scheduler.dispatch_later(w, s.U, ev, function(e)
        return unhandled(s, e.error, e.traceback,
                         rawequal(e.error, err) and type(text) == "string"
                         and text or nil, e)
      end, function() core.worker_reported(s.handle) end,
      s, "error_done", true)  -- done once queued, in the same call
    end
    s.error_done = true
  end
  if s.exit_done then return end
  while s.exit_state ~= "done" do
    if s.exit_state ~= "queued" then  -- none yet, or exit_marker stopped it
      -- a turn for the program to add a message listener; then the
      -- messages one started go first, while turns take them (a turn may
      -- take none while older messages of other ports go first)
      scheduler.sleep(0)
      local left = s.port:pending()
      while s.started and left > 0 do
        scheduler.sleep(0)
        local now = s.port:pending()
        if now >= left and not core.dispatching(s.port) then
          break  -- none taken, and no listener takes them
        end
        left = now
      end
      local ev = ET.new_event("exit", w, nil)
      ev.code = code
      s.exit_ev = ev
      scheduler.dispatch_later(w, s.U, ev, nil, nil, s, "exit_state", "queued")
    end
    scheduler.sleep(0)  -- exit is dispatched meanwhile
    if s.exit_state == "queued" then s.exit_state = "done" end  -- unmarked
  end
  core.discard(s.port)
  s.port:close()
  s.exit_done = true
end

-- The first exit listener of every Worker (see on_exit). When a message
-- listener came since the last exit was queued, and messages wait at the
-- started port, it stops this exit; else the messages still held for want
-- of a listener are dropped as exit is dispatched. (A port started with
-- no listener left, onmessage set to nil again, keeps its messages
-- pending: it does not stop exit for them.)
local function exit_marker(s, ev)
  if ev ~= s.exit_ev or s.exit_state ~= "queued" then return end
  if s.listened and s.started and s.port:pending() > 0 then
    ev:stopImmediatePropagation()
    s.listened = false
    s.exit_state = "deferred"
    return
  end
  s.exit_state = "done"
  if not s.started then
    core.discard(s.port)
  end
end

local WORKER_OPTIONS = { eval = true, data = true, transfer = true,
                         jit = true }

function M.Worker(...)
  local path, options = ...
  if type(path) ~= "string" then
    error(format("bad argument #1 to 'Worker' (string expected, got %s)",
                 ET.typename(path, select("#", ...) >= 1)), 2)
  end
  if options ~= nil and not ET.is_plain_table(options) then
    error(format("bad argument #2 to 'Worker' (table expected, got %s)",
                 ET.typename(options, true)), 2)
  end
  options = options or {}
  for k in next, options do  -- a typo is not a missing option
    if not WORKER_OPTIONS[k] then
      error(format("bad argument #2 to 'Worker' (unknown option %s)",
                   ET.keyname(k)), 2)
    end
  end
  local transfer = options.transfer
  if transfer ~= nil and not ET.is_plain_table(transfer) then
    error("bad argument #2 to 'Worker' (options.transfer must be an array)",
          2)
  end
  if options.jit ~= nil and type(options.jit) ~= "boolean" then
    error(format("bad argument #2 to 'Worker' (options.jit must be a "
                 .. "boolean, got %s)", ET.typename(options.jit, true)), 2)
  end
  -- Once the thread runs, the transfer list and the port are the
  -- worker's, so mc.Worker must not raise after the start: everything is
  -- made before it, every field the Worker will ever set among them, and
  -- after it only fields that exist are assigned.
  local ch = port.MessageChannel()
  local w = setmetatable({}, WORKER_MT)
  local s = { handle = false, port = ch.port1, U = {},
              wraps = { message = {}, messageerror = {} },
              thread_id = false, watch = false, exited = false,
              error_done = false, exit_done = false, started = false,
              exit_state = false, exit_ev = false, listened = false,
              unref = false, onmessage = false, onmessageerror = false,
              onerror = false, onexit = false }
  rawset(w, STATE, s)
  ET.add(w, s.U, noop, 2, "exit", function(ev) return exit_marker(s, ev) end)
  local watch = scheduler.reserve_worker(function(code, err, tb, text)
    return on_exit(w, code, err, tb, text)
  end)
  s.watch = watch
  -- watch.handle, s.handle and s.thread_id are set in the same call that
  -- starts the thread: a hook that raises from here on leaves a worker
  -- that is watched (its end dispatched, its error reported), not one
  -- nobody sees end
  local ok, r = pcall(core.worker_start, path,
                      options.eval and true or false, options.data, transfer,
                      { ch.port2 }, options.jit == true, watch, s)
  if not ok then
    -- a return hook's error comes once the thread runs: it stays watched
    if watch.handle then
      scheduler.worker_started()
    else
      scheduler.unreserve_worker(watch)
    end
    error(r, 0)
  end
  scheduler.worker_started()
  return w
end

---------------------------------------------------------------------------
-- The worker's side
---------------------------------------------------------------------------

-- Records the error that ends this worker, for its parent's onerror: the
-- value serialized (its text when it cannot be), and its text for a
-- parent that cannot decode it.
function M.fail(err, tb)
  local text = text_of(err)
  local ok, bytes = pcall(core.serialize, err)
  if not ok then bytes = core.serialize(text) end
  core.worker_fail(bytes, tb, text)
end

-- An error nobody takes ends a worker, as in Node.js: this is mc.onerror
-- there unless the worker sets its own. It ends the worker as os.exit
-- does, with code 1: a pcall around the call that dispatched (mc.sleep,
-- mc.run) does not stop it, and the error recorded first is the one the
-- parent gets.
function M.raise(err, tb)
  M.fail(err, tb)
  core.worker_exit(1)
end

-- os.exit([code]) in a worker ends that worker only, with the code as
-- os.exit takes it on Lua 5.4 (true or none: 0, false: 1, a number, or a
-- string that converts to one, as luaL_optinteger takes it).
local function worker_exit(code)
  if type(code) == "string" and tonumber(code) then code = tonumber(code) end
  if code == nil or code == true then
    code = 0
  elseif code == false then
    code = 1
  elseif type(code) ~= "number" then
    error(format("bad argument #1 to 'exit' (number expected, got %s)",
                 ET.typename(code, true)), 2)
  elseif code % 1 ~= 0 or code < -2 ^ 63 or code >= 2 ^ 63 then
    -- as os.exit on 5.4, on every version
    error("bad argument #1 to 'exit' (number has no integer "
          .. "representation)", 2)
  end
  core.worker_exit(code)
end

-- luv's loop, asleep in this worker with nothing due for an hour, wakes
-- when the worker is to stop: a poll handle, unref'd (it keeps no loop
-- alive), watches a descriptor readable from then on, and its callback
-- raises the stop (src/worker.c's worker_stopfd). uv.loop_close() fails
-- while any handle is open: it closes this one first when nothing else
-- is open or pending.
--
-- luv keeps its loop in a userdata that only the module which made it
-- holds (as _loop); luv loaded again (package.loaded.luv cleared) runs
-- the same loop and holds nothing. Once the first module was collected,
-- the loop's __gc closed every handle and the loop itself under the
-- second, and its uv.loop_close() failed (EBUSY: libuv's closed loop),
-- or the next call ran on freed memory: at random, as the collector came
-- to it before or after. So the loop is held here while it is luv's, and
-- the watch is made once for it. After uv.loop_close(), luv loaded again
-- makes a new loop: the closed one loses its __gc, which would close
-- whatever loop is luv's by then (the new one), and the new one gets a
-- watch of its own.
local loop, watch
local function watch_stop(uv)
  local made = rawget(uv, "_loop")
  if made ~= nil and made ~= loop then
    if loop ~= nil then debug_setmetatable(loop, nil) end
    loop, watch = made, nil
  end
  if not watch then
    local fd = core.worker_stopfd()
    if not fd then return end
    local ok, h = pcall(function()
      local h = uv.new_poll(fd)
      h:start("r", core.worker_stopping)
      h:unref()
      return h
    end)
    if not ok then return end
    watch = h
  end
  -- luv's own functions, whatever the program puts in uv since. Each of
  -- them works on the loop that is luv's at the time of the call.
  local loop_close, walk, loop_alive, loop_mode, run = uv.loop_close,
    uv.walk, uv.loop_alive, uv.loop_mode, uv.run
  uv.loop_close = function(...)
    -- Not from a callback, while uv.run() runs: the loop was closed under
    -- it, which crashed, and luv 1.50 refuses the nested uv.run() that
    -- ends the watch's close (the worker would be left without a watch).
    if watch and not watch:is_closing() and loop_mode() == nil then
      local alone = true
      walk(function(h) alone = alone and h == watch end)
      if alone and not loop_alive() then
        local closed = false
        watch:close(function() closed = true end)
        -- A closing handle keeps the loop alive: a pass of it ends with
        -- the close, unless uv.stop() was called outside uv.run(), when
        -- the first pass only clears the stop.
        for _ = 1, 2 do
          if closed then break end
          run("nowait")
        end
      end
    end
    return loop_close(...)
  end
end

-- A searcher, first in package.searchers, that loads luv as the others
-- would and then has its callbacks called so that the error that ends this
-- worker stops luv's loop, not the whole process (src/worker.c's
-- worker_luv). Finds nothing for any other name.
local function luv_searcher(name, ...)
  if name ~= "luv" then return nil end
  local searchers = rawget(package, "searchers") or rawget(package, "loaders")
  for i = 1, #searchers do
    local search = searchers[i]
    if search ~= luv_searcher then
      local loader, extra = search(name, ...)
      if type(loader) == "function" then
        return function(...)
          local uv = loader(...)
          if core.worker_luv(uv) then watch_stop(uv) end
          return uv
        end, extra
      end
    end
  end
  return nil
end

function M.main(source, eval, keep_jit)
  os.exit = worker_exit  -- luacheck: ignore 122
  table.insert(rawget(package, "searchers") or rawget(package, "loaders"), 1,
               luv_searcher)
  -- LuaJIT's compiled code never calls hooks, so terminate() could not
  -- stop a compiled loop: workers start with the compiler off, unless
  -- mc.Worker's options.jit (or the worker's own jit.on()) gives that up.
  local jit = rawget(_G, "jit")
  if type(jit) == "table" and not keep_jit then jit.off() end
  local mc = require "messagechannel"
  local chunk, err  -- the script: its frame is named so in tracebacks
  if eval then
    chunk, err = load_string(source, "=worker")
  else
    chunk, err = loadfile(source)
  end
  if not chunk then return M.fail(err, "") end
  local tb
  local function run()
    chunk()
    mc.run()
  end
  local info = getinfo(run, "S")
  local runner = format("in function <%s:%d>", info.short_src,
                        info.linedefined)
  local ok, e = xpcall(run, function(e)
    -- as a task's, without the error's text ("" and its newline: 5.1
    -- gives back a nil message as it is), and ending with the script's
    -- frames: run's line, and xpcall's and main's below it, are this
    -- module's
    -- (the string functions are this module's locals: the script may
    -- have changed the string table)
    tb = sub(traceback("", 2), 2)
    local at = find(tb, runner, 1, true)
    if at then tb = sub(tb, 1, match(sub(tb, 1, at), ".*()\n") - 1) end
    return e
  end)
  if not ok then
    M.fail(e, tb)
    error(e, 0)  -- the exit code says so
  end
end

return M
