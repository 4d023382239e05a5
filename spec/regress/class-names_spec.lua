-- The functions written in Lua named a value by its metatable's __name
-- when that was one of the module's class names, whatever the value: a
-- table with __name = "MessagePort" gave "MessagePort expected at index 1,
-- got MessagePort", and one with __name = "Buffer" was refused as options
-- ("table expected, got Buffer") by mc.MessageChannel while mc.connect, in
-- C, took it. A userdata is now named by the C side, which knows the
-- module's objects by their metatables, and a table by __name only for
-- the classes made in Lua (MessageChannel, Worker, Listener), as in C.

local mc = require "messagechannel"
local helper = require "spec.helper"

local error_of = helper.error_of

describe("regress: a value named by a class name it only claims", function()
  local fake_port = setmetatable({}, { __name = "MessagePort" })
  local fake_buffer = setmetatable({}, { __name = "Buffer" })

  it("is named by its type, in Lua functions as in C", function()
    local ch = mc.MessageChannel()
    local function has(s, fn, ...)
      local err = error_of(fn, ...)
      assert.truthy(err:find(s, 1, true), err)
    end
    has("(MessagePort expected at index 1, got table)", mc.receive, { fake_port }, 0)
    has("(function expected, got table)", mc.spawn, fake_port)
    has("(string expected, got table)", mc.BroadcastChannel, fake_port)
    has("(got table)", ch.port1.addEventListener, ch.port1, "message", fake_port)
    has("(MessagePort expected, got table)", ch.port1.postMessage, fake_port, 1)
    -- the module's own objects keep their class names
    has("(function expected, got MessagePort)", mc.spawn, ch.port1)
    has("(function expected, got Buffer)", mc.spawn, mc.Buffer(1))
    has("(function expected, got MessageChannel)", mc.spawn, ch)
    ch.port1:close()
  end)

  it("is an options table to Lua and C functions alike", function()
    local ch = mc.MessageChannel(fake_buffer)   -- refused before
    assert.is_true(ch.port1:postMessage(1))
    ch.port1:close()
    assert.equal(1, mc.structuredClone(1, fake_buffer))
    local bc = mc.BroadcastChannel("spec.class-names", fake_buffer)
    bc:close()
    -- a table that is one of the module's objects still is no options
    local err = error_of(mc.MessageChannel, mc.MessageChannel())
    assert.truthy(err:find("(table expected, got MessageChannel)", 1, true), err)
  end)

  -- mc.connect and mc.listen took a MessageChannel for options (and named
  -- its keys unknown options), and mc.Worker passed one as its transfer
  -- list to an internal function, whose name and argument number the
  -- error then gave.
  it("one of the module's objects is no options table nor Worker transfer list", function()
    for _, f in ipairs { "connect", "listen" } do
      local address = f == "listen" and "tcp:127.0.0.1:0" or "tcp:127.0.0.1:1"
      local err = error_of(mc[f], address, mc.MessageChannel())
      assert.truthy(err:find("bad argument #2 to '" .. f
        .. "' (table expected, got MessageChannel)", 1, true), err)
    end
    local err = error_of(mc.Worker, "", { eval = true, transfer = mc.MessageChannel() })
    assert.truthy(err:find("bad argument #2 to 'Worker' (options.transfer must be "
      .. "an array)", 1, true), err)
  end)
end)
