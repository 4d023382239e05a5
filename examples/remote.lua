-- Two processes talking through remote ports, then one of them killed.
-- Run it with `make demo`.
--
-- The first process listens on a TCP port that the system picks and
-- starts the second one (this same file, with the argument "peer"). The
-- peer connects and sends a greeting, a table and a Buffer; the first
-- answers each one. Then the first kills the peer with `kill -9`: no
-- close ever comes over the wire, yet the port sees its close event at
-- once, with the reason "disconnected". Every line is printed by the
-- first process, so the output is the same on every run.

local mc = require "messagechannel"

local function say(...)
  print(string.format(...))
end

-- The peer: connects, posts three messages and answers nothing; it stays
-- until it is killed.
if arg[1] == "peer" then
  local port = mc.connect(arg[2], { token = "demo" })
  port:postMessage("hello from process 2")
  port:postMessage({ job = 7, args = { 1.5, 2, "three" } })
  local buf = mc.Buffer("sixteen bytes!!!")
  port:postMessage({ blob = buf }, { buf })  -- copied, and detached here
  port.onmessage = function() end            -- keeps mc.run() going
  mc.run()
  return
end

local listener = mc.listen("tcp:127.0.0.1:0", { token = "demo" })
say("listening on tcp:127.0.0.1:<port>; starting the peer")

-- The interpreter that runs this file runs the peer too. The shell prints
-- the peer's process id, then becomes the peer.
local lua = arg[-1] or "lua"
local peer = io.popen(string.format("echo $$; exec %s %s peer %s", lua,
                                    arg[0], listener.address))
local pid = assert(tonumber(peer:read("*l")), "the peer did not start")

listener.onconnect = function(ev)
  local port = ev.port
  say("a peer connected (the token matched)")
  listener:close()  -- no more peers; this link stays open
  local got = 0
  port.onmessage = function(e)
    local m = e.data
    got = got + 1
    if type(m) == "string" then
      say("  got the string %q", m)
    elseif m.blob then
      say("  got a Buffer of %d bytes: %q", #m.blob, m.blob:sub())
    else
      say("  got a table: job %d with args %s, %d, %s", m.job, m.args[1],
          m.args[2], m.args[3])
    end
    port:postMessage("thanks for message " .. got)
    if got == 3 then
      say("killing the peer with kill -9")
      os.execute("kill -9 " .. pid)
    end
  end
  port.onclose = function(e)
    say("the port closed, reason: %s", tostring(e.reason))
  end
end

mc.run()
peer:close()
say("done")
