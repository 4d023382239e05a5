-- messagechannel.port: MessageChannel, and the parts of MessagePort that
-- are written in Lua: receive and mc.receive; its listeners, handler
-- fields and dispatchEvent are messagechannel.receiver's. postMessage,
-- pending, start, close and ref/unref are C (src/port.c), in the same
-- methods table.

local core = require "messagechannel.core"
local ET = require "messagechannel.eventtarget"
local receiver = require "messagechannel.receiver"
local scheduler = require "messagechannel.scheduler"

local M = {}

local error, getmetatable, rawequal, rawget, select, setmetatable, tostring,
  type = error, getmetatable, rawequal, rawget, select, setmetatable,
  tostring, type
local format = string.format

local methods, uservalue = core.port_methods, core.uservalue
-- returns its arguments, and lets go of a kept message (see scheduler.kept)
local received = core.received

-- Handler field -> event type: onmessage, onmessageerror, onclose (a
-- port has no error events: those are a BroadcastChannel's over NATS).
local HANDLERS = { onmessage = "message", onmessageerror = "messageerror",
                   onclose = "close" }

-- Setting onmessage starts the port (HTML). It starts first: a port
-- started without a listener keeps its messages, while a handler set on
-- a port that failed to start would never hear them.
local check_port = receiver.install(methods, core.port_metatable,
  "MessagePort", HANDLERS, function(port, typ, v)
    if typ == "message" and v ~= nil then port:start() end
  end)

function methods.receive(...)
  local port, timeout = ...
  local U = check_port("receive", ...)
  local ev, why = scheduler.receive(port, U, timeout, "receive")
  return received(ev, why)  -- last: see scheduler.kept
end

-- mc.receive(ports [, timeout]): the first message to arrive at any of
-- ports (API.md 11), with its port.
function M.receive(...)
  local ports, timeout = ...
  if not ET.is_plain_table(ports) then
    error(format("bad argument #1 to 'receive' (array of MessagePorts "
                 .. "expected, got %s)",
                 ET.typename(ports, select("#", ...) >= 1)), 2)
  end
  -- Read raw, as every Lua version reads it; a hole is an error, as in a
  -- transfer list.
  local n = 0
  while rawget(ports, n + 1) ~= nil do n = n + 1 end
  for k in next, ports do
    if type(k) == "number" and k > n and k % 1 == 0 then
      error(format("bad argument #1 to 'receive' (array of MessagePorts "
                   .. "expected, not a hole at index %d)", n + 1), 2)
    end
  end
  local objs, Us, seen = {}, {}, {}
  for i = 1, n do
    local port = rawget(ports, i)
    local U = rawequal(getmetatable(port), core.port_metatable) and uservalue(port)
    if not U then
      error(format("bad argument #1 to 'receive' (MessagePort expected at "
                   .. "index %d, got %s)", i, ET.typename(port, true)), 2)
    end
    if not seen[port] then
      seen[port] = true
      objs[#objs + 1], Us[#Us + 1] = port, U
    end
  end
  if not objs[1] then
    error("bad argument #1 to 'receive' (empty array of MessagePorts)", 2)
  end
  local ev, port = scheduler.receive_many(objs, Us, timeout)
  return received(ev, port)  -- after the call, whose errors point at the
end                          -- caller; last: see scheduler.kept

---------------------------------------------------------------------------
-- MessageChannel and MessagePort
---------------------------------------------------------------------------

-- A channel keeps its ports under a key of its own, so that port1 and
-- port2 are read through __index and assigning them raises like any
-- other field.
local PORTS = {}
local PORT_INDEX = { port1 = 1, port2 = 2 }

local CHANNEL_MT = { __name = "MessageChannel" }  -- as argument errors name it
core.not_cloneable(CHANNEL_MT, "MessageChannel")  -- as on the web

CHANNEL_MT.__index = function(ch, k)
  local i = PORT_INDEX[k]
  if i then return rawget(ch, PORTS)[i] end
  return nil
end

CHANNEL_MT.__tostring = function(ch)
  setmetatable(ch, nil)
  local s = tostring(ch)
  setmetatable(ch, CHANNEL_MT)
  return "MessageChannel (" .. (s:match("0x%x+") or s) .. ")"
end

CHANNEL_MT.__newindex = function(_, k)
  error(ET.field_error(k, "MessageChannel"), 2)
end

-- MessageChannel([options]): options.capacity bounds each port's queue
-- (API.md 11).
local function new_channel(options)
  local capacity
  if options ~= nil then
    if not ET.is_plain_table(options) then
      error(format("bad argument #1 to 'MessageChannel' (table expected, "
                   .. "got %s)", ET.typename(options, true)), 3)
    end
    for k in next, options do  -- a typo is not a missing option
      if k ~= "capacity" then
        error(format("bad argument #1 to 'MessageChannel' (unknown option "
                     .. "%s)", ET.keyname(k)), 3)
      end
    end
    capacity = options.capacity
    if capacity ~= nil and (type(capacity) ~= "number" or capacity < 1
                            or capacity ~= math.floor(capacity)
                            or capacity == math.huge) then
      error("bad argument #1 to 'MessageChannel' (capacity must be an "
            .. "integer >= 1)", 3)
    end
    -- no queue holds 2^53 messages: a larger bound is the same bound
    if capacity ~= nil and capacity > 2 ^ 53 then capacity = 2 ^ 53 end
  end
  local p1, p2 = core.channel(capacity)
  return setmetatable({ [PORTS] = { p1, p2 } }, CHANNEL_MT)
end

M.MessageChannel = receiver.class(new_channel)

M.MessagePort = setmetatable({}, {
  __call = function() error("TypeError: Illegal constructor", 2) end,
  __newindex = function() error("TypeError: MessagePort is read-only", 2) end,
})

return M
