-- regress: two argument rules that did not hold as the README states them.
-- - `{transfer = {buf, timeout = 1}}`: a `timeout` key inside the transfer
--   list was let pass and ignored (the wait had no bound); the list holds
--   only its entries, so it raises DataCloneError naming the key.
-- - Buffer methods given another object (`b.sub(port)`) named it
--   `userdata` or `table` on 5.1, 5.2 and LuaJIT, and wrote the expected
--   class as `messagechannel.Buffer` on every version; ports and
--   BroadcastChannels name both by class everywhere.

local mc = require "messagechannel"

local function message(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return (tostring(err):gsub("^.-:%d+: ", ""))
end

describe("regress: postMessage's transfer argument", function()
  it("refuses a timeout inside the transfer list, sending nothing", function()
    local ch, b = mc.MessageChannel({ capacity = 1 }), mc.Buffer("x")
    assert.is_true(ch.port1:postMessage(0))
    assert.equal("DataCloneError: the transfer list must be an array "
                 .. "(entries 1..n, no holes), not have key 'timeout'",
                 message(function()
                   return ch.port1:postMessage(1, { transfer = { b, timeout = 0 } })
                 end))
    assert.is_false(b.detached)
    assert.equal(1, ch.port2:pending())
  end)

  it("takes the entries of a table with a timeout as the list", function()
    local ch, b = mc.MessageChannel({ capacity = 1 }), mc.Buffer("x")
    assert.is_true(ch.port1:postMessage(b, { b, timeout = 0 }))
    assert.is_true(b.detached)
    assert.same({ false, "timeout" },
                { ch.port1:postMessage(2, { mc.Buffer("y"), timeout = 0 }) })
    assert.equal("x", ch.port2:receive(0).data:sub())
  end)

  it("refuses an entry beside transfer, and any other key", function()
    local ch, b = mc.MessageChannel(), mc.Buffer("x")
    assert.matches("unknown option %[1%]", message(function()
      return ch.port1:postMessage(1, { transfer = {}, b })
    end))
    assert.matches("not have key 'tiemout'", message(function()
      return ch.port1:postMessage(1, { b, tiemout = 0 })
    end))
    assert.is_false(b.detached)
    assert.equal(0, ch.port2:pending())
  end)
end)

describe("regress: Buffer methods name what they were given", function()
  local b = mc.Buffer("abc")
  local cases = {
    { "MessagePort", function() return mc.MessageChannel().port1 end },
    { "MessageChannel", function() return mc.MessageChannel() end },
    { "BroadcastChannel", function() return mc.BroadcastChannel("names") end },
    { "table", function() return {} end },
    { "nil", function() return nil end },
  }
  for _, method in ipairs({ "sub", "byte", "write" }) do
    for _, case in ipairs(cases) do
      it(method .. " given a " .. case[1], function()
        local v = case[2]()
        assert.matches("bad argument #1 to '[%w?]+' %(Buffer expected, got "
                       .. case[1] .. "%)",
                       message(b[method], v, 1, "z"))
        if type(v) == "userdata" and v.close then v:close() end
        if type(v) == "table" and v.port1 then v.port1:close() end
      end)
    end
  end

  it("still works, and a finalizer called by hand on another value is "
     .. "harmless", function()
    assert.equal("bc", b:sub(2))
    assert.equal(98, b:byte(2))
    local gc = getmetatable(b).__gc
    if gc then gc({}) end
    assert.equal("abc", b:sub())
  end)
end)
