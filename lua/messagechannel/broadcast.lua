-- messagechannel.broadcast: mc.BroadcastChannel(name) (API.md 11, after
-- HTML's BroadcastChannel): a message posted on one is delivered to every
-- other open channel of the same name in any thread of the process. The
-- list of channels, postMessage, close and ref/unref are C
-- (src/broadcast.c); listeners and handler fields are
-- messagechannel.receiver's.

local core = require "messagechannel.core"
local receiver = require "messagechannel.receiver"
local ET = require "messagechannel.eventtarget"
local typename = ET.typename

local M = {}

local error, format, pairs, pcall, select, type = error,
  string.format, pairs, pcall, select, type

receiver.install(core.broadcast_methods, core.broadcast_metatable,
                 "BroadcastChannel",
                 { onmessage = "message", onmessageerror = "messageerror",
                   onerror = "error" })

local function bad(n, msg)
  error(format("bad argument #%d to 'BroadcastChannel' (%s)", n, msg), 4)
end

-- options: {nats = url}, the NATS server whose subject `name` the channel
-- also publishes to and receives from (API.md 12).
local function new(...)
  local name, options = ...
  if type(name) ~= "string" then
    bad(1, "string expected, got " .. typename(name, select("#", ...) >= 1))
  end
  local url
  if options ~= nil then
    if not ET.is_plain_table(options) then
      bad(2, "table expected, got " .. typename(options, true))
    end
    for k in pairs(options) do
      if k ~= "nats" then bad(2, "unknown option " .. ET.keyname(k)) end
    end
    url = options.nats
    if url ~= nil and type(url) ~= "string" then
      bad(2, "'nats' must be a URL string, got " .. typename(url, true))
    end
  end
  local ok, bc = pcall(core.broadcast_channel, name, url)
  if not ok then error(bc, 3) end
  return bc
end

M.BroadcastChannel = receiver.class(new)

return M
