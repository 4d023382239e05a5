-- regress: assigning port1 or port2 of a MessageChannel replaced the port
-- (or nil'd it) without an error; README and API.md 2 say a channel's
-- fields cannot be set. Found by a new user's trial.

local mc = require "messagechannel"

describe("regress: a channel's ports cannot be replaced", function()
  it("raises TypeError for port1 and port2 and keeps the ports", function()
    local ch, other = mc.MessageChannel(), mc.MessageChannel()
    local p1, p2 = ch.port1, ch.port2
    for _, k in ipairs { "port1", "port2" } do
      for _, v in ipairs { other.port1, 5 } do
        local ok, err = pcall(function() ch[k] = v end)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("TypeError:", 1, true), err)
      end
      local ok = pcall(function() ch[k] = nil end)
      assert.is_false(ok)
    end
    assert.are.equal(p1, ch.port1)
    assert.are.equal(p2, ch.port2)
    assert.is_true(ch.port1:postMessage("still entangled"))
    assert.are.equal("still entangled", ch.port2:receive(0).data)
  end)
end)
