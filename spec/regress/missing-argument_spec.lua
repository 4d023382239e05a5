-- A required argument left out was named "got nil": port:addEventListener()
-- said `(string expected, got nil)` where Lua's own functions, and our C
-- ones, say `got no value` (API.md 9: the usual Lua bad argument). The
-- functions written in Lua took their arguments by name and could not tell
-- a missing one from a nil; they now count them. An explicit nil is still
-- named nil.

local helper = require "spec.helper"
local mc = require "messagechannel"

local error_of = helper.error_of

-- Each function with its first argument missing, and the message it
-- raises then; called with nil instead, the message says "got nil".
local CASES = {
  { "addEventListener", "string expected",
    function(p, ...) p:addEventListener(...) end },
  { "removeEventListener", "string expected",
    function(p, ...) p:removeEventListener(...) end },
  { "BroadcastChannel", "string expected",
    function(_, ...) mc.BroadcastChannel(...) end },
  { "BroadcastChannel", "string expected",
    function(_, ...) mc.BroadcastChannel.new(...) end },
  { "receive", "array of MessagePorts expected",
    function(_, ...) mc.receive(...) end },
  { "spawn", "function expected", function(_, ...) mc.spawn(...) end },
  { "sleep", "non-negative number expected",
    function(_, ...) mc.sleep(...) end },
  { "Worker", "string expected", function(_, ...) mc.Worker(...) end },
  { "listen", "string expected", function(_, ...) mc.listen(...) end },
  { "connect", "string expected", function(_, ...) mc.connect(...) end },
  { "structuredClone", "value expected",
    function(_, ...) mc.structuredClone(...) end, "nil ok" },
}

describe("regress: a missing argument is named 'no value'", function()
  for _, c in ipairs(CASES) do
    local name, expected, call, nil_ok = c[1], c[2], c[3], c[4]
    it(name, function()
      local ch = mc.MessageChannel()
      local err = error_of(function() call(ch.port1) end)
      assert.truthy(err:find("missing%-argument_spec%.lua:%d+: bad argument #1 to '"
        .. name .. "' %(" .. expected:gsub("%-", "%%-") .. ", got no value%)$"
        ) or expected == "value expected"
        and err:find("bad argument #1 to '" .. name .. "' (value expected)", 1, true),
        err)
      if not nil_ok then
        err = error_of(function() call(ch.port1, nil) end)
        assert.truthy(err:find("bad argument #1 to '" .. name .. "' ("
          .. expected .. ", got nil)", 1, true), err)
      end
      ch.port1:close()
    end)
  end

  it("the object of a method written in Lua, called with a dot and nothing", function()
    local ch = mc.MessageChannel()
    local bc = mc.BroadcastChannel("missing-argument")
    local path = os.tmpname()
    os.remove(path)
    local l = mc.listen("unix:" .. path)
    local w = mc.Worker("", { eval = true })
    local objects = {
      MessagePort = { ch.port1, { "addEventListener", "removeEventListener",
                                  "dispatchEvent", "receive" } },
      BroadcastChannel = { bc, { "addEventListener", "removeEventListener",
                                 "dispatchEvent" } },
      Listener = { l, { "addEventListener", "removeEventListener", "dispatchEvent",
                        "close", "ref", "unref", "hasRef" } },
      Worker = { w, { "addEventListener", "removeEventListener", "postMessage",
                      "terminate", "ref", "unref", "hasRef" } },
    }
    for class, o in pairs(objects) do
      for _, name in ipairs(o[2]) do
        local method = o[1][name]
        local err = error_of(function() method() end)
        assert.truthy(err:find("(" .. class .. " expected, got no value)", 1, true),
          class .. "." .. name .. ": " .. err)
        err = error_of(function() method(nil) end)
        assert.truthy(err:find("(" .. class .. " expected, got nil)", 1, true),
          class .. "." .. name .. ": " .. err)
      end
    end
    l:close()
    bc:close()
    ch.port1:close()
    mc.run()
  end)

  it("the listener of addEventListener and removeEventListener", function()
    local p = mc.MessageChannel().port1
    local err = error_of(function() p:addEventListener("message") end)
    assert.truthy(err:find("bad argument #2 to 'addEventListener' (function or "
      .. "table expected, got no value)", 1, true), err)
    err = error_of(function() p:removeEventListener("message", nil) end)
    assert.truthy(err:find("bad argument #2 to 'removeEventListener' (function "
      .. "or table expected, got nil)", 1, true), err)
    -- a listener of any other kind is ignored by remove, as one never added
    p:removeEventListener("message", 5)
    p:close()
  end)

  it("spawn still passes the arguments after the function", function()
    local got
    mc.spawn(function(...) got = { n = select("#", ...), ... } end, 1, nil, 3)
    mc.run()
    assert.same({ n = 3, 1, nil, 3 }, got)
  end)

  it("listen still takes its options, and connect reaches the listener", function()
    local err = error_of(function() mc.listen("unix:/nonexistent/x", 5) end)
    assert.truthy(err:find("bad argument #2 to 'listen' (table expected, got number)",
      1, true), err)
    local path = os.tmpname()
    os.remove(path)
    local l = mc.listen("unix:" .. path, { capacity = 4 })
    local got
    l.onconnect = function(e)
      e.port.onmessage = function(m) got = m.data; e.port:close() end
    end
    local port = mc.connect("unix:" .. path)
    port:postMessage("hi")
    port.onclose = function() l:close() end
    mc.run()
    assert.equal("hi", got)
  end)
end)
