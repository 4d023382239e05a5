-- A throttling TCP proxy for the remote-port specs, with LuaSocket only.
--
--   proxy.lua TARGET_HOST TARGET_PORT CHUNK INTERVAL [LIFE]
--
-- Listens on 127.0.0.1 (a port the system chooses) and says "listening
-- tcp:127.0.0.1:<port>". It takes one client, connects it to the target,
-- and forwards bytes both ways: from the client to the target at most CHUNK
-- bytes every INTERVAL seconds, the other way as they come. When either
-- side closes it says "closed <side>", closes both and ends; it ends by
-- itself after LIFE seconds (default 60). At the end it says "forwarded
-- <n>", the bytes that reached the target, then "end".

local socket = require "socket"

io.stdout:setvbuf("line")

local host, port = arg[1], tonumber(arg[2])
local chunk, interval = tonumber(arg[3]), tonumber(arg[4])
local deadline = socket.gettime() + (tonumber(arg[5]) or 60)

local server = assert(socket.bind("127.0.0.1", 0))
local _, myport = server:getsockname()
print("listening tcp:127.0.0.1:" .. myport)
server:settimeout(deadline - socket.gettime())
local client = server:accept()
server:close()
if not client then print("closed accept") os.exit(1) end
local target = assert(socket.connect(host, port))
client:settimeout(0)
target:settimeout(0)

local up, down = "", ""  -- client to target, target to client
local forwarded = 0
local budget, refill = chunk, socket.gettime() + interval

-- Reads what s has; nil when it closed.
local function take(s)
  local data, err, part = s:receive(65536)
  data = data or part
  if err == "closed" and (data == nil or #data == 0) then return nil end
  return data or ""
end

-- Sends what it can of buf; returns the rest, or nil when s closed.
local function give(s, buf)
  if #buf == 0 then return buf end
  local n, err, part = s:send(buf)
  if n then return buf:sub(n + 1) end
  if err == "closed" then return nil end
  return buf:sub((part or 0) + 1)
end

while socket.gettime() < deadline do
  local now = socket.gettime()
  if now >= refill then
    budget, refill = chunk, now + interval
  end
  -- throttled: read from the client only what the budget allows
  if #up == 0 and budget > 0 then
    local data, err, part = client:receive(budget)
    data = data or part
    if data and #data > 0 then
      up = data
      budget = budget - #data
    elseif err == "closed" then
      print("closed client")
      break
    end
  end
  local rest = give(target, up)
  if rest == nil then print("closed target") break end
  forwarded = forwarded + (#up - #rest)
  up = rest
  if #down == 0 then
    local data = take(target)
    if data == nil then print("closed target") break end
    down = data
  end
  rest = give(client, down)
  if rest == nil then print("closed client") break end
  down = rest
  socket.sleep(math.min(interval, 0.005))
end
print("forwarded " .. forwarded)
-- what is left to forward still goes, so a close travels after the data
client:settimeout(1)
target:settimeout(1)
if #up > 0 then target:send(up) end
if #down > 0 then client:send(down) end
client:close()
target:close()
print("end")
