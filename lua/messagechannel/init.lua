-- messagechannel: MessageChannel and MessagePort for Lua.
-- This facade is what `require "messagechannel"` returns; the work is done
-- in C by messagechannel.core and, in Lua, by messagechannel.port (the
-- port's listeners), messagechannel.scheduler and messagechannel.worker.

-- The C module. When it cannot be found or loaded, say how to build and
-- find it, keeping require's own message (a not-found one lists the paths
-- searched); an error of its own start (out of descriptors) is raised as
-- it is. Either way a later require may try again (Lua 5.1 would keep a
-- "loop or previous error" mark).
local core
do
  local ok, loaded = pcall(require, "messagechannel.core")
  if not ok then
    package.loaded[... or "messagechannel"] = nil
    package.loaded["messagechannel.core"] = nil
    local why = tostring(loaded)
    local build = rawget(_G, "jit") and "luajit"
      or _VERSION:match("%d+%.%d+") or "<lua version>"
    local hint = "build it with `make` (it writes build/" .. build
      .. "/messagechannel/core.so for " .. _VERSION .. ") and put that "
      .. "directory in LUA_CPATH (LUA_CPATH=\"build/" .. build .. "/?.so;;\"), "
      .. "or install messagechannel with luarocks"
    if why:find("undefined symbol", 1, true) then
      hint = "it was built for another Lua version? " .. hint
    end
    if why:find("module 'messagechannel.core' not found", 1, true) then
      error("messagechannel: the C module messagechannel.core was not found: "
            .. hint .. "\n" .. why, 0)
    elseif why:find("error loading module 'messagechannel.core'", 1, true) then
      error(why .. "\nmessagechannel: " .. hint, 0)
    end
    error(why, 0)
  end
  core = loaded
end

local scheduler = require "messagechannel.scheduler"
local port = require "messagechannel.port"

local M = {}

local rawset, setmetatable = rawset, setmetatable

M.version = "0.1.0"

M.structuredClone = core.structuredClone
M.serialize = core.serialize
M.deserialize = core.deserialize
M.register = core.register
M.Buffer = core.Buffer

M.MessageChannel = port.MessageChannel
M.MessagePort = port.MessagePort
M.receive = port.receive
M.BroadcastChannel = require("messagechannel.broadcast").BroadcastChannel
local remote = require "messagechannel.remote"
M.listen = remote.listen
M.connect = remote.connect

M.run = scheduler.run
M.step = scheduler.step
M.spawn = scheduler.spawn
M.sleep = scheduler.sleep
M.now = scheduler.now
M.spin = core.spin
scheduler.facade = M

-- Event loops (API.md 10). The module table is itself a pollable object:
-- cqueues' protocol (pollfd, events, timeout) and LuaSocket's (getfd,
-- dirty), so cqueues.poll(mc) and socket.select({mc}) wait for it.
M.pollfd = scheduler.pollfd
M.timeout = scheduler.timeout
M.getfd = scheduler.pollfd
M.dirty = scheduler.dirty
function M.events() return "r" end

M.install = require("messagechannel.install").new(M.MessageChannel,
                                                  M.MessagePort)

-- Threads. In a worker, a message brings the port to the parent, and an
-- error nobody takes ends the worker. workerData is decoded at its first
-- read, so that the worker can register the metatables it carries first.
local worker = require "messagechannel.worker"
M.Worker = worker.Worker
M.parentPort = core.worker_port()
M.isMainThread = M.parentPort == nil
M.threadId = core.thread_id()
-- mc.onerror = nil brings back the default: in a worker, to end it.
if not M.isMainThread then scheduler.default_onerror = worker.raise end
M.onerror = scheduler.default_onerror

return setmetatable(M, {
  __index = function(t, k)
    if k ~= "workerData" then return nil end
    local v = core.worker_data()
    if v ~= nil then rawset(t, k, v) end
    return v
  end,
})
