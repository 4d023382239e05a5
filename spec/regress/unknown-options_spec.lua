-- A misspelt option was ignored: mc.MessageChannel({capcity = 5}) made an
-- unbounded channel, mc.Worker(src, {evall = true}) took src for a file
-- name; and port:postMessage(v, {tiemout = 0}) said only that the
-- transfer list must be an array. As the remote ports' options already
-- did (API.md 12), an unknown option now raises bad argument naming it,
-- and the transfer list error names the key. (mc.install's options may be
-- a whole Workers configuration, so it still takes any other key.)

local helper = require "spec.helper"
local mc = require "messagechannel"

local error_of = helper.error_of

describe("regress: an unknown option raises, naming it", function()
  it("mc.MessageChannel", function()
    local err = error_of(function() local _ = mc.MessageChannel({ capcity = 5 }) end)
    assert.truthy(err:find("unknown%-options_spec%.lua:%d+: bad argument #1 to "
      .. "'MessageChannel' %(unknown option 'capcity'%)$"), err)
    err = error_of(function() local _ = mc.MessageChannel.new({ capacity = 2, [1] = 0 }) end)
    assert.truthy(err:find("(unknown option [1])", 1, true), err)
    assert.equal(2, (function()
      local ch = mc.MessageChannel({ capacity = 2 })
      ch.port1:postMessage(1)
      ch.port1:postMessage(2)
      local ok = ch.port1:postMessage(3, { timeout = 0 })
      ch.port1:close()
      return ok == false and 2
    end)())
  end)

  it("mc.Worker, before any thread starts", function()
    local err = error_of(function() local _ = mc.Worker("", { evall = true }) end)
    assert.truthy(err:find("unknown%-options_spec%.lua:%d+: bad argument #2 to "
      .. "'Worker' %(unknown option 'evall'%)$"), err)
    err = error_of(function() local _ = mc.Worker("", { eval = true, workerData = 1 }) end)
    assert.truthy(err:find("(unknown option 'workerData')", 1, true), err)
  end)

  it("mc.listen and mc.connect name a key that is no string as the others do", function()
    -- an array given as the options was named by its keys' type: 'number'
    local err = error_of(function() mc.listen("tcp:127.0.0.1:0", { "token" }) end)
    assert.truthy(err:find("bad argument #2 to 'listen' (unknown option [1])", 1, true), err)
    err = error_of(function() mc.connect("tcp:127.0.0.1:1", { [true] = 1 }) end)
    assert.truthy(err:find("bad argument #2 to 'connect' (unknown option [true])", 1, true),
                  err)
    err = error_of(function() mc.connect("tcp:127.0.0.1:1", { [2.5] = 1 }) end)
    assert.truthy(err:find("(unknown option [2.5])", 1, true), err)
    err = error_of(function() mc.listen("tcp:127.0.0.1:0", { [{}] = 1 }) end)
    assert.truthy(err:find("(unknown option (a table key))", 1, true), err)
  end)

  -- A key that is no string was named three ways: [1] and (a table key)
  -- by postMessage, '1' and 'table' by mc.listen and mc.connect, and by
  -- tostring in the functions written in Lua ('table: 0x5581...'). Each
  -- function that rejects unknown options names it as Lua writes such a
  -- key now; a string key's NUL cut the C side's text short ('a' for
  -- "a\0b"), where Lua 5.1's string.format lost the closing quote.
  it("every function names a key that is no string the same way", function()
    local ch = mc.MessageChannel()
    local calls = {
      postMessage = function(o)
        o.transfer = {}
        return ch.port1:postMessage(1, o)
      end,
      MessageChannel = function(o) return mc.MessageChannel(o) end,
      Worker = function(o)
        o.eval = true
        return mc.Worker("", o)
      end,
      BroadcastChannel = function(o) return mc.BroadcastChannel("spec.opts", o) end,
      listen = function(o) return mc.listen("tcp:127.0.0.1:0", o) end,
      connect = function(o) return mc.connect("tcp:127.0.0.1:1", o) end,
    }
    local keys = {
      { 1, "[1]" }, { 2.5, "[2.5]" }, { true, "[true]" }, { false, "[false]" },
      { {}, "(a table key)" }, { print, "(a function key)" },
      { ch.port2, "(a MessagePort key)" }, { ch, "(a MessageChannel key)" },
      { "nope", "'nope'" }, { "x%sy", "'x%sy'" },
      -- control bytes escaped, so that no text cuts the name at a NUL
      { "a\0b", "'a\\0b'" }, { "tab\there", "'tab\\9here'" },
    }
    for name, call in pairs(calls) do
      for _, kv in ipairs(keys) do
        local err = error_of(call, { [kv[1]] = 1 })
        assert.truthy(err:find("(unknown option " .. kv[2] .. ")", 1, true),
                      name .. " given " .. kv[2] .. ": " .. tostring(err))
      end
    end
    assert.equal(0, ch.port2:pending())
    ch.port1:close()
  end)

  it("postMessage names the key of a transfer list that is no array", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    local err = error_of(function() ch.port1:postMessage(1, { tiemout = 0 }) end)
    assert.equal("DataCloneError: the transfer list must be an array (entries 1..n, "
      .. "no holes), not have key 'tiemout'", err)
    err = error_of(function() ch.port1:postMessage(1, { [2] = mc.Buffer(1) }) end)
    assert.equal("DataCloneError: the transfer list must be an array (entries 1..n, "
      .. "no holes)", err)
    assert.equal(0, ch.port2:pending())
    ch.port1:close()
  end)
end)
