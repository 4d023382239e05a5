-- `require "messagechannel"` without the C module on LUA_CPATH raised only
-- "module 'messagechannel.core' not found", with no hint that it must be
-- built. The error now says how to build it and where to point LUA_CPATH,
-- and keeps require's own message.

local helper = require "spec.helper"

local has = helper.has

local function child(source)
  local out = helper.run_child(source)
  if not out then pending("the interpreter's name is not in arg[-1]") end
  return out
end

-- The build directory `make` writes for the running Lua.
local BUILD = rawget(_G, "jit") and "luajit" or _VERSION:match("%d+%.%d+")

-- The hint every failure to load the C module carries: it names the
-- directory of the running Lua's build.
local function assert_hint(out)
  assert.truthy(has(out, "`make`"), out)
  assert.truthy(has(out, "build/" .. BUILD .. "/messagechannel/core.so"), out)
  assert.truthy(has(out, 'LUA_CPATH="build/' .. BUILD .. '/?.so;;"'), out)
  assert.truthy(has(out, "LUA_CPATH"), out)
  assert.truthy(has(out, "luarocks"), out)
end

describe("regress: loading messagechannel without its C module", function()
  it("says to build it with make and to set LUA_CPATH when it is not found", function()
    local out = child([[
      package.cpath = "/nonexistent-messagechannel-dir/?.so"
      local ok, err = pcall(require, "messagechannel")
      io.write(tostring(ok), "\n", tostring(err), "\n")
    ]])
    if not out then return end
    assert.truthy(out:find("^false\n"), out)
    assert.truthy(has(out, "the C module messagechannel.core was not found"), out)
    assert_hint(out)
    -- require's own message, with the paths it searched
    assert.truthy(has(out, "module 'messagechannel.core' not found"), out)
    assert.truthy(has(out, "/nonexistent-messagechannel-dir/messagechannel/core.so"), out)
  end)

  it("keeps another load error as it is and adds the same hint", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "/messagechannel'"))
    local f = assert(io.open(dir .. "/messagechannel/core.so", "wb"))
    f:write("not a shared object\n")
    f:close()
    local out = child(([[
      package.cpath = %q
      local ok, err = pcall(require, "messagechannel")
      io.write(tostring(ok), "\n", tostring(err), "\n")
    ]]):format(dir .. "/?.so"))
    os.remove(dir .. "/messagechannel/core.so")
    os.remove(dir .. "/messagechannel")
    os.remove(dir)
    if not out then return end
    assert.truthy(out:find("^false\nerror loading module 'messagechannel.core' from file '"),
                  out)
    assert.falsy(has(out, "was not found"), out)
    assert_hint(out)
  end)
end)
