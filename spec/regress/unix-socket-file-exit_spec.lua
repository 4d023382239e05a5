-- Regression of Unix listeners (API.md 12, README "listener:close()"):
-- the socket file of a listener still open when the process ended (the
-- script's end, os.exit, an error) was left behind; only close() or the
-- collector removed it. It now goes at the exit too. Each case is a child
-- process; the listener reports "listening" before it ends. And close()
-- (and the exit) removed whatever was at the path then, even a file or
-- socket that had replaced the listener's: only the file its bind made is
-- removed now.

local R = require "spec.remote.helper"

local ENDINGS = {
  ["the script's end"] = "",
  ["os.exit()"] = "os.exit(0)",
  ["os.exit(0, true)"] = "os.exit(0, true)",
  ["an error"] = "error('boom')",
  ["a listener kept reachable at os.exit()"] = "KEEP = l; os.exit(3)",
}

describe("regress: a Unix listener's socket file at the exit", function()
  after_each(R.cleanup)

  for name, ending in pairs(ENDINGS) do
    it("is removed at " .. name, function()
      local dir = R.tmpdir()
      local path = dir .. "/s.sock"
      local script = dir .. "/child.lua"
      R.write_file(script, ([[
local mc = require "messagechannel"
local l = mc.listen(%q)
io.stdout:write("listening\n")
io.stdout:flush()
%s
]]):format("unix:" .. path, ending))
      local child = R.spawn(script)
      assert.is_true(child:wait_end(R.WAIT), "the child did not end")
      assert.truthy(child:find("listening"),
                    table.concat(child:lines(), "\n"))
      assert.is_false(R.exists(path))
    end)
  end

  for _, ending in ipairs { "os.exit(0)", "l:close()" } do
    it("is left alone by " .. ending .. " when something else took the "
       .. "path meanwhile", function()
      local dir = R.tmpdir()
      local path = dir .. "/s.sock"
      local script = dir .. "/child.lua"
      R.write_file(script, ([[
local mc = require "messagechannel"
local path = %q
local l = mc.listen("unix:" .. path)
os.remove(path)
local f = assert(io.open(path, "w"))
f:write("not the listener's\n")
f:close()
%s
]]):format(path, ending))
      local child = R.spawn(script)
      assert.is_true(child:wait_end(R.WAIT), "the child did not end")
      assert.equal("not the listener's\n", R.read_file(path))
    end)
  end

  it("is left alone at a listener's close when another listener bound the "
     .. "path since", function()
    local mc = require "messagechannel"
    local path = R.tmpdir() .. "/s.sock"
    local l = mc.listen("unix:" .. path)
    os.remove(path)
    local l2 = mc.listen("unix:" .. path)
    l:close()
    assert.is_true(R.exists(path))
    local got
    l2.onconnect = function(ev)
      got = ev.port
      l2:close()
    end
    local p = mc.connect("unix:" .. path)
    R.await("the second listener's connection", function() return got end)
    p:close()
    got:close()
    assert.is_false(R.exists(path))
  end)

  -- A chdir needs LuaJIT's FFI here (plain Lua has none).
  local chdir_it = rawget(_G, "jit") and it or pending
  chdir_it("is removed at the exit after a chdir, though its path was "
           .. "relative, and the file then at that relative path is left",
           function()
    local dir = R.tmpdir()
    -- rel names dir/s.sock from this directory, depth levels below /;
    -- from deeper, as many levels below dir, it names dir..dir/s.sock
    local p = assert(io.popen("pwd"))
    local cwd = p:read("*l")
    p:close()
    local _, depth = cwd:gsub("/[^/]+", "")
    local rel = string.rep("../", depth) .. dir:sub(2) .. "/s.sock"
    local deeper = dir .. string.rep("/d", depth)
    assert(R.sh("mkdir -p " .. R.quote(deeper) .. " " .. R.quote(dir .. dir)))
    local other = dir .. dir .. "/s.sock"
    R.write_file(other, "another file\n")
    local script = dir .. "/child.lua"
    R.write_file(script, ([[
local mc = require "messagechannel"
local ffi = require "ffi"
local l = mc.listen(%q)
ffi.cdef("int chdir(const char *);")
assert(ffi.C.chdir(%q) == 0)
io.stdout:write("listening\n")
io.stdout:flush()
]]):format("unix:" .. rel, deeper))
    local child = R.spawn(script)
    assert.is_true(child:wait_end(R.WAIT), "the child did not end")
    assert.truthy(child:find("listening"), table.concat(child:lines(), "\n"))
    assert.is_false(R.exists(dir .. "/s.sock"))
    assert.equal("another file\n", R.read_file(other))
  end)

  it("is left while its listener is open, and goes at its close",
     function()
    local mc = require "messagechannel"
    local path = R.tmpdir() .. "/s.sock"
    local l = mc.listen("unix:" .. path)
    assert.is_true(R.exists(path))
    l:close()
    assert.is_false(R.exists(path))
  end)
end)
