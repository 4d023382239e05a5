-- A Buffer whose finalizer had run (called by hand, or a Buffer reached
-- again from another object's __gc) read as an empty Buffer: detached was
-- false, sub() gave "", and a post or a clone sent an empty Buffer while
-- its bytes were gone. It now reads as detached, as a port whose
-- finalizer ran reads as closed (README Buffer: a detached Buffer raises
-- InvalidStateError; it cannot be cloned or transferred).

local mc = require "messagechannel"

local function assert_detached(b)
  assert.is_true(b.detached)
  assert.equal("Buffer (detached)", tostring(b))
  local ok, err = pcall(b.sub, b)
  assert.is_false(ok)
  assert.truthy(err:find("InvalidStateError: the Buffer is detached", 1, true), err)
  ok, err = pcall(mc.structuredClone, { b })
  assert.is_false(ok)
  assert.truthy(err:find("DataCloneError", 1, true), err)
  local ch = mc.MessageChannel()
  ok, err = pcall(ch.port1.postMessage, ch.port1, b, { b })
  assert.is_false(ok)
  assert.truthy(err:find("DataCloneError", 1, true), err)
  ch.port1:close()
end

describe("regress: a Buffer whose finalizer ran", function()
  it("reads as detached after its __gc is called by hand", function()
    local b = mc.Buffer("gone")
    getmetatable(b).__gc(b)
    assert_detached(b)
    getmetatable(b).__gc(b)  -- again: nothing more to free
    assert_detached(b)
  end)

  -- Lua 5.1 and LuaJIT run no __gc of tables.
  local resurrects = _VERSION ~= "Lua 5.1"
  local test = resurrects and it or pending
  test("reads as detached when reached again from a finalizer", function()
    local found
    do
      local b = mc.Buffer("resurrect me")
      setmetatable({ b }, { __gc = function(t) found = t[1] end })
    end
    collectgarbage()
    collectgarbage()
    assert.is_not_nil(found)
    assert_detached(found)
  end)
end)
