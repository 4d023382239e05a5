-- Regression of Unix listeners (README "listener:close()": a socket file
-- is removed only while it is still the one the listener's bind made):
-- a listener closed its socket, then checked the file's device and inode
-- and removed it. Between the two, another process trying to listen at
-- the same path all along could find the file stale, remove it and bind
-- a new socket there, which the file system may give the same inode
-- number (ext4 does): the first listener then removed the second's file,
-- and nobody could connect to it any more. The file now goes while the
-- socket is still open, so its inode cannot be reused meanwhile.
--
-- A bounded stress run: in each of ROUNDS rounds this process closes its
-- listener while a peer process retries mc.listen at the same path in a
-- tight loop; the peer checks its own file once told the close is over.
-- Before the fix, 1 round in 50 to 200 lost the peer's file here. It asserts
-- what must hold after every round, not how fast anything is. Under a
-- sanitizer (make check), where each peer starts 20 times slower, it runs
-- 30 rounds: the race is the plain runs' to catch, the memory errors of
-- a close and a listen the sanitizer's.

local mc = require "messagechannel"
local R = require "spec.remote.helper"

local ROUNDS = R.sanitizer and 30 or 300

local PEER = [[
local mc = require "messagechannel"
local path, closed = arg[1], arg[2]
local function exists(p)
  local f = io.popen("test -S '" .. p .. "' && echo yes || echo no")
  local s = f:read("*l")
  f:close()
  return s
end
local l, tried = nil, false
local deadline = mc.now() + 20
while not l and mc.now() < deadline do
  local ok, r = pcall(mc.listen, "unix:" .. path)
  if ok then l = r
  elseif not tried then
    tried = true
    io.stdout:write("trying\n")
    io.stdout:flush()
  end
end
while not io.open(closed) and mc.now() < deadline do end
io.stdout:write("bound ", tostring(l ~= nil), " file ", exists(path), "\n")
io.stdout:flush()
if l then l:close() end
]]

describe("regress: a listener's close against a listen at its path", function()
  local errors, made = R.specs(R.WAIT, before_each, after_each)
  after_each(function() assert.same({}, errors) end)

  it("never removes the file of a listener bound there after it",
     function()
    local dir = R.tmpdir()
    local path, closed, script = dir .. "/s.sock", dir .. "/closed",
      dir .. "/peer.lua"
    R.write_file(script, PEER)
    for round = 1, ROUNDS do
      os.remove(closed)
      local l = mc.listen("unix:" .. path)
      made[#made + 1] = l
      local peer = R.spawn(script, path, closed)
      peer:expect("trying")  -- it retries in a tight loop from now on
      l:close()
      R.write_file(closed, "")
      local bound, file = peer:expect("bound (%S+) file (%S+)")
      assert.equal("true", bound, "round " .. round)
      assert.equal("yes", file, "round " .. round)
      peer:wait_end(R.WAIT)
    end
  end)
end)
