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

local error, pcall, rawget, setmetatable, tostring, type, xpcall =
  error, pcall, rawget, setmetatable, tostring, type, xpcall
local format = string.format
local traceback = debug.traceback
local load_string = rawget(_G, "loadstring") or load

---------------------------------------------------------------------------
-- The parent's side
---------------------------------------------------------------------------

local WORKER_MT = {}
local state = setmetatable({}, { __mode = "k" })  -- worker -> its fields

-- Handler fields: those of the events the worker posts, which its port
-- gets, and its own.
local PORT_FIELDS = { onmessage = true, onmessageerror = true }
local OWN_FIELDS = { onerror = true, onexit = true }

local methods = {}

function methods.postMessage(w, message, transfer)
  local s = state[w]
  if not s then
    error("bad argument #1 to 'postMessage' (Worker expected)", 2)
  end
  return s.port:postMessage(message, transfer)
end

function methods.terminate(w)
  local s = state[w]
  if not s then error("bad argument #1 to 'terminate' (Worker expected)", 2) end
  core.worker_terminate(s.handle)
end

WORKER_MT.__index = function(w, k)
  local m = methods[k]
  if m then return m end
  local s = state[w]
  if PORT_FIELDS[k] or OWN_FIELDS[k] then return s[k] end
  return nil
end

WORKER_MT.__newindex = function(w, k, v)
  local s = state[w]
  if PORT_FIELDS[k] then
    -- the port checks v; its events reach v with the worker as target
    s.port[k] = v ~= nil and function(ev)
      ev.target, ev.currentTarget = w, w
      return v(ev)
    end or v
    s[k] = v
  elseif OWN_FIELDS[k] then
    local err = ET.check_handler(k, v)
    if err then error(err, 2) end
    s[k] = v
  else
    error(ET.field_error(k, "Worker"), 2)
  end
end

WORKER_MT.__tostring = function(w)
  local s = state[w]
  return format("Worker (%s)", s.exited and "exited" or "running")
end

-- Dispatches the end of worker w: its error, then its exit.
local function on_exit(w, code, err_bytes, tb)
  local s = state[w]
  s.exited = true
  local err
  if err_bytes then
    local ok, e = pcall(core.deserialize, err_bytes)
    err = ok and e or err_bytes
  elseif tb then  -- only the error's text reached us
    err, tb = tb, nil
  end
  if err ~= nil then
    local ev = ET.new_event("error", w, nil)
    ev.error = err
    ev.traceback = tb
    if s.onerror then
      s.onerror(ev)
    else
      scheduler.report(err, tb or "")
    end
  end
  if s.onexit then
    local ev = ET.new_event("exit", w, nil)
    ev.code = code
    s.onexit(ev)
  end
end

function M.Worker(path, options)
  if type(path) ~= "string" then
    error(format("bad argument #1 to 'Worker' (string expected, got %s)",
                 type(path)), 2)
  end
  if options ~= nil and type(options) ~= "table" then
    error(format("bad argument #2 to 'Worker' (table expected, got %s)",
                 type(options)), 2)
  end
  options = options or {}
  local transfer = options.transfer
  if transfer ~= nil and type(transfer) ~= "table" then
    error("bad argument #2 to 'Worker' (options.transfer must be an array)",
          2)
  end
  local ch = port.MessageChannel()
  local handle = core.worker_start(path, options.eval and true or false,
                                   options.data, transfer, { ch.port2 })
  local w = setmetatable({}, WORKER_MT)
  state[w] = { handle = handle, port = ch.port1 }
  scheduler.watch_worker(handle, function(code, err, tb)
    return on_exit(w, code, err, tb)
  end)
  return w
end

---------------------------------------------------------------------------
-- The worker's side
---------------------------------------------------------------------------

-- Records the error that ends this worker, for its parent's onerror.
function M.fail(err, tb)
  local ok, bytes = pcall(core.serialize, err)
  if not ok then bytes = core.serialize(tostring(err)) end
  core.worker_fail(bytes, tb)
end

-- An error nobody takes ends a worker, as in Node.js: this is mc.onerror
-- there unless the worker sets its own.
function M.raise(err, tb)
  M.fail(err, tb)
  error(err, 0)
end

function M.main(source, eval)
  -- LuaJIT's compiled code never calls hooks, so terminate() could not
  -- stop a compiled loop: workers start with the compiler off. A worker
  -- may call jit.on() and give that up.
  local jit = rawget(_G, "jit")
  if type(jit) == "table" then jit.off() end
  local mc = require "messagechannel"
  local f, err
  if eval then
    f, err = load_string(source, "=worker")
  else
    f, err = loadfile(source)
  end
  if not f then return M.fail(err, "") end
  local tb
  local ok, e = xpcall(function()
    f()
    mc.run()
  end, function(e)
    tb = traceback(tostring(e), 2)
    return e
  end)
  if not ok then
    M.fail(e, tb)
    error(e, 0)  -- the exit code says so
  end
end

return M
