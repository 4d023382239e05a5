-- Helpers for the NATS BroadcastChannel specs (spec/24-nats_spec.lua):
-- a nats-server of their own on 127.0.0.1 (a free port, killed and
-- restarted on the same port at will), peer processes run from
-- spec/nats/peer.lua and spec/nats/proxy.lua with this interpreter and
-- these package paths, their output read without blocking the scheduler,
-- the server's monitoring figures, and raw NATS clients speaking the text
-- protocol over LuaSocket.
--
-- Nothing here waits on wall-clock time for a result: every wait is for a
-- condition, under a generous bound (N.WAIT), with the scheduler running,
-- so a bug fails a spec instead of hanging the suite. Each peer has a
-- deadline of its own (`life`), so one that a crashed run leaves behind
-- ends by itself; N.cleanup() kills every process started.

local R = require "spec.remote.helper"

local N = {}

local format, concat = string.format, table.concat
local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

N.WAIT = 15  -- seconds any single wait may take before the spec fails

------------------------------------------------------------------------------
-- The interpreter and the shell
------------------------------------------------------------------------------

-- The interpreter, quoting and the shell: the remote-port specs' helpers.
N.interpreter, N.quote, N.sh = R.interpreter, R.quote, R.sh

-- The first line a shell command prints, or nil.
local function sh_line(cmd)
  local p = io.popen(cmd)
  if not p then return nil end
  local line = p:read("*l")
  p:close()
  if line == "" then return nil end
  return line
end

-- The path of the nats-server program (PATH, then the sbin directories
-- Debian installs it in, which a user's PATH may lack), or nil.
function N.nats_server_path()
  local found = sh_line("command -v nats-server 2>/dev/null")
  if found then return found end
  for _, dir in ipairs { "/usr/sbin", "/usr/local/sbin", "/usr/local/bin",
                         "/sbin" } do
    if N.sh("test -x " .. N.quote(dir .. "/nats-server")) then
      return dir .. "/nats-server"
    end
  end
  return nil
end

function N.has_socket()
  return (pcall(require, "socket"))
end

------------------------------------------------------------------------------
-- Temporary directories
------------------------------------------------------------------------------

local dirs = {}

-- A new empty directory, removed by N.cleanup() (or N.cleanup_all()).
function N.tmpdir(keep)
  local name = os.tmpname()
  os.remove(name)
  assert(N.sh("mkdir -m 700 " .. N.quote(name)), "cannot make " .. name)
  if not keep then dirs[#dirs + 1] = name end
  return name
end

N.read_file = R.read_file

-- Writes s to path at once (through a rename), so that a reader polling
-- for path never sees it half-written.
function N.write_file(path, s)
  local f = assert(io.open(path .. ".tmp", "wb"))
  f:write(s)
  f:close()
  assert(os.rename(path .. ".tmp", path))
end

------------------------------------------------------------------------------
-- Waiting, with the scheduler running
------------------------------------------------------------------------------

-- Runs the scheduler in small sleeps until cond() is true or `timeout`
-- seconds (N.WAIT) pass; returns whether cond() became true.
function N.wait(cond, timeout)
  return R.wait(cond, timeout or N.WAIT)
end

-- Asserts N.wait(cond, timeout), naming what was awaited.
function N.await(what, cond, timeout)
  if not N.wait(cond, timeout) then
    error("gave up waiting for " .. what, 2)
  end
end

-- Asserts that cond() becomes true while peer p posts: p:command(command)
-- first, and again every 50 looks while cond() is false, as posts that
-- reach the server before this process's subscription are not heard.
function N.await_heard(what, p, command, cond)
  local looks = 0
  p:command(command)
  N.await(what, function()
    if cond() then return true end
    looks = looks + 1
    if looks % 50 == 0 then p:command(command) end
    return false
  end)
end

-- Runs the scheduler for `seconds`, whatever happens (used only to give
-- something that must NOT happen a fair chance to happen).
function N.linger(seconds)
  N.wait(function() return false end, seconds)
end

------------------------------------------------------------------------------
-- Processes
------------------------------------------------------------------------------

local procs = {}

local Proc = {}
Proc.__index = Proc

-- Starts the shell command `cmd` (already quoted) with its output (stdout
-- and stderr) going to a file that Proc:lines() reads; `env` is put before
-- it. Returns the Proc.
local function start(cmd, env, untracked, dir)
  dir = dir or N.tmpdir(untracked)
  local out = dir .. "/out"
  local inner = format("echo $$; %s exec %s >%s 2>&1 </dev/null", env or "",
                       cmd, N.quote(out))
  local pipe = assert(io.popen(inner, "r"))  -- sh -c inner: $$ is the child's
  local pid = tonumber(pipe:read("*l"))
  assert(pid, "no pid from the child's shell")
  local p = setmetatable({ pid = pid, out = out, pipe = pipe, dir = dir,
                           cmd = cmd, buf = "", seq = 0 }, Proc)
  if not untracked then procs[#procs + 1] = p end
  return p
end

-- Starts `script` (a path) with this interpreter, this process's package
-- paths and the arguments given (strings; "{dir}" in one stands for the
-- process's own directory, where its output and commands go).
function N.spawn(script, ...)
  local dir = N.tmpdir()
  local args = {}
  for i = 1, select("#", ...) do
    args[i] = N.quote((select(i, ...):gsub("{dir}", dir)))
  end
  -- The versioned variables come first in 5.2+; set them all alike.
  local env = {}
  for _, v in ipairs { "", "_5_2", "_5_3", "_5_4" } do
    env[#env + 1] = "LUA_PATH" .. v .. "=" .. N.quote(package.path)
    env[#env + 1] = "LUA_CPATH" .. v .. "=" .. N.quote(package.cpath)
  end
  local p = start(format("%s %s %s", N.interpreter(), N.quote(script),
                         concat(args, " ")), concat(env, " "), false, dir)
  p.script = script
  return p
end

-- Every line the process wrote so far (the file is read from where the
-- last call stopped; a partial last line waits for its end).
function Proc:lines()
  if not self.lines_seen then self.lines_seen = {} end
  local f = self.f
  if not f then
    f = io.open(self.out, "rb")
    self.f = f
  end
  if f then
    f:seek("cur")  -- clears a sticky end of file: the writer goes on
    local s = f:read("*a")
    if s and #s > 0 then
      local buf = self.buf .. s
      local from = 1
      for line, stop in buf:gmatch("([^\n]*)\n()") do
        self.lines_seen[#self.lines_seen + 1] = line
        from = stop
      end
      self.buf = buf:sub(from)
    end
  end
  return self.lines_seen
end

-- The captures of the first line matching `pattern` (anchored at the
-- line's start), or nil.
function Proc:find(pattern)
  for _, line in ipairs(self:lines()) do
    local c = { line:match("^" .. pattern) }
    if c[1] ~= nil then return unpack(c) end
  end
  return nil
end

-- The captures of every line matching `pattern`, as a list of lists.
function Proc:all(pattern)
  local t = {}
  for _, line in ipairs(self:lines()) do
    local c = { line:match("^" .. pattern) }
    if c[1] ~= nil then t[#t + 1] = c end
  end
  return t
end

-- How many lines match `pattern`.
function Proc:count(pattern)
  return #self:all(pattern)
end

function Proc:text()
  return concat(self:lines(), "\n") .. self.buf
end

-- Waits (running the scheduler) for a line matching `pattern`; returns its
-- captures. Raises, with the process's output, when none comes.
function Proc:expect(pattern, timeout)
  local res
  local ok = N.wait(function()
    res = { self:find(pattern) }
    return res[1] ~= nil
  end, timeout)
  if not ok then
    error(format("%s: no line matching %q in:\n%s", self.script or self.cmd,
                 pattern, self:text()), 2)
  end
  return unpack(res)
end

-- Whether the process still runs (not ended, not a zombie).
function Proc:alive()
  if self.closed then return false end
  local s = N.read_file("/proc/" .. self.pid .. "/stat")
  if not s then return false end
  local state = s:match("^%d+ %b() (%a)")
  return state ~= "Z" and state ~= "X"
end

function Proc:signal(sig)
  if self.closed then return false end
  return N.sh(format("kill -%s %d 2>/dev/null", sig, self.pid))
end

-- Gives a peer a command: the files cmd1, cmd2, ... in its directory,
-- which it polls and runs in order (spec/nats/peer.lua).
function Proc:command(line)
  self.seq = self.seq + 1
  N.write_file(self.dir .. "/cmd" .. self.seq, line)
end

-- Waits for the process to end by itself, then reaps it.
function Proc:wait_end(timeout)
  local ok = N.wait(function() return not self:alive() end, timeout)
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
  if self.f then self.f:close() end
  self.f = nil
end

------------------------------------------------------------------------------
-- The server
------------------------------------------------------------------------------

-- A free TCP port on 127.0.0.1, as the system chose it for a moment.
function N.free_port()
  local socket = require "socket"
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- Whether something accepts TCP connections at 127.0.0.1:port and, when
-- `banner` is given, sends a first line that starts with it.
local function accepts(port, banner)
  local socket = require "socket"
  local c = socket.tcp()
  c:settimeout(1)
  local ok = c:connect("127.0.0.1", port)
  if ok and banner then
    local line = c:receive("*l")
    ok = line ~= nil and line:sub(1, #banner) == banner
  end
  c:close()
  return ok and true or false
end

local Server = {}
Server.__index = Server

-- Starts a nats-server on 127.0.0.1 (a free port, or `port`), with
-- monitoring on another one, and waits until it answers. Returns the
-- Server, or nil and why.
function N.server(port)
  local path = N.nats_server_path()
  if not path then return nil, "nats-server is not installed" end
  local s = setmetatable({ path = path }, Server)
  local why
  for _ = 1, 5 do  -- a port taken meanwhile: another pair
    s.port = port or N.free_port()
    s.mport = N.free_port()
    if s.mport ~= s.port then
      local ok
      ok, why = s:start()
      if ok then return s end
    end
  end
  return nil, why
end

-- Why NATS specs cannot run here (LuaSocket or nats-server missing), or
-- nil: what can be told before a server is started.
function N.missing()
  if not N.has_socket() then
    return "LuaSocket is not installed (Debian: lua-socket)"
  elseif not N.nats_server_path() then
    return "nats-server not installed (Debian: apt-get install nats-server)"
  end
  return nil
end

-- For a describe block whose specs need a server: one is started in its
-- lazy_setup (N.usable_server), and killed with every process started in
-- its lazy_teardown. Returns a table whose `server`, or `skip` (why the
-- specs cannot run, for pending()), is set by then.
function N.server_suite(lazy_setup, lazy_teardown)
  local suite = { skip = N.missing() }
  lazy_setup(function()
    if suite.skip then return end
    suite.server, suite.skip = N.usable_server()
  end)
  lazy_teardown(function()
    if suite.server then suite.server:kill() end
    N.cleanup()
  end)
  return suite
end

-- For a spec's lazy_setup: a server started and a NATS channel opened
-- on it (and closed), so that libnats is known to load. Returns the
-- Server, or nil and why the specs cannot run (no server, no libnats).
function N.usable_server()
  local s, why = N.server()
  if not s then return nil, why end
  local mc = require "messagechannel"
  local ok, err = pcall(mc.BroadcastChannel, "spec.nats.probe",
                        { nats = s:url() })
  if ok then
    err:close()
    return s
  end
  s:stop()
  if tostring(err):find("libnats", 1, true) then
    return nil, "libnats cannot be loaded: " .. tostring(err)
  end
  error(err)
end

function Server:url()
  return "nats://127.0.0.1:" .. self.port
end

-- Starts the server process (again, on the same ports), with self.flags
-- (more command-line flags) when set; true, or false and its output.
function Server:start()
  self.proc = start(format("%s -a 127.0.0.1 -p %d -m %d %s", N.quote(self.path),
                           self.port, self.mport, self.flags or ""), nil, true)
  self.proc.script = "nats-server"
  local ok = N.wait(function()
    return not self.proc:alive() or accepts(self.port, "INFO ")
  end)
  if ok and self.proc:alive() then return true end
  local text = self.proc:text()
  self:kill()
  return false, "nats-server did not start: " .. text
end

-- Kills the server at once (SIGKILL): every client loses its connection.
-- It can be started again (Server:restart()).
function Server:kill()
  local p = self.proc
  if p then
    p:finish()
    os.execute("rm -rf " .. N.quote(p.dir))
  end
  self.proc = nil
end

Server.stop = Server.kill

-- Starts it again on the same port (it may take a moment to be free).
function Server:restart()
  local ok, why
  N.wait(function()
    ok, why = self:start()
    return ok
  end)
  assert(ok, why)
end

-- The body of the monitoring page `page` (e.g. "connz", "subsz"), or nil.
function Server:monitor(page)
  local http = require "socket.http"
  local body = http.request(format("http://127.0.0.1:%d/%s", self.mport, page))
  return body
end

-- The server's client connections, from /connz?subs=1: a table subject ->
-- list of the ids (cid) of the connections subscribed to it (once per
-- subscription), and .cids, a set of every connection's id.
function Server:connections()
  local body = self:monitor("connz?subs=1&limit=100000") or ""
  local t = { cids = {} }
  -- each connection's object starts with its "cid"
  local starts = {}
  for at in body:gmatch('()"cid"%s*:') do starts[#starts + 1] = at end
  starts[#starts + 1] = #body + 1
  for i = 1, #starts - 1 do
    local chunk = body:sub(starts[i], starts[i + 1] - 1)
    local cid = tonumber(chunk:match('^"cid"%s*:%s*(%d+)'))
    t.cids[cid] = true
    local list = chunk:match('"subscriptions_list"%s*:%s*(%b[])')
    for s in (list or ""):gmatch('"([^"]*)"') do
      t[s] = t[s] or {}
      t[s][#t[s] + 1] = cid
    end
  end
  return t
end

-- The number of subscriptions the server holds for subject `subject`, every
-- connection's.
function Server:subscriptions(subject)
  local list = self:connections()[subject]
  return list and #list or 0
end

------------------------------------------------------------------------------
-- Peers
------------------------------------------------------------------------------

-- The peer of spec/nats/peer.lua (see its header) joined to url's subject
-- `name`, with key=value options. Waits for its "ready" line.
function N.peer(url, name, options)
  local args = {}
  for k, v in pairs(options or {}) do args[#args + 1] = k .. "=" .. tostring(v) end
  table.sort(args)
  local p = N.spawn("spec/nats/peer.lua", url, name, "dir={dir}", unpack(args))
  p:expect("ready")
  return p
end

-- A TCP proxy (spec/nats/proxy.lua) from 127.0.0.1:port (a free one when
-- nil) to 127.0.0.1:target. Returns the Proc and its port.
function N.proxy(target, port)
  local p = N.spawn("spec/nats/proxy.lua", tostring(target), tostring(port or 0))
  local got = tonumber(p:expect("listening (%d+)"))
  return p, got
end

------------------------------------------------------------------------------
-- The clone format in a line of text, for the peers' reports
------------------------------------------------------------------------------

-- The bytes of a hex string (a peer reports mc.serialize's output in hex).
function N.unhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

------------------------------------------------------------------------------
-- A raw NATS client: the text protocol over LuaSocket
------------------------------------------------------------------------------

local raws = {}

local Raw = {}
Raw.__index = Raw

-- A client connected to 127.0.0.1:port that has said CONNECT and had its
-- PONG (so the server knows it); closed by N.cleanup().
function N.raw(port)
  local socket = require "socket"
  local c = assert(socket.tcp())
  c:settimeout(N.WAIT)
  assert(c:connect("127.0.0.1", port))
  local info = assert(c:receive("*l"))
  assert(info:sub(1, 5) == "INFO ", "no INFO from the server: " .. info)
  c:settimeout(0)
  local r = setmetatable({ c = c, buf = "", msgs = {} }, Raw)
  raws[#raws + 1] = r
  r:send('CONNECT {"verbose":false,"pedantic":false,"echo":true}\r\n')
  r:sync()
  return r
end

function Raw:send(s)
  local i = 1
  N.await("the raw client to send", function()
    local n, err, part = self.c:send(s, i)
    if n then
      i = #s + 1
    else
      assert(err == "timeout", "raw client: " .. tostring(err))
      i = (part or i - 1) + 1
    end
    return i > #s
  end)
end

-- Reads what has come and takes out whole protocol lines: MSG (kept in
-- self.msgs as {subject, sid, payload}), PING (answered), PONG (counted),
-- -ERR (raised).
function Raw:pump()
  local s, err, part = self.c:receive(65536)
  s = s or part
  if s and #s > 0 then self.buf = self.buf .. s end
  assert(err ~= "closed" or #self.buf > 0, "raw client: the server closed")
  while true do
    local line, rest = self.buf:match("^([^\r\n]*)\r\n()")
    if not line then return end
    local op = line:match("^(%S+)")
    if op == "MSG" then
      local subject, sid, len = line:match("^MSG (%S+) (%S+) [%S ]-(%d+)$")
      len = tonumber(len)
      if #self.buf - rest + 1 < len + 2 then return end
      self.msgs[#self.msgs + 1] = { subject = subject, sid = sid,
                                    payload = self.buf:sub(rest, rest + len - 1) }
      self.buf = self.buf:sub(rest + len + 2)
    else
      self.buf = self.buf:sub(rest)
      if op == "PING" then
        self:send("PONG\r\n")
      elseif op == "PONG" then
        self.pongs = (self.pongs or 0) + 1
      elseif op == "-ERR" then
        error("raw client: " .. line)
      end
    end
  end
end

-- A PING and its PONG: the server has handled all this client said.
function Raw:sync()
  local want = (self.pongs or 0) + 1
  self:send("PING\r\n")
  N.await("the server's PONG", function()
    self:pump()
    return (self.pongs or 0) >= want
  end)
end

function Raw:sub(subject, sid)
  self:send(format("SUB %s %s\r\n", subject, sid))
  self:sync()
end

function Raw:pub(subject, payload)
  self:send(format("PUB %s %d\r\n", subject, #payload) .. payload .. "\r\n")
end

-- Waits for `n` messages in all; returns the list.
function Raw:expect(n)
  N.await(n .. " messages at the raw client", function()
    self:pump()
    return #self.msgs >= n
  end)
  return self.msgs
end

function Raw:close()
  pcall(self.c.close, self.c)
end

------------------------------------------------------------------------------
-- Cleaning up
------------------------------------------------------------------------------

-- Ends every process started (peers, proxies, servers), closes the raw
-- clients and removes the temporary directories; for after_each.
function N.cleanup()
  for i = #raws, 1, -1 do
    raws[i]:close()
    raws[i] = nil
  end
  for i = #procs, 1, -1 do
    pcall(Proc.finish, procs[i])
    procs[i] = nil
  end
  for i = #dirs, 1, -1 do
    os.execute("rm -rf " .. N.quote(dirs[i]))
    dirs[i] = nil
  end
end

return N
