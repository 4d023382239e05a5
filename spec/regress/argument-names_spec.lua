-- An argument error named the module's objects by their Lua type:
-- mc.receive({bc}) said "MessagePort expected at index 1, got userdata",
-- a MessageChannel given for a port said "got table". As Lua 5.4 names a
-- value by its metatable's __name, every argument error of the module now
-- names its objects by class (MessagePort, BroadcastChannel, Buffer,
-- MessageChannel, Worker, Listener), on every Lua version, in C and in
-- Lua alike; other values keep their type's name.

local mc = require "messagechannel"

local function raises(text, f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  assert.is_truthy(tostring(err):find(text, 1, true),
                   "expected '" .. text .. "' in: " .. tostring(err))
end

describe("regress: argument errors name the module's objects", function()
  local bc, ch, b
  before_each(function()
    bc, ch, b = mc.BroadcastChannel("argument-names"), mc.MessageChannel(),
      mc.Buffer(2)
  end)
  after_each(function()
    bc:close()
    ch.port1:close()
  end)

  it("in mc.receive's array", function()
    raises("(MessagePort expected at index 1, got BroadcastChannel)", mc.receive, { bc })
    raises("(MessagePort expected at index 2, got MessageChannel)",
           mc.receive, { ch.port1, ch })
    raises("(MessagePort expected at index 1, got Buffer)", mc.receive, { b })
    raises("(MessagePort expected at index 1, got table)", mc.receive, { {} })
    raises("(array of MessagePorts expected, got BroadcastChannel)", mc.receive, bc)
  end)

  it("as self of a port's or a channel's method", function()
    raises("(MessagePort expected, got BroadcastChannel)", ch.port1.postMessage, bc, 1)
    raises("(MessagePort expected, got MessageChannel)", ch.port1.close, ch)
    raises("(BroadcastChannel expected, got MessagePort)", bc.postMessage, ch.port1, 1)
    raises("(MessagePort expected, got Buffer)", ch.port1.receive, b)
  end)

  it("as other arguments, in C and in Lua", function()
    raises("(number or string expected, got MessagePort)", mc.Buffer, ch.port1)
    raises("(string expected, got Buffer)", mc.deserialize, b)
    raises("(string expected, got MessageChannel)", mc.connect, ch)
    raises("(table expected, got MessagePort)", mc.connect, "unix:/nowhere", ch.port1)
    raises("(string expected, got BroadcastChannel)",
           ch.port1.addEventListener, ch.port1, bc, print)
    raises("(function expected, got MessageChannel)", mc.spawn, ch)
    raises("(string expected, got MessagePort)", mc.BroadcastChannel, ch.port1)
  end)

  it("in a transfer list", function()
    raises("transfer list entry 1 is a MessageChannel, not a MessagePort or Buffer",
           ch.port1.postMessage, ch.port1, 1, { ch })
    raises("transfer list entry 2 is a BroadcastChannel, not a MessagePort or Buffer",
           ch.port1.postMessage, ch.port1, 1, { b, bc })
  end)

  it("given to a Worker's methods", function()
    local w = mc.Worker("return 1")
    raises("(Worker expected, got MessageChannel)", w.postMessage, ch, 1)
    raises("(Worker expected, got BroadcastChannel)", w.terminate, bc)
    raises("(Worker expected, got table)", w.postMessage, {}, 1)
    raises("(Worker expected, got Buffer)", w.postMessage, b, 1)
    raises("(Worker expected, got nil)", w.postMessage, nil, 1)
    raises("(Worker expected, got no value)", w.postMessage)
    w:terminate()
  end)

  it("while values of other kinds keep their type's name", function()
    raises("(MessagePort expected at index 1, got number)", mc.receive, { 5 })
    raises("(MessagePort expected at index 1, got table)",
           mc.receive, { setmetatable({}, { __name = "Elsewhere" }) })
    raises("(BroadcastChannel expected, got table)", bc.close,
           setmetatable({}, { __name = "FILE*" }))
  end)
end)
