-- Regression of Unix listeners (API.md 12, README "listener:close()"):
-- the socket file of a listener still open when the process ended (the
-- script's end, os.exit, an error) was left behind; only close() or the
-- collector removed it. It now goes at the exit too. Each case is a child
-- process; the listener reports "listening" before it ends.

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
