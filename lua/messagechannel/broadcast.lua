-- messagechannel.broadcast: mc.BroadcastChannel(name) (API.md 11, after
-- HTML's BroadcastChannel): a message posted on one is delivered to every
-- other open channel of the same name in any thread of the process. The
-- list of channels, postMessage, close and ref/unref are C
-- (src/broadcast.c); listeners and handler fields are
-- messagechannel.receiver's.

local core = require "messagechannel.core"
local receiver = require "messagechannel.receiver"

local M = {}

local error, format, type = error, string.format, type

receiver.install(core.broadcast_methods, core.broadcast_metatable,
                 "BroadcastChannel",
                 { onmessage = "message", onmessageerror = "messageerror" })

local function new(name)
  if type(name) ~= "string" then
    error(format("bad argument #1 to 'BroadcastChannel' (string expected, "
                 .. "got %s)", type(name)), 3)
  end
  return core.broadcast_channel(name)
end

M.BroadcastChannel = receiver.class(new)

return M
