-- mc.receive(ports) read its array with # and [], so a hole cut it
-- short: in {p, [3] = q} the port q was silently never waited on; and a
-- proxy table was read through its __index/__len on Lua 5.2 and later but
-- refused as empty on 5.1. It reads the array raw now, on every version,
-- and a hole raises, as it does in a transfer list.

local mc = require "messagechannel"

describe("regress: mc.receive reads its array of ports raw", function()
  it("an array with a hole is a bad argument", function()
    local a, b = mc.MessageChannel(), mc.MessageChannel()
    local ok, err = pcall(mc.receive, { a.port2, [3] = b.port2 }, 0)
    assert.is_false(ok)
    assert.equal("bad argument #1 to 'receive' (array of MessagePorts expected, "
                 .. "not a hole at index 2)", err)
    a.port1:close()
    b.port1:close()
  end)

  it("a proxy table is read as what it holds, on every version", function()
    local a = mc.MessageChannel()
    local proxy = setmetatable({}, {
      __index = function(_, i) if i == 1 then return a.port2 end end,
      __len = function() return 1 end,
    })
    local ok, err = pcall(mc.receive, proxy, 0)
    assert.is_false(ok)
    assert.equal("bad argument #1 to 'receive' (empty array of MessagePorts)", err)
    a.port1:close()
  end)

  it("other keys are left alone", function()
    local a = mc.MessageChannel()
    a.port1:postMessage("m")
    local ev, from = mc.receive({ a.port2, n = 1 }, 0)
    assert.equal("m", ev.data)
    assert.equal(a.port2, from)
    a.port1:close()
  end)
end)
