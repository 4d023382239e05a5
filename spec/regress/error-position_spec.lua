-- Argument errors of the port methods written in Lua pointed inside the
-- library once the methods moved into their own module
-- (lua/messagechannel/port.lua:58: bad argument ...). An error names the
-- caller's position, or none, never a file of the library.

local mc = require "messagechannel"

local function error_of(f)
  local ok, err = pcall(f)
  assert.is_false(ok)
  return tostring(err)
end

local function not_in_library(err)
  assert.is_nil(err:find("messagechannel/", 1, true), err)
end

describe("regress: where argument errors point", function()
  local p = mc.MessageChannel().port1

  it("never inside the library for the port's methods", function()
    for _, f in ipairs({
      function() p:receive(-1) end,
      function() p:receive("x") end,
      function() p:addEventListener(1, print) end,
      function() p:addEventListener("message") end,
      function() p:addEventListener("message", print, 5) end,
      function() p:addEventListener("message", 42) end,
      function() p:removeEventListener("message") end,
      function() p:dispatchEvent(5) end,
      function() p.onmesage = print end,
      function() p.onmessage = 42 end,
      function() p:postMessage(nil, { {} }) end,
      function() p:postMessage(nil, 5) end,
      function() mc.structuredClone(1, { transfer = { p, p } }) end,
      function() mc.sleep(-1) end,
      function() mc.run(-1) end,
    }) do
      not_in_library(error_of(f))
    end
  end)

  it("at the caller's line for the methods written in Lua", function()
    local err = error_of(function() p:addEventListener("message") end)
    assert.truthy(err:find("error%-position_spec%.lua:%d+: bad argument #2"), err)
    err = error_of(function() p:receive(-1) end)
    assert.truthy(err:find("error%-position_spec%.lua:%d+: bad argument #1"), err)
  end)

  it("is a bad argument, not a crash, for a metamethod called on something else", function()
    local mt = getmetatable(p)
    local err = error_of(function() mt.__newindex(5, "onmessage", print) end)
    assert.truthy(err:find("bad argument #1", 1, true), err)
  end)

  -- mc.run and mc.step returned the check's call as a tail call, so on
  -- 5.2 and later its error named the line of the caller's caller, or
  -- none at all
  it("at the caller's line for mc.run and mc.step called in a task", function()
    local got = {}
    mc.spawn(function()
      for _, name in ipairs({ "run", "step" }) do
        local line
        local ok, err = pcall(function()
          line = debug.getinfo(1, "l").currentline + 1
          mc[name]()
        end)
        got[#got + 1] = { ok = ok, err = tostring(err), line = line }
      end
    end)
    mc.run()
    assert.equal(2, #got)
    for _, r in ipairs(got) do
      assert.is_false(r.ok)
      assert.truthy(r.err:find("error%-position_spec%.lua:" .. r.line
        .. ": mc%.%a+ cannot be called from a task"), r.err)
    end
  end)
end)
