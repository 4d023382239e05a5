-- A light userdata was named two ways in one family of errors: a clone
-- said "DataCloneError: light userdata is not cloneable", a transfer list
-- "DataCloneError: transfer list entry 1 is a userdata", and argument
-- errors "got userdata". Every error now names it "light userdata", as the
-- clone errors and Lua 5.3's and 5.4's own argument errors do, in C and in
-- Lua alike (settings and options checked in Lua named any value by
-- type(), which cannot tell the two apart); a full userdata keeps
-- "userdata". Where Lua's own argument checks raise (luaL_check*), Lua
-- names it: "userdata" on 5.1, 5.2 and LuaJIT. And API.md 4.1's rule that
-- a light userdata is not cloneable had no spec of its own.
--
-- Plain Lua makes a light userdata only with debug.upvalueid (Lua 5.2 and
-- later, LuaJIT); on Lua 5.1 these specs are pending.

local mc = require "messagechannel"

local x = 0
local upvalueid = rawget(debug, "upvalueid")  -- Lua 5.2 and later, LuaJIT
local lud = upvalueid and upvalueid(function() return x end, 1)

local function message(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return tostring(err)
end

local function has(text, f, ...)
  local err = message(f, ...)
  assert.is_truthy(err:find(text, 1, true),
                   "expected '" .. text .. "' in: " .. err)
end

describe("regress: a light userdata", function()
  local ch
  before_each(function() ch = mc.MessageChannel() end)
  after_each(function() ch.port1:close() end)

  it("is a light userdata here", function()
    if not lud then pending("no debug.upvalueid on " .. _VERSION) return end
    assert.equal("userdata", type(lud))
    assert.is_nil(debug.getmetatable(lud))
  end)

  it("is not cloneable, and the error says where (API.md 4.1)", function()
    if not lud then pending("no debug.upvalueid on " .. _VERSION) return end
    has("DataCloneError: light userdata is not cloneable (at .a)",
        mc.structuredClone, { a = lud })
    has("DataCloneError: light userdata is not cloneable (at .list[2])",
        mc.structuredClone, { list = { 1, lud } })
    has("DataCloneError: light userdata is not cloneable (as a key",
        mc.structuredClone, { [lud] = true })
    has("DataCloneError: light userdata is not cloneable", mc.serialize, lud)
    has("DataCloneError: light userdata is not cloneable (at [1])",
        mc.serialize, { lud })
  end)

  it("posted raises, nothing is sent, and the port goes on", function()
    if not lud then pending("no debug.upvalueid on " .. _VERSION) return end
    local got = {}
    ch.port2.onmessage = function(e) got[#got + 1] = e.data end
    has("DataCloneError: light userdata is not cloneable (at .v)",
        ch.port1.postMessage, ch.port1, { v = lud })
    assert.is_true(ch.port1:postMessage("after"))
    mc.run(5)
    assert.same({ "after" }, got)
  end)

  it("in a transfer list is named as the clone errors name it", function()
    if not lud then pending("no debug.upvalueid on " .. _VERSION) return end
    local text = "DataCloneError: transfer list entry 1 is a light userdata, "
      .. "not a MessagePort or Buffer"
    has(text, ch.port1.postMessage, ch.port1, 1, { lud })
    has(text, ch.port1.postMessage, ch.port1, 1, { transfer = { lud } })
    has(text, mc.structuredClone, 1, { transfer = { lud } })
    assert.equal(0, ch.port2:pending())  -- nothing was sent
  end)

  it("given as an argument is named so, by C and by Lua functions", function()
    if not lud then pending("no debug.upvalueid on " .. _VERSION) return end
    -- C
    has("(string expected, got light userdata)", mc.deserialize, lud)
    has("(table expected, got light userdata)", mc.structuredClone, 1, lud)
    has("(MessagePort expected, got light userdata)", ch.port1.postMessage,
        lud, 1)
    has("(unknown option (a light userdata key))", ch.port1.postMessage,
        ch.port1, 1, { transfer = {}, [lud] = true })
    -- Lua
    has("(array of MessagePorts expected, got light userdata)", mc.receive,
        lud)
    has("(MessagePort expected at index 1, got light userdata)", mc.receive,
        { lud })
    has("(string expected, got light userdata)", mc.BroadcastChannel, lud)
    has("(got light userdata)", ch.port1.addEventListener, ch.port1,
        "message", lud)
    has("(function expected, got light userdata)", mc.spawn, lud)
  end)

  it("given in an option or a setting is named so too", function()
    if not lud then pending("no debug.upvalueid on " .. _VERSION) return end
    has('compatibility_date must be a string "YYYY-MM-DD", got light userdata',
        mc.install, {}, { compatibility_date = lud })
    has("compatibility_flags[1] must be a string, got light userdata",
        mc.install, {}, { compatibility_flags = { lud } })
    has("'nats' must be a URL string, got light userdata",
        mc.BroadcastChannel, "light-userdata", { nats = lud })
    has("options.jit must be a boolean, got light userdata", mc.Worker,
        "return", { eval = true, jit = lud })
    local saved = mc.onerror
    mc.onerror = lud
    mc.spawn(function() error("the real failure") end)
    local err = message(mc.run, 5)
    mc.onerror = saved
    assert.is_truthy(err:find("TypeError: mc.onerror must be a function, a "
      .. "callable value or nil (got light userdata)", 1, true), err)
  end)

  -- attach indexed any userdata for its `wrap`: a light one (or a full one
  -- without __index) raised "attempt to index a userdata value"
  it("given to the cqueues adapter's attach is a bad argument", function()
    if not lud then pending("no debug.upvalueid on " .. _VERSION) return end
    local found, adapter = pcall(require, "messagechannel.cqueues")
    if not found then pending("no cqueues: " .. tostring(adapter)) return end
    has("bad argument #1 to 'attach' (cqueues controller expected, got "
        .. "light userdata)", adapter.attach, lud)
    has("bad argument #1 to 'attach' (cqueues controller expected, got "
        .. "userdata)", adapter.attach, io.stdout)
  end)

  it("leaves a full userdata named userdata", function()
    has("(string expected, got userdata)", mc.deserialize, io.stdout)
    has("(array of MessagePorts expected, got userdata)", mc.receive,
        io.stdout)
    has("transfer list entry 1 is a userdata,", ch.port1.postMessage,
        ch.port1, 1, { io.stdout })
  end)
end)
