-- The module's own objects made in Lua (a MessageChannel, a Worker, a
-- Listener, an event) were cloned as the plain tables they are made of. A
-- MessageChannel posted with both its ports in the transfer list arrived
-- as a table whose only key was an internal table; otherwise the error
-- named an internal field (`MessagePort is not cloneable (at
-- [1][table][1])`). As on the web, where a MessageChannel, a Worker or an
-- event cannot be cloned, they now raise `DataCloneError: <name> is not
-- cloneable`, with the path to them, and nothing is sent or detached.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: the module's own objects are not cloneable", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  -- The error that f(...) raises.
  local function raised(f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok)
    return tostring(err)
  end

  local function objects()
    local ev
    local c = mc.MessageChannel()
    c.port1.onmessage = function(e) ev = e end
    c.port2:postMessage("x")
    helper.run()
    c.port1:close()
    local listener = mc.listen("unix:" .. os.tmpname() .. ".sock")
    return {
      { "MessageChannel", mc.MessageChannel() },
      { "Worker", start "" },
      { "Listener", listener },
      { "Event", ev },
    }, listener
  end

  it("in mc.structuredClone, mc.serialize and postMessage, with the path", function()
    local list, listener = objects()
    local c = mc.MessageChannel()
    for _, o in ipairs(list) do
      local name, obj = o[1], o[2]
      local want = "DataCloneError: " .. name .. " is not cloneable"
      for _, f in ipairs { mc.structuredClone, mc.serialize } do
        assert.equal(want, raised(f, obj))
        assert.equal(want .. " (at .a[2])", raised(f, { a = { 1, obj } }))
        assert.equal(want .. " (as a key at top level)", raised(f, { [obj] = true }))
      end
      assert.equal(want .. " (at .a[2])",
                   raised(c.port1.postMessage, c.port1, { a = { 1, obj } }))
    end
    listener:close()
    c.port1:close()
    assert.same({}, errors)
  end)

  it("even with a channel's ports in the transfer list, which stay usable", function()
    local c, ch = mc.MessageChannel(), mc.MessageChannel()
    local err = raised(c.port1.postMessage, c.port1, { ch },
                       { ch.port1, ch.port2 })
    assert.equal("DataCloneError: MessageChannel is not cloneable (at [1])", err)
    assert.equal(0, c.port2:pending())
    assert.is_true(ch.port1:postMessage("still here"))
    assert.equal("still here", ch.port2:receive(0).data)
    err = raised(mc.structuredClone, { ch }, { transfer = { ch.port1 } })
    assert.equal("DataCloneError: MessageChannel is not cloneable (at [1])", err)
    assert.is_true(ch.port1:postMessage("and here"))
    assert.equal("and here", ch.port2:receive(0).data)
    -- the ports themselves still move
    assert.is_true(c.port1:postMessage({ ch.port1 }, { ch.port1 }))
    local got = c.port2:receive(0)
    assert.is_true(got.data[1]:postMessage("moved"))
    assert.equal("moved", ch.port2:receive(0).data)
    c.port1:close()
    ch.port2:close()
  end)

  it("while a table with a registered metatable still travels by name", function()
    local mt = {}
    mc.register("own-objects-not-cloneable", mt)
    local v = mc.deserialize(mc.serialize(setmetatable({ 1 }, mt)))
    assert.equal(mt, getmetatable(v))
    assert.equal(mt, getmetatable(mc.structuredClone(setmetatable({ 2 }, mt))))
    -- and one with another metatable loses it (API.md 4.2)
    local plain = mc.structuredClone(setmetatable({ 3 }, { __index = {} }))
    assert.is_nil(getmetatable(plain))
    assert.same({ 3 }, plain)
  end)
end)
