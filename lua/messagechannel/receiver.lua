-- messagechannel.receiver: the Lua half of the methods every receiver type
-- shares (MessagePort, BroadcastChannel): addEventListener,
-- removeEventListener, dispatchEvent and the handler fields (`onmessage`)
-- of the EventTarget model. The C half of each type (postMessage, close,
-- ref/unref) is in the same methods table.

local core = require "messagechannel.core"
local ET = require "messagechannel.eventtarget"
local scheduler = require "messagechannel.scheduler"

local M = {}

local error, getmetatable, rawequal, select, setmetatable, type = error,
  getmetatable, rawequal, select, setmetatable, type
local format = string.format

local uservalue, changed = core.uservalue, core.changed
local EVENT_MT = ET.EVENT_MT

-- Fills in the methods and the __newindex of the receiver type whose
-- metatable is mt, named typename in errors. handlers maps a handler
-- field to its event type; before_set(obj, typ, fn), if given, runs
-- before a handler field is set. Returns check(name, obj, ...), given a
-- method's arguments: obj's U, or raises a bad argument error for the
-- caller of the method `name`.
function M.install(methods, mt, typename, handlers, before_set)
  local function check(name, ...)
    local obj = ...
    local U = rawequal(getmetatable(obj), mt) and uservalue(obj)
    if not U then
      error(format("bad argument #1 to '%s' (%s expected, got %s)", name,
                   typename, ET.typename(obj, select("#", ...) >= 1)), 3)
    end
    return U
  end

  function methods.addEventListener(...)
    local obj, U = ..., check("addEventListener", ...)
    local err = ET.add(obj, U, changed, select("#", ...) - 1, select(2, ...))
    if err then error(err, 2) end
  end

  function methods.removeEventListener(...)
    local obj, U = ..., check("removeEventListener", ...)
    local err = ET.remove(obj, U, changed, select("#", ...) - 1,
                          select(2, ...))
    if err then error(err, 2) end
  end

  function methods.dispatchEvent(...)
    local obj, ev = ...
    local r = M.dispatch(obj, check("dispatchEvent", ...), ev)
    return r  -- not a tail call: an error points at the caller
  end

  -- before_set runs once v is known to be a handler, before it is set:
  -- what it does (a port's start) must not be left half done when setting
  -- fails, nor the handler set when it fails.
  mt.__newindex = function(obj, k, v)
    local U = check("__newindex", obj)
    local typ = handlers[k]
    local err = not typ and ET.field_error(k, typename)
      or ET.check_handler(k, v)
    if err then error(err, 2) end
    if before_set then before_set(obj, typ, v) end
    err = ET.set_handler(obj, U, changed, k, typ, v)
    if err then error(err, 2) end
  end

  return check
end

-- dispatchEvent(event) of an EventTarget obj whose listeners are in U
-- (a receiver's, or a Listener's): runs them now, and returns whether no
-- listener called preventDefault. Errors point at dispatchEvent's caller.
function M.dispatch(obj, U, ev)
  if type(ev) ~= "table" or type(ev.type) ~= "string" then
    error("bad argument #1 to 'dispatchEvent' (table with a string "
          .. "'type' expected)", 3)
  end
  -- (only the scheduler's own events can be under its dispatch)
  local err = ET.prepare(ev, obj, rawequal(getmetatable(ev), EVENT_MT)
                                  and scheduler.dispatching(ev))
  if err then error(err, 3) end
  scheduler.dispatch_now(obj, U, ev, ET.finish)
  return not ev.defaultPrevented
end

-- A class table (MessageChannel, BroadcastChannel): calling it, or its
-- `new`, calls new(...). (No tail calls: an error points at the caller's
-- line.)
function M.class(new)
  return setmetatable({
    new = function(...)
      local obj = new(...)
      return obj
    end,
  }, {
    __call = function(_, ...)
      local obj = new(...)
      return obj
    end,
  })
end

return M
