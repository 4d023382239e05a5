-- A port that can dispatch nothing more on its own (not started, or with
-- no message listener, and a message it cannot deliver at its head) was
-- kept alive by its partner when the partner lived in the same Lua state:
-- with the program holding only the partner, the port was never
-- collected, the partner never got its close, and the held messages
-- stayed in memory as long as the partner lived. The README ("Lifetime")
-- says such a port is collected once the program no longer refers to it,
-- with its held messages, as it was when the partner was on another
-- thread. The partner now lets go of it once it is stuck, at the post
-- that makes it so as at any change of its listeners.

local mc = require "messagechannel"

local N = 50

-- Makes N pairs whose port2 is set up by setup(port2) and gets a message
-- it cannot deliver; returns the port1s (kept), a weak table of the
-- port2s, and a function giving the close events the port1s got.
local function pairs_with(setup)
  local weak = setmetatable({}, { __mode = "v" })
  local keep, closes = {}, 0
  for i = 1, N do
    local ch = mc.MessageChannel()
    keep[i] = ch.port1
    ch.port1.onclose = function() closes = closes + 1 end
    setup(ch.port2)
    ch.port1:postMessage(string.rep("x", 1000))
    weak[i] = ch.port2
  end
  return keep, weak, function() return closes end
end

local function alive(weak)
  local n = 0
  for i = 1, N do
    if weak[i] then n = n + 1 end
  end
  return n
end

local function collect()
  for _ = 1, 4 do
    collectgarbage()
    collectgarbage()
    assert.is_true(mc.run(5))
  end
end

describe("regress: a stuck port whose partner is in the same state", function()
  it("is collected when not started (a listener added, start() forgotten)", function()
    local keep, weak, closes = pairs_with(function(p)
      p:addEventListener("message", function() end)
    end)
    collect()
    assert.are.equal(0, alive(weak))
    assert.are.equal(N, closes())
    assert.are.equal(N, #keep)
  end)

  it("is collected when started with no message listener", function()
    local _, weak, closes = pairs_with(function(p)
      p.onclose = function() end
      p:start()
    end)
    collect()
    assert.are.equal(0, alive(weak))
    assert.are.equal(N, closes())
  end)

  it("stays while the program holds it, and delivers once started", function()
    local held, got = {}, 0
    local _, weak, closes = pairs_with(function(p)
      held[#held + 1] = p
      p:addEventListener("message", function() got = got + 1 end)
    end)
    collect()
    assert.are.equal(N, alive(weak))
    assert.are.equal(0, closes())
    for i = 1, N do held[i]:start() end
    assert.is_true(mc.run(5))
    assert.are.equal(N, got)
  end)

  it("a port that can dispatch stays alive through its partner", function()
    local got = 0
    local _, weak, closes = pairs_with(function(p)
      p.onmessage = function() got = got + 1 end
    end)
    collect()
    assert.are.equal(N, got)
    assert.are.equal(N, alive(weak))
    assert.are.equal(0, closes())
  end)
end)
