-- The worker of examples/luv.lua and examples/cqueues.lua: a Lua state on
-- its own thread that counts primes. Each job comes on mc.parentPort as
-- { n = n, reply = port } (the port moved here with it) and is answered
-- on that port. "quit" makes it close its parentPort; then nothing keeps
-- it alive, and it ends.

local mc = require "messagechannel"

local function count_primes(n)  -- below n, by trial division
  local count = n > 2 and 1 or 0
  for i = 3, n - 1, 2 do
    local d = 3
    while d * d <= i and i % d ~= 0 do d = d + 2 end
    if d * d > i then count = count + 1 end
  end
  return count
end

mc.parentPort.onmessage = function(e)
  if e.data == "quit" then return mc.parentPort:close() end
  e.data.reply:postMessage(count_primes(e.data.n))
  e.data.reply:close()
end
