-- regress: more posts waiting for room in one state than the C stack
-- holds (Lua 5.1 and LuaJIT: 8,000 slots). The poll returned every
-- object with news on the stack, so once room came at each of 10,000
-- bounded channels, every mc.run() raised "stack overflow (too many
-- objects with news)" and none of the posts was ever sent. poll returns
-- them in a list now.

local mc = require "messagechannel"

describe("regress: posts waiting for room at more ports than the C stack holds", function()
  it("are all sent once room comes", function()
    local N, chans, done = 10000, {}, 0
    for i = 1, N do
      local ch = mc.MessageChannel({ capacity = 1 })
      assert.is_true(ch.port1:postMessage(0))
      chans[i] = ch
      mc.spawn(function()
        assert.is_true(ch.port1:postMessage(i))  -- waits for room
        done = done + 1
      end)
    end
    assert.is_true(mc.run(30))
    assert.equal(0, done)
    for i = 1, N do assert.equal(0, chans[i].port2:receive(0).data) end
    assert.is_true(mc.run(30))
    assert.equal(N, done)
    for i = 1, N do
      assert.equal(i, chans[i].port2:receive(0).data)
      chans[i].port1:close()
    end
  end)
end)
