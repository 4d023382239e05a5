-- A Buffer in the transfer list of a postMessage waiting for room (a full
-- bounded partner) could still be written, and the receiver got the bytes
-- written after the post: the message is to be a snapshot of the moment
-- postMessage is called (API.md 2). A lent Buffer's write now raises.

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: a Buffer lent to a waiting postMessage", function()
  it("can be read but not written, and the receiver gets the posted bytes", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    ch.port1:postMessage("fill")
    local buf = mc.Buffer("old")
    local out = {}
    mc.spawn(function()
      local posted = ch.port1:postMessage(buf, { buf })
      out[#out + 1] = "post " .. tostring(posted)
    end)
    mc.spawn(function()
      mc.sleep(0)
      out[#out + 1] = "detached " .. tostring(buf.detached)
      out[#out + 1] = "read " .. buf:sub()
      local err = helper.error_of(buf.write, buf, 1, "NEW")
      out[#out + 1] = err:match("InvalidStateError: .*$")
      assert.equal("fill", ch.port2:receive().data)
      out[#out + 1] = "got " .. ch.port2:receive().data:sub()
    end)
    helper.run()
    assert.same({ "detached false", "read old",
                  "InvalidStateError: the Buffer is lent to a postMessage that has not sent it yet",
                  "got old", "post true" }, out)
    assert.is_true(buf.detached)
  end)

  it("can be written again once the post gave up", function()
    local ch = mc.MessageChannel({ capacity = 1 })
    ch.port1:postMessage("fill")
    local buf = mc.Buffer("old")
    local ok, why = ch.port1:postMessage(buf, { transfer = { buf }, timeout = 0.01 })
    assert.is_false(ok)
    assert.equal("timeout", why)
    assert.is_false(buf.detached)
    buf:write(1, "NEW")
    assert.equal("NEW", buf:sub())
    ch.port1:close()
    helper.run()
  end)
end)
