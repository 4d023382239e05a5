-- messagechannel.port: MessageChannel, and the parts of MessagePort that
-- are written in Lua: its listeners and handler fields (the EventTarget
-- model), dispatchEvent and receive. postMessage, start, close and
-- ref/unref are C (src/port.c), in the same methods table.

local core = require "messagechannel.core"
local ET = require "messagechannel.eventtarget"
local scheduler = require "messagechannel.scheduler"

local M = {}

local error, ipairs, select, setmetatable, tostring, type =
  error, ipairs, select, setmetatable, tostring, type
local format = string.format

local methods, uservalue, changed = core.port_methods, core.uservalue,
  core.changed

-- Handler field -> event type: onmessage, onmessageerror, onclose.
local HANDLERS = {}
for _, typ in ipairs(core.receiver_events) do HANDLERS["on" .. typ] = typ end

local function check_port(port, name)
  local U = uservalue(port)
  if not U then
    error(format("bad argument #1 to '%s' (MessagePort expected, got %s)",
                 name, type(port)), 3)
  end
  return U
end

function methods.addEventListener(port, ...)
  local U = check_port(port, "addEventListener")
  local err = ET.add(port, U, changed, select("#", ...), ...)
  if err then error(err, 2) end
end

function methods.removeEventListener(port, ...)
  local U = check_port(port, "removeEventListener")
  local err = ET.remove(port, U, changed, select("#", ...), ...)
  if err then error(err, 2) end
end

function methods.dispatchEvent(port, ev)
  local U = check_port(port, "dispatchEvent")
  if type(ev) ~= "table" or type(ev.type) ~= "string" then
    error("bad argument #1 to 'dispatchEvent' (table with a string 'type' "
          .. "expected)", 2)
  end
  ET.prepare(ev, port)
  scheduler.dispatch_now(port, U, ev)
  ET.finish(ev)
  return not ev.defaultPrevented
end

function methods.receive(port, timeout)
  local U = check_port(port, "receive")
  local ev, why = scheduler.receive(port, U, timeout, "receive")
  return ev, why
end

core.port_metatable.__newindex = function(port, k, v)
  local U = check_port(port, "__newindex")
  local typ = HANDLERS[k]
  local err = not typ and ET.field_error(k, "MessagePort")
    or ET.set_handler(port, U, changed, k, typ, v)
  if err then error(err, 2) end
  if typ == "message" and v ~= nil then port:start() end
end

---------------------------------------------------------------------------
-- MessageChannel and MessagePort
---------------------------------------------------------------------------

local CHANNEL_MT = {}

CHANNEL_MT.__tostring = function(ch)
  setmetatable(ch, nil)
  local s = tostring(ch)
  setmetatable(ch, CHANNEL_MT)
  return "MessageChannel (" .. (s:match("0x%x+") or s) .. ")"
end

CHANNEL_MT.__newindex = function(_, k)
  error(ET.field_error(k, "MessageChannel"), 2)
end

local function new_channel()
  local p1, p2 = core.channel()
  return setmetatable({ port1 = p1, port2 = p2 }, CHANNEL_MT)
end

M.MessageChannel = setmetatable({ new = new_channel }, {
  __call = function() return new_channel() end,
})

M.MessagePort = setmetatable({}, {
  __call = function() error("TypeError: Illegal constructor", 2) end,
  __newindex = function() error("TypeError: MessagePort is read-only", 2) end,
})

return M
