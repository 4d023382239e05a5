-- messagechannel: MessageChannel and MessagePort for Lua.
-- This facade is what `require "messagechannel"` returns; the work is done
-- in C by messagechannel.core.

local core = require "messagechannel.core"

local M = {}

M.version = "0.1.0"

M.structuredClone = core.structuredClone
M.serialize = core.serialize
M.deserialize = core.deserialize
M.register = core.register
M.Buffer = core.Buffer

return M
