-- BroadcastChannel delivery across threads (API.md 11) against Node.js's
-- BroadcastChannel doing the same (bench/broadcast.js): 1, 4 and 16
-- listener workers each open the channel "bench" and count; the main
-- thread posts MESSAGES small tables ({ i = i, name = "x" }) on its own
-- channel of that name; a round ends when every worker has counted them
-- all and said so on its parentPort. Time per message posted (each one
-- delivered to every listener), wall clock, medians over BLOCKS blocks of
-- PER_BLOCK rounds, Lua and Node alternating block by block. Workers are
-- started once per block and not timed. No target: the figures are
-- printed side by side.
--
--   lua5.4 bench/broadcast.lua

local arg = arg
local VERSION = _VERSION
local jit = rawget(_G, "jit")
local format = string.format
local type, require, print, tonumber, error, tostring = type, require,
  print, tonumber, error, tostring
local popen = io.popen

local root = ((arg and arg[0] or ""):match("^(.*[/\\])") or "") .. "../"
local build = type(jit) == "table" and "luajit" or VERSION:match("%d+%.%d+")
package.path = root .. "?.lua;" .. root .. "lua/?.lua;" .. root
  .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/" .. build .. "/?.so;" .. package.cpath

local common = require "bench.common"
local mc = require "messagechannel"

local LISTENERS = { 1, 4, 16 }
local MESSAGES = { [1] = 20000, [4] = 20000, [16] = 5000 }
local BLOCKS, PER_BLOCK = 5, 3
local WAIT = 30

local LISTENER = [[
local mc = require "messagechannel"
local n = mc.workerData
local bc = mc.BroadcastChannel("bench")
local got = 0
bc.onmessage = function(e)
  if e.data.i ~= got + 1 then error("out of order") end
  got = got + 1
  if got == n then
    got = 0
    mc.parentPort:postMessage("done")
  end
end
mc.parentPort.onmessage = function()  -- stop
  bc:close()
  mc.parentPort:close()
end
mc.parentPort:postMessage("ready")
]]

-- PER_BLOCK Lua rounds with `listeners` workers: seconds per message.
local function lua_block(listeners)
  local n = MESSAGES[listeners]
  local bc = mc.BroadcastChannel("bench")
  local signal = mc.MessageChannel()
  local workers, ready, done = {}, 0, 0
  for k = 1, listeners do
    local w = mc.Worker(LISTENER, { eval = true, data = n })
    w.onmessage = function(e)
      if e.data == "ready" then
        ready = ready + 1
        if ready == listeners then signal.port1:postMessage("ready") end
      else
        done = done + 1
        if done == listeners then
          done = 0
          signal.port1:postMessage("done")
        end
      end
    end
    w.onerror = function(e) error("listener: " .. tostring(e.error), 0) end
    workers[k] = w
  end
  local function wait(what)
    local ev = signal.port2:receive(WAIT)
    if not ev or ev.data ~= what then error("broadcast bench: no " .. what) end
  end
  wait("ready")
  local out = {}
  for r = 0, PER_BLOCK do
    local t0 = mc.now()
    for i = 1, n do bc:postMessage({ i = i, name = "x" }) end
    wait("done")
    if r > 0 then out[r] = (mc.now() - t0) / n end  -- round 0: warm-up
  end
  for k = 1, listeners do workers[k]:postMessage("stop") end
  bc:close()
  mc.run()
  return out
end

local has_node = popen("command -v node"):read("*l")
local node_err

local function node_block(listeners)
  local n = MESSAGES[listeners]
  local f = popen(format("node %sbench/broadcast.js %d %d %d 2>&1", root,
                         listeners, n, PER_BLOCK))
  local text = f:read("*a")
  f:close()
  local out = {}
  for v in text:gmatch("round (%S+)") do out[#out + 1] = tonumber(v) / n end
  if #out ~= PER_BLOCK then return nil, text end
  return out
end

local lua_s, node_s = {}, {}
for _, l in ipairs(LISTENERS) do lua_s[l], node_s[l] = {}, {} end
for _ = 1, BLOCKS do
  for _, l in ipairs(LISTENERS) do
    local s = lua_block(l)
    for i = 1, #s do lua_s[l][#lua_s[l] + 1] = s[i] end
    if has_node and not node_err then
      local t, err = node_block(l)
      if t then
        for i = 1, #t do node_s[l][#node_s[l] + 1] = t[i] end
      else
        node_err = err
      end
    end
  end
end

local function spread(list, med)
  local lo, hi = list[1], list[1]
  for i = 2, #list do
    if list[i] < lo then lo = list[i] end
    if list[i] > hi then hi = list[i] end
  end
  return format("%+.0f%%..%+.0f%%", (lo / med - 1) * 100, (hi / med - 1) * 100)
end

print(format("BroadcastChannel across threads, %s vs Node.js %s: the main "
             .. "thread posts, every listener worker receives",
             common.version(),
             has_node and popen("node -v"):read("*l") or "(not found)"))
print(format("%-10s  %9s  %14s  %14s  %14s  %s", "listeners", "messages",
             "Lua us/msg", "Node us/msg", "spread (Lua)", "Lua's rate / Node's"))
for _, l in ipairs(LISTENERS) do
  local lm = common.median(lua_s[l])
  local nm = #node_s[l] > 0 and common.median(node_s[l]) or nil
  print(format("%-10d  %9d  %14.2f  %14s  %14s  %s", l, MESSAGES[l], lm * 1e6,
               nm and format("%.2f", nm * 1e6) or "-", spread(lua_s[l], lm),
               nm and format("%.2fx", nm / lm) or "-"))
end
if node_err then print("Node.js failed: " .. node_err) end
print()
