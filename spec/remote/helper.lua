-- Helpers for the remote-port specs (21-remote, 22-remote-delivery): peer
-- processes started from spec/remote/peer.lua and spec/remote/proxy.lua
-- with this interpreter and these package paths, their output read
-- without blocking the scheduler, temporary socket paths, frames of the
-- wire format for raw LuaSocket clients, and what /proc says about this
-- process (memory, descriptors).
--
-- Nothing here waits on wall-clock time for a result: every wait is for a
-- condition, under a generous bound, so a bug fails a spec instead of
-- hanging the suite. Each peer has its own deadline too (`life`), so a
-- peer that a crashed run leaves behind ends by itself.

local mc = require "messagechannel"

local R = {}

local format, concat, char = string.format, table.concat, string.char
local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

-- What this process runs under, from the LD_PRELOAD the sanitizer runs
-- (make check, make tsan) and valgrind (make valgrind) set: "asan",
-- "tsan", "valgrind" or nil. Memory bounds mean nothing under them (ASan
-- keeps freed memory in quarantine), and valgrind runs threads one at a
-- time, many times slower.
do
  local preload = os.getenv("LD_PRELOAD") or ""
  R.sanitizer = preload:find("vgpreload", 1, true) and "valgrind"
                or preload:find("libasan", 1, true) and "asan"
                or preload:find("libtsan", 1, true) and "tsan" or nil
end

-- A factor for heartbeats and busy periods that must not look like
-- silence, and for waits: 1, 3 under ASan or TSan, 10 under valgrind.
R.SLOW = R.sanitizer == "valgrind" and 10 or R.sanitizer and 3 or 1

R.WAIT = 20 * R.SLOW  -- seconds any single wait may take before failing

------------------------------------------------------------------------------
-- The interpreter and the shell
------------------------------------------------------------------------------

-- The command that runs this interpreter: arg[-1] when busted was started
-- as `lua5.x /usr/bin/busted`, else derived from the running Lua.
function R.interpreter()
  local a = rawget(_G, "arg")
  local i = type(a) == "table" and a[-1]
  if type(i) == "string" and i ~= "" then return i end
  if rawget(_G, "jit") then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

-- s quoted for sh.
function R.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command; true when it exited with status 0 (any version).
function R.sh(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end  -- 5.1, LuaJIT without 5.2 compat
  return a == true and (c == nil or c == 0)
end

-- The process id of this process.
function R.mypid()
  local f = assert(io.open("/proc/self/stat"))
  local s = f:read("*l")
  f:close()
  return tonumber(s:match("^(%d+)"))
end

------------------------------------------------------------------------------
-- Temporary files and directories
------------------------------------------------------------------------------

local dirs = {}

-- A new empty directory, removed by R.cleanup().
function R.tmpdir()
  local name = os.tmpname()
  os.remove(name)
  assert(R.sh("mkdir -m 700 " .. R.quote(name)), "cannot make " .. name)
  dirs[#dirs + 1] = name
  return name
end

local counter = 0

-- A fresh "unix:/path" address (the path does not exist yet).
function R.unix_address()
  counter = counter + 1
  return "unix:" .. R.tmpdir() .. "/s" .. counter
end

function R.exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  -- a socket cannot be opened as a file: ask the shell
  return R.sh("test -e " .. R.quote(path))
end

function R.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function R.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

------------------------------------------------------------------------------
-- Waiting, with the scheduler running
------------------------------------------------------------------------------

-- Runs the scheduler in small sleeps until cond() is true or `timeout`
-- seconds (R.WAIT) pass; returns whether cond() became true.
function R.wait(cond, timeout)
  local deadline = mc.now() + (timeout or R.WAIT)
  while true do
    if cond() then return true end
    if mc.now() >= deadline then return false end
    mc.sleep(0.01)
  end
end

-- Asserts R.wait(cond, timeout), naming what was awaited.
function R.await(what, cond, timeout)
  if not R.wait(cond, timeout) then
    error("gave up waiting for " .. what, 2)
  end
end

------------------------------------------------------------------------------
-- Peer processes
------------------------------------------------------------------------------

local procs = {}

local Proc = {}
Proc.__index = Proc

-- Starts `script` (a path) with this interpreter, this process's package
-- paths and the arguments given (strings), its output (stdout and stderr)
-- going to a file that Proc:lines() reads.
function R.spawn(script, ...)
  return R.spawn_env("", script, ...)
end

-- R.spawn, with `env_extra` ("NAME=value ...", quoted for sh) added to the
-- peer's environment.
function R.spawn_env(env_extra, script, ...)
  local dir = R.tmpdir()
  local out = dir .. "/out"
  local args = {}
  for i = 1, select("#", ...) do args[i] = R.quote((select(i, ...))) end
  -- The versioned variables come first in 5.2+; set them all alike.
  local env = {}
  for _, v in ipairs { "", "_5_2", "_5_3", "_5_4" } do
    env[#env + 1] = "LUA_PATH" .. v .. "=" .. R.quote(package.path)
    env[#env + 1] = "LUA_CPATH" .. v .. "=" .. R.quote(package.cpath)
  end
  env[#env + 1] = env_extra
  local inner = format("echo $$; %s exec %s %s %s >%s 2>&1", concat(env, " "),
                       R.interpreter(), R.quote(script), concat(args, " "),
                       R.quote(out))
  local pipe = assert(io.popen(inner, "r"))  -- sh -c inner: $$ is lua's
  local pid = tonumber(pipe:read("*l"))
  assert(pid, "no pid from the peer's shell")
  local p = setmetatable({ pid = pid, out = out, pipe = pipe, dir = dir,
                           script = script }, Proc)
  procs[#procs + 1] = p
  return p
end

-- The peer of spec/remote/peer.lua with these arguments.
function R.peer(...)
  return R.spawn("spec/remote/peer.lua", ...)
end

-- Every line the process wrote so far.
function Proc:lines()
  local s = R.read_file(self.out) or ""
  local t = {}
  for line in s:gmatch("([^\n]*)\n") do t[#t + 1] = line end
  return t
end

-- The captures of the first line matching `pattern` (a Lua pattern
-- anchored at the line's start), or nil.
function Proc:find(pattern)
  for _, line in ipairs(self:lines()) do
    local c = { line:match("^" .. pattern) }
    if c[1] ~= nil then return unpack(c) end
  end
  return nil
end

-- Every line matching `pattern`, as a list of first captures (or lines).
function Proc:all(pattern)
  local t = {}
  for _, line in ipairs(self:lines()) do
    local c = line:match("^" .. pattern)
    if c ~= nil then t[#t + 1] = c end
  end
  return t
end

-- Waits (running the scheduler) for a line matching `pattern`; returns its
-- captures. Raises, with the peer's output, when none comes.
function Proc:expect(pattern, timeout)
  local res
  local ok = R.wait(function()
    res = { self:find(pattern) }
    return res[1] ~= nil
  end, timeout)
  if not ok then
    error(format("peer %s: no line matching %q in:\n%s", self.script, pattern,
                 concat(self:lines(), "\n")), 2)
  end
  return unpack(res)
end

-- Whether the process still runs (not ended, not a zombie).
function Proc:alive()
  if self.closed then return false end
  local s = R.read_file("/proc/" .. self.pid .. "/stat")
  if not s then return false end
  local state = s:match("^%d+ %b() (%a)")
  return state ~= "Z" and state ~= "X"
end

function Proc:signal(sig)
  if self.closed then return false end
  return R.sh(format("kill -%s %d 2>/dev/null", sig, self.pid))
end

-- Sends SIGSTOP and waits until the process is stopped (/proc/PID/stat
-- says T): kill returns before the signal lands, and a process that runs
-- on meanwhile may still answer a connect. Returns whether it stopped.
function Proc:stop()
  if not self:signal("STOP") then return false end
  return R.wait(function()
    local f = io.open("/proc/" .. self.pid .. "/stat")
    if not f then return false end
    local st = f:read("*a"):match("^%d+ %b() (%a)")
    f:close()
    return st == "T" or st == "t"
  end)
end

-- Waits for the process to end by itself, then reaps it.
function Proc:wait_end(timeout)
  local ok = R.wait(function() return not self:alive() end, timeout)
  if ok then self:finish() end
  return ok
end

-- Ends the process (SIGCONT first, in case it is stopped, then SIGKILL)
-- and reaps it. Idempotent.
function Proc:finish()
  if self.closed then return end
  if self:alive() then
    self:signal("CONT")
    self:signal("KILL")
  end
  self.closed = true
  self.pipe:close()
end

-- Ends every peer started and removes the temporary directories; for
-- after_each.
function R.cleanup()
  for i = #procs, 1, -1 do
    pcall(Proc.finish, procs[i])
    procs[i] = nil
  end
  for i = #dirs, 1, -1 do
    os.execute("rm -rf " .. R.quote(dirs[i]))
    dirs[i] = nil
  end
end

-- For a describe block of remote specs, given busted's before_each and
-- after_each: mc.onerror is caught into `errors` around each spec
-- (spec.helper's error_hooks(settle)); after it, what the spec put in
-- `made` (listeners, ports; a new array unless given) is closed, and so
-- are the raw sockets (R.raw), and the peers end (R.cleanup). Returns
-- errors and made.
function R.specs(settle, before_each, after_each, made)
  local errors, catch, release = require("spec.helper").error_hooks(settle)
  made = made or {}
  before_each(catch)
  after_each(function()
    for i = #made, 1, -1 do
      pcall(made[i].close, made[i])
      made[i] = nil
    end
    R.close_raw()
    R.cleanup()
    release()
  end)
  return errors, made
end

-- Starts a listening peer and returns it and the address it reports.
function R.listening_peer(...)
  local p = R.peer("listen", ...)
  local address = p:expect("listening (%S+)")
  return p, address
end

------------------------------------------------------------------------------
-- The wire format (src/wire.c), for raw clients
------------------------------------------------------------------------------

function R.u32(n)
  return char(n % 256, math.floor(n / 256) % 256,
              math.floor(n / 65536) % 256, math.floor(n / 16777216) % 256)
end

function R.u64(n)
  return R.u32(n % 4294967296) .. R.u32(math.floor(n / 4294967296))
end

function R.get_u32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return a + b * 256 + c * 65536 + d * 16777216
end

-- A frame: u32 length of what follows, the type byte, the body.
function R.frame(kind, body)
  return R.u32(#body + 1) .. kind .. body
end

function R.hello(token, heartbeat_ms)
  return R.frame("H", "mcl1" .. R.u32(heartbeat_ms or 5000) .. (token or ""))
end

function R.close_frame(code)
  return R.frame("C", char(code or 0))
end

R.PING = R.u32(1) .. "P"

-- A MSG frame carrying value v (no buffers).
function R.msg(v)
  return R.frame("M", R.u32(0) .. mc.serialize(v))
end

-- Splits the frames at the start of s: a list of {type, body} and the
-- bytes left over.
function R.frames(s)
  local t, i = {}, 1
  while #s - i + 1 >= 4 do
    local len = R.get_u32(s, i)
    if #s - i + 1 < len + 4 then break end
    t[#t + 1] = { type = s:sub(i + 4, i + 4), body = s:sub(i + 5, i + 3 + len) }
    i = i + 4 + len
  end
  return t, s:sub(i)
end

-- A LuaSocket client connected to `address` ("unix:" or "tcp:"), with a
-- zero timeout; raw sockets are closed by R.close_raw().
local raws = {}

function R.raw(address)
  local socket = require "socket"
  local c
  if address:sub(1, 5) == "unix:" then
    local unix = require "socket.unix"
    c = assert((unix.stream or unix)())
    assert(c:connect(address:sub(6)))
  else
    local host, port = address:match("^tcp:(.*):(%d+)$")
    host = host:gsub("^%[(.*)%]$", "%1")
    c = assert(socket.tcp())
    assert(c:connect(host, tonumber(port)))
  end
  c:settimeout(0)
  raws[#raws + 1] = c
  return c
end

-- Sends all of s on raw socket c (waiting with the scheduler running).
function R.send_all(c, s)
  local i = 1
  R.await("the raw socket to take the bytes", function()
    local n, err, part = c:send(s, i)
    if n then i = #s + 1 else
      if err ~= "timeout" then return true end  -- closed: stop
      i = (part or i - 1) + 1
    end
    return i > #s
  end)
end

-- Reads from raw socket c until the peer closes it (or `timeout`); returns
-- what came and whether the end was seen.
function R.read_to_end(c, timeout)
  local got, ended = {}, false
  R.wait(function()
    local s, err, part = c:receive(65536)
    s = s or part
    if s and #s > 0 then got[#got + 1] = s end
    if err == "closed" then ended = true end
    return ended
  end, timeout)
  return concat(got), ended
end

-- Reads what raw socket c has until `pred(bytes)` holds (or `timeout`).
function R.read_until(c, pred, timeout)
  local got, ended = {}, false
  R.wait(function()
    local s, err, part = c:receive(65536)
    s = s or part
    if s and #s > 0 then got[#got + 1] = s end
    if err == "closed" then ended = true end
    return ended or pred(concat(got))
  end, timeout)
  return concat(got), ended
end

function R.close_raw()
  for i = #raws, 1, -1 do
    pcall(raws[i].close, raws[i])
    raws[i] = nil
  end
end

------------------------------------------------------------------------------
-- This process, from /proc
------------------------------------------------------------------------------

-- Resident set size in KiB.
function R.rss()
  local s = assert(R.read_file("/proc/self/status"))
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- The descriptors of process `pid` (default: this one): a table fd ->
-- what it refers to ("socket:[123]", "pipe:[4]", "anon_inode:[eventfd]").
function R.fds(pid)
  pid = pid or R.mypid()
  local p = assert(io.popen(format(
    "for f in /proc/%d/fd/*; do printf '%%s %%s\\n' \"${f##*/}\" "
    .. "\"$(readlink \"$f\")\"; done 2>/dev/null", pid)))
  local t = {}
  for line in p:lines() do
    local fd, what = line:match("^(%d+) (.*)$")
    if fd then t[tonumber(fd)] = what end
  end
  p:close()
  return t
end

return R
