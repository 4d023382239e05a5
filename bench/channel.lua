-- In-state MessageChannel throughput: post a batch of small tables on
-- port1, then dispatch them all to port2's onmessage with mc.run(),
-- against Node.js's in-thread MessageChannel doing the same with the same
-- payload (bench/channel.js), and against the hand-written Lua floor: the
-- same batch copied by a constructor of its shape into a queue, then an
-- event table made and a listener called for each. Lua, floor and Node
-- rounds alternate, in blocks, so machine noise falls on all three. A
-- fourth workload posts `true` instead of the table: the cost of queueing
-- and dispatch alone, which no codec can remove.
-- Targets: on Lua 5.4 at least 2x Node's messages per second; on every
-- version a time per message at most 1.5x the floor's.
--
--   lua5.4 bench/channel.lua

local arg = arg
local VERSION = _VERSION
local jit = rawget(_G, "jit")
local format = string.format
local type, require, print, tonumber = type, require, print,
  tonumber
local popen = io.popen

local root = ((arg and arg[0] or ""):match("^(.*[/\\])") or "") .. "../"
local build = type(jit) == "table" and "luajit" or VERSION:match("%d+%.%d+")
package.path = root .. "?.lua;" .. root .. "lua/?.lua;" .. root
  .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/" .. build .. "/?.so;" .. package.cpath

local common = require "bench.common"
local mc = require "messagechannel"

local TARGET_RATIO = 2
local TARGET_VERSION = "Lua 5.4"
local FLOOR_RATIO = 1.5
local BATCH, BLOCKS, PER_BLOCK = 20000, 5, 3

local function message()
  return { id = 1, name = "hello", tags = { "a", "b" },
           pos = { x = 1.5, y = -2 } }
end

local ch = mc.MessageChannel()
local got = 0
ch.port2.onmessage = function(e)
  local data = e.data
  if data ~= true and data.pos.y ~= -2 then error("bad message") end
  got = got + 1
end

-- Seconds per message for one batch, by the wall clock (as Node's).
-- With `value`, that value instead of the small table.
local function lua_round(value)
  local msg = value or message()
  got = 0
  local post = ch.port1
  local t0 = mc.now()
  for _ = 1, BATCH do post:postMessage(msg) end
  mc.run()
  local t = mc.now() - t0
  if got ~= BATCH then error("dispatched " .. got .. " of " .. BATCH) end
  return t / BATCH
end

-- The floor: what any design that builds Lua tables pays per message, a
-- copy of the message's shape, an event and a listener call.
local floor_got = 0
local function floor_listener(ev)
  if ev.data.pos.y ~= -2 then error("bad message") end
  floor_got = floor_got + 1
end
local EVENT_MT = { __index = { origin = "", lastEventId = "" } }
local queue = {}
local function floor_round()
  local msg = message()
  floor_got = 0
  local t0 = mc.now()
  for i = 1, BATCH do
    local tags, pos = msg.tags, msg.pos
    queue[i] = { id = msg.id, name = msg.name, tags = { tags[1], tags[2] },
                 pos = { x = pos.x, y = pos.y } }
  end
  for i = 1, BATCH do
    local data = queue[i]
    queue[i] = nil
    floor_listener(setmetatable({ type = "message", data = data,
                                  target = queue, currentTarget = queue },
                                EVENT_MT))
  end
  local t = mc.now() - t0
  if floor_got ~= BATCH then error("floor: " .. floor_got .. " of " .. BATCH) end
  return t / BATCH
end

-- Node's samples for one block, or nil and why.
local function node_block()
  local cmd = format("node %sbench/channel.js %d %d 2>&1", root, BATCH,
                     PER_BLOCK)
  local f = popen(cmd)
  if not f then return nil, "cannot run node" end
  local out = f:read("*a")
  f:close()
  local samples = {}
  for s in out:gmatch("round (%S+)") do samples[#samples + 1] = tonumber(s) end
  if #samples ~= PER_BLOCK then
    return nil, (out:gsub("%s+$", ""))
  end
  return samples
end

local has_node = popen("command -v node"):read("*l")

lua_round() -- warm-up
lua_round(true)
floor_round()
local lua_s, floor_s, node_s, node_err = {}, {}, {}, nil
local bare_s = {}
for _ = 1, BLOCKS do
  for _ = 1, PER_BLOCK do
    collectgarbage()
    lua_s[#lua_s + 1] = lua_round()
    collectgarbage()
    floor_s[#floor_s + 1] = floor_round()
    collectgarbage()
    bare_s[#bare_s + 1] = lua_round(true)
  end
  if has_node and not node_err then
    local s, err = node_block()
    if s then
      for i = 1, #s do node_s[#node_s + 1] = s[i] end
    else
      node_err = err
    end
  end
end

local function record(name, samples)
  local r = { name = name, samples = samples, batch = BATCH,
              median = common.median(samples) }
  r.min, r.max = math.huge, -math.huge
  for i = 1, #samples do
    r.min, r.max = math.min(r.min, samples[i]), math.max(r.max, samples[i])
  end
  r.ops = 1 / r.median
  return r
end

print(format("in-state throughput, %s: post %d small tables, then dispatch "
             .. "them all", common.version(), BATCH))
local results = { record("messagechannel post+dispatch", lua_s),
                  record("hand-written Lua floor", floor_s) }
if #node_s > 0 then
  results[3] = record("Node.js MessageChannel", node_s)
end
local bare = record("messagechannel, true posted", bare_s)
common.print_lines(common.table({ results[1], bare, results[2],
                                  results[3] }))
print("")
-- What no codec can remove: queueing, the scheduler, the event, the call.
print(format("queueing and dispatch alone (true posted): %.2f us a message, "
             .. "%.2fx the floor's time%s", bare.median * 1e6,
             bare.median / results[2].median,
             results[3] and format(", %.2fx Node's messages per second",
                                   results[3].median / bare.median) or ""))

local fx = results[1].median / results[2].median
print(format("messagechannel's time per message / the floor's: %.2fx "
             .. "(target: <= %.1fx): %s", fx, FLOOR_RATIO,
             fx <= FLOOR_RATIO and "met" or "NOT met"))
if results[3] then
  print(common.ratio_line(results[2], results[3]))
end

if not has_node then
  print("Node.js: not found (install the Debian package nodejs); no ratio")
elseif node_err then
  print("Node.js: failed: " .. node_err)
else
  local x = common.ratio(results[1], results[3])
  print(common.ratio_line(results[1], results[3]))
  local verdict = x >= TARGET_RATIO and "met" or "NOT met"
  if VERSION == TARGET_VERSION and type(jit) ~= "table" then
    print(format("target: >= %dx Node's messages per second on %s: %s",
      TARGET_RATIO, TARGET_VERSION, verdict))
  else
    print(format("target: >= %dx Node's messages per second on %s: does "
      .. "not apply to %s (this ratio: %.1fx)", TARGET_RATIO,
      TARGET_VERSION, common.version(), x))
  end
end
