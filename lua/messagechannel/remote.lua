-- messagechannel.remote: mc.listen and mc.connect (API.md 12), ports whose
-- partner is in another process. The sockets, the links and their
-- heartbeats are C (src/remote.c, src/net.c); a remote port is an
-- ordinary MessagePort. A Listener is a table here: the network thread
-- posts each new link's port to a port of its own, whose messages become
-- the Listener's connect events.

local core = require "messagechannel.core"
local ET = require "messagechannel.eventtarget"
local receiver = require "messagechannel.receiver"
local scheduler = require "messagechannel.scheduler"

local M = {}

local error, pcall, rawget, rawset, select, setmetatable, type = error,
  pcall, rawget, rawset, select, setmetatable, type
local format = string.format

local LISTENER_MT = { __name = "Listener" }  -- as argument errors name it
core.not_cloneable(LISTENER_MT, "Listener")
local STATE = {}  -- a Listener holds its fields under this key

local function state(l)
  return type(l) == "table" and rawget(l, STATE) or nil
end

-- Given a method's name and arguments: the Listener's fields, or raises.
local function check(name, ...)
  local l = ...
  local s = state(l)
  if not s then
    error(format("bad argument #1 to '%s' (Listener expected, got %s)",
                 name, ET.typename(l, select("#", ...) >= 1)), 3)
  end
  return s
end

local function noop() end

local methods = {}

-- close(): no new links; those handed over to onconnect stay open.
-- It returns once the socket is closed: the address is free. Links the
-- network thread accepted before that, and queued for onconnect, are
-- refused (as if no one had listened: the peer's close has that reason)
-- now rather than at the next dispatch.
function methods.close(...)
  local s = check("close", ...)
  s.closed = true
  s.port:close()
  core.net_sync()
  while true do
    local ev = s.port:receive(0)
    if not ev then break end
    core.net_refuse(ev.data)
  end
end

function methods.ref(...) check("ref", ...).port:ref() end
function methods.unref(...) check("unref", ...).port:unref() end
function methods.hasRef(...) return check("hasRef", ...).port:hasRef() end

function methods.addEventListener(...)
  local l, s = ..., check("addEventListener", ...)
  local err = ET.add(l, s.U, noop, select("#", ...) - 1, select(2, ...))
  if err then error(err, 2) end
end

function methods.removeEventListener(...)
  local l, s = ..., check("removeEventListener", ...)
  local err = ET.remove(l, s.U, noop, select("#", ...) - 1, select(2, ...))
  if err then error(err, 2) end
end

function methods.dispatchEvent(...)
  local l, ev = ...
  local r = receiver.dispatch(l, check("dispatchEvent", ...).U, ev)
  return r  -- not a tail call: an error points at the caller
end

LISTENER_MT.__index = function(l, k)
  local m = methods[k]
  if m then return m end
  local s = state(l)
  if k == "address" then return s.address end
  if k == "onconnect" then return s.onconnect or nil end
  return nil
end

LISTENER_MT.__newindex = function(l, k, v)
  local s = state(l)
  if k ~= "onconnect" then
    error(ET.field_error(k, "Listener"), 2)
  end
  local err = ET.set_handler(l, s.U, noop, k, "connect", v)
  if err then error(err, 2) end
  s.onconnect = v or false
end

LISTENER_MT.__tostring = function(l)
  local s = state(l)
  return format("Listener (%s%s)", s.address, s.closed and ", closed" or "")
end

local function new_listener(port, bound)
  local l = setmetatable({}, LISTENER_MT)
  local s = { port = port, address = bound, U = {}, onconnect = false,
              closed = false }
  rawset(l, STATE, s)
  -- Each message brings a new link's port, refused until handed over
  -- here. With no connect listener the port is left to the collector,
  -- which closes the link.
  port.onmessage = function(ev)
    if s.closed then return core.net_refuse(ev.data) end  -- see close
    local c = ET.new_event("connect", l, nil)
    c.port = ev.data
    core.net_accept(ev.data)  -- last: what raised before leaves it refused
    scheduler.dispatch_now(l, s.U, c)
  end
  return l
end

-- The socket is bound once core.listen has made the port: if anything
-- after that raises (out of memory), the port is closed at once, so that
-- the address is free again rather than when the collector finds it.
local function give_up(holder, err)
  local port = holder[1]
  if port then
    pcall(port.close, port)
    pcall(core.net_sync)
  end
  error(err, 3)
end

function M.listen(...)
  local holder = { false }
  -- core.listen's errors have no position: they get the caller's
  local ok, port, bound = pcall(core.listen, holder, ...)
  if not ok then give_up(holder, port) end
  local l
  ok, l = pcall(new_listener, port, bound)
  if not ok then give_up(holder, l) end
  return l
end

-- connect(address [, options]) -> port: C's own, so that its errors
-- point at the caller.
M.connect = core.connect

return M
