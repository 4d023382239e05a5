-- postMessage's options form ignored every key but `transfer` and
-- `timeout` once either was present: `{timeout = 0, tranfser = {b}}` sent
-- the message without transferring b, and `{transfer = {}, tiemout = 0}`
-- waited for room without limit, where every other options table of the
-- module (MessageChannel, Worker, listen, connect, BroadcastChannel)
-- rejects an unknown option so that a typo is caught. Now any other key
-- of the options, an array entry too, raises `bad argument`, before
-- anything is sent or detached (API.md 2: errors are raised and nothing
-- changes).

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: a misspelt postMessage option", function()
  local function post_error(port, options)
    local ok, err = pcall(function() port:postMessage("m", options) end)
    assert.is_false(ok)
    return (err:gsub("^.-:%d+: ", ""))
  end

  it("is named next to timeout, and nothing is sent or detached", function()
    local ch, b = mc.MessageChannel(), mc.Buffer("x")
    assert.equal("bad argument #2 to 'postMessage' (unknown option 'tranfser')",
                 post_error(ch.port1, { timeout = 0, tranfser = { b } }))
    assert.is_false(b.detached)
    assert.same({ nil, "timeout" }, { ch.port2:receive(0) })
  end)

  it("is named next to transfer", function()
    local ch, b = mc.MessageChannel(), mc.Buffer("x")
    assert.equal("bad argument #2 to 'postMessage' (unknown option 'tiemout')",
                 post_error(ch.port1, { transfer = { b }, tiemout = 0 }))
    assert.is_false(b.detached)
    assert.same({ nil, "timeout" }, { ch.port2:receive(0) })
  end)

  it("names an array entry or another key beside transfer", function()
    local ch, b = mc.MessageChannel(), mc.Buffer("x")
    assert.equal("bad argument #2 to 'postMessage' (unknown option [1])",
                 post_error(ch.port1, { transfer = {}, b }))
    assert.equal("bad argument #2 to 'postMessage' (unknown option [true])",
                 post_error(ch.port1, { transfer = {}, [true] = 1 }))
    assert.is_false(b.detached)
  end)

  it("is caught before a bounded post waits", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    assert.is_true(ch.port1:postMessage(0))
    assert.equal("bad argument #2 to 'postMessage' (unknown option 'tiemout')",
                 post_error(ch.port1, { transfer = {}, tiemout = 0 }))
    assert.equal(1, ch.port2:pending())
  end)

  it("is caught at a Worker's postMessage", function()
    local w = mc.Worker("", { eval = true })
    -- LuaJIT names no function for a method reached through __index
    assert.matches("^bad argument #%d to '[%w?]+' %(unknown option 'x'%)$",
                   post_error(w, { transfer = {}, x = 1 }))
    w:terminate()
    assert.is_true(mc.run(helper.WAIT))
  end)

  it("leaves the documented forms alone", function()
    local ch, b, c = mc.MessageChannel(), mc.Buffer("x"), mc.Buffer("y")
    assert.is_true(ch.port1:postMessage(1, { timeout = 0 }))
    assert.is_true(ch.port1:postMessage(2, { transfer = { b }, timeout = 1 }))
    assert.is_true(ch.port1:postMessage(3, { c, timeout = 0 }))
    assert.is_true(b.detached and c.detached)
    assert.equal(3, ch.port2:pending())
  end)
end)
