-- Joining a NATS subject while libnats had closed the URL's connection for
-- good (the server refused it; a new one is tried every 2 s) raised
-- "cannot subscribe to <subject>: Connection Closed": a BroadcastChannel
-- made then failed, though one made a moment before went on and heard
-- posts once the server took the new connection. The subject is now
-- listed for that new connection to subscribe. API.md 12; README
-- "BroadcastChannel over NATS". Every wait is for an event under a
-- generous bound (N.WAIT).

local mc = require "messagechannel"
local N = require "spec.nats.helper"

describe("regress: a NATS channel made while its connection is closed for good", function()
  local suite = N.server_suite(lazy_setup, lazy_teardown)

  it("is made, and hears posts once the server takes a new connection", function()
    if suite.skip then return pending(suite.skip) end
    local server = suite.server
    local url = server:url()
    local first = mc.BroadcastChannel("spec.nats.closedjoin.first", { nats = url })
    local chans, errors, got = { first }, {}, {}
    first.onerror = function(e) errors[#errors + 1] = tostring(e.error) end
    local ok, err = pcall(function()
      server:kill()
      server.flags = "--user spec --pass secret"
      server:restart()
      N.await("the connection closed", function()
        for _, e in ipairs(errors) do
          if e:find("NATS: the connection is closed", 1, true) then return true end
        end
        return false
      end)
      -- made while closed: one that leaves before the server takes it,
      -- and one that stays
      local gone = mc.BroadcastChannel("spec.nats.closedjoin.gone", { nats = url })
      gone:close()
      local late = mc.BroadcastChannel("spec.nats.closedjoin.late", { nats = url })
      chans[#chans + 1] = late
      late.onmessage = function(e) got[#got + 1] = e.data end
      server:kill()
      server.flags = nil
      server:restart()
      local peer = N.peer(url, "spec.nats.closedjoin.late",
                          { brief = 1, life = 60, id = "p", hello = 1 })
      N.await("a post to the channel made while closed", function() return #got > 0 end)
      assert.are.equal("p", got[1].hello)
      peer:command("stop")
    end)
    for _, bc in ipairs(chans) do bc:close() end
    server.flags = nil
    if not server.proc then server:restart() end
    assert(ok, err)
  end)
end)
