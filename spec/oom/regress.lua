-- Regressions found under allocation failure; each case failed before
-- its fix.
-- - room: a postMessage that waits for room outside a task could raise and
--   still deliver its message later (port.c calls the wait protected and
--   gives the held post up when it raises).
-- - onmessage: port.onmessage = f could raise with the handler set and the
--   port not started, its messages never dispatched (the port starts
--   first now).
local mc = require "messagechannel"
local H = require "oomcheck"
return {
  { -- postMessage waiting for room outside any task, with a timeout
    name = "room",
    setup = function()
      local ch = mc.MessageChannel({ capacity = 1 })
      assert(ch.port1:postMessage(0))
      return { p1 = ch.port1, p2 = ch.port2 }
    end,
    action = function(c) return c.p1:postMessage(1, { timeout = 0.01 }) end,
    check = function(c, ok, r)
      local got = {}
      for _ = 1, 3 do
        for _, v in ipairs(H.drain(c.p2, "p2")) do got[#got + 1] = v end
        H.run("room")
      end
      H.expect(#got == 1 and got[1] == 0, "postMessage %s (%s); p2 got %s",
               ok and "returned" or "raised", tostring(r), H.show(got))
    end,
  },
  {
    name = "onmessage",
    setup = function()
      local ch = mc.MessageChannel()
      local c = { p1 = ch.port1, p2 = ch.port2, n = 0 }
      function c.f() c.n = c.n + 1 end
      for i = 1, 200 do ch.port1:postMessage(i) end
      return c
    end,
    action = function(c) c.p2.onmessage = c.f end,
    check = function(c, ok)
      H.run("after")
      local set = c.p2.onmessage == c.f
      H.expect(c.n == (set and 200 or 0), "the assignment %s; onmessage reads "
               .. "%s; the queued message was dispatched %d times",
               ok and "completed" or "raised", set and "f" or "nil", c.n)
    end,
  },
}
