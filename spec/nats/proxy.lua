-- A TCP proxy for the NATS specs (spec/24-nats_spec.lua), started by
-- spec/nats/helper.lua: it listens on 127.0.0.1:PORT (0: a free port) and
-- joins each connection to 127.0.0.1:TARGET, bytes both ways, until either
-- side closes. Killing it cuts every client behind it off the server while
-- the server and its other clients go on; a new proxy on the same port
-- lets the clients reconnect.
--
--   proxy.lua TARGET PORT [life]
--
-- It writes "listening <port>" once it accepts, and ends after `life`
-- seconds (default 60) whatever happens.

local socket = require "socket"

io.stdout:setvbuf("line")

local target, port = tonumber(arg[1]), tonumber(arg[2])
local life = tonumber(arg[3]) or 60
local deadline = socket.gettime() + life

local server
for _ = 1, 200 do  -- the port may still be held for a moment
  server = socket.bind("127.0.0.1", port)
  if server then break end
  socket.sleep(0.05)
end
assert(server, "cannot listen on port " .. port)
server:settimeout(0)
local _, got = server:getsockname()
io.stdout:write("listening ", got, "\n")

local other = {}   -- socket -> the socket it forwards to
local pending = {} -- socket -> bytes not yet written to it

local function drop(s)
  local o = other[s]
  other[s], pending[s] = nil, nil
  s:close()
  if o then
    other[o], pending[o] = nil, nil
    o:close()
  end
end

while socket.gettime() < deadline do
  local reads = { server }
  local writes = {}
  for s in pairs(other) do
    reads[#reads + 1] = s
    if pending[s] and #pending[s] > 0 then writes[#writes + 1] = s end
  end
  local readable, writable = socket.select(reads, writes, 0.1)
  for _, s in ipairs(readable) do
    if s == server then
      local c = server:accept()
      if c then
        local up = socket.tcp()
        if up:connect("127.0.0.1", target) then
          c:settimeout(0)
          up:settimeout(0)
          other[c], other[up] = up, c
          pending[c], pending[up] = "", ""
        else
          c:close()
          up:close()
        end
      end
    elseif other[s] then
      local data, err, part = s:receive(65536)
      data = data or part
      local o = other[s]
      if data and #data > 0 then pending[o] = pending[o] .. data end
      if err == "closed" then drop(s) end
    end
  end
  for _, s in ipairs(writable) do
    local p = pending[s]
    if p and #p > 0 then
      local n, err, part = s:send(p)
      n = n or part or 0
      pending[s] = p:sub(n + 1)
      if err == "closed" then drop(s) end
    end
  end
end
