-- A DataCloneError names where the bad value was found (API.md 4.1). A
-- key that is one of the module's objects was written by its Lua type,
-- `[userdata]`, where every other message names those objects by their
-- class. A Buffer key (cloneable) or a port key moved by the transfer list
-- now reads `[Buffer]` or `[MessagePort]`; a plain table key stays
-- `[table]`.

local mc = require "messagechannel"

-- The path in the error of f(v [, options]).
local function path(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return (assert(tostring(err):match("%(at (.-)%)$"), err))
end

describe("regress: the module's objects as keys in a DataCloneError's path", function()
  for _, case in ipairs({ { "structuredClone", mc.structuredClone },
                          { "serialize", mc.serialize } }) do
    local name, f = case[1], case[2]
    it("are named by their class in " .. name, function()
      local buf = mc.Buffer(2)
      assert.are.equal("[Buffer]", path(f, { [buf] = print }))
      assert.are.equal(".a[Buffer].cb", path(f, { a = { [buf] = { cb = print } } }))
      assert.are.equal("[table]", path(f, { [{}] = print }))
    end)
  end

  it("are named by their class in postMessage, a moved port too", function()
    local ch, other = mc.MessageChannel(), mc.MessageChannel()
    local p = other.port1
    assert.are.equal("[MessagePort].f",
      path(ch.port1.postMessage, ch.port1, { [p] = { f = print } }, { p }))
    -- nothing was sent or moved: the port still talks to its partner
    p:postMessage("still here")
    assert.are.equal("still here", other.port2:receive(0).data)
    ch.port1:close()
    other.port1:close()
    mc.run()
  end)
end)
