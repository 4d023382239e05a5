-- messagechannel: MessageChannel and MessagePort for Lua.
-- This facade is what `require "messagechannel"` returns; the work is done
-- in C by messagechannel.core and, for listeners and the scheduler, by
-- messagechannel.scheduler.

local core = require "messagechannel.core"
local scheduler = require "messagechannel.scheduler"

local M = {}

M.version = "0.1.0"

M.structuredClone = core.structuredClone
M.serialize = core.serialize
M.deserialize = core.deserialize
M.register = core.register
M.Buffer = core.Buffer

M.MessageChannel = scheduler.MessageChannel
M.MessagePort = scheduler.MessagePort

M.run = scheduler.run
M.step = scheduler.step
M.spawn = scheduler.spawn
M.sleep = scheduler.sleep
M.now = scheduler.now
scheduler.facade = M

M.install = require("messagechannel.install").new(M.MessageChannel,
                                                  M.MessagePort)

-- Threads. In a worker, the first message brings workerData and the port
-- to the parent, and an error nobody takes ends the worker.
local worker = require "messagechannel.worker"
local info = core.worker_info()
M.Worker = worker.Worker
M.isMainThread = info == nil
M.workerData = info and info.data
M.parentPort = info and info.port
-- mc.onerror = nil brings back the default: in a worker, to end it.
if info then scheduler.default_onerror = worker.raise end
M.onerror = scheduler.default_onerror

return M
