-- A NATS connection that libnats closed for good stayed closed: libnats
-- gives up on a server it reaches only when that server refuses it (an
-- authentication refused twice in a row; a server restarted with another
-- configuration), and then every post was "the post was lost: Connection
-- Closed" and no channel of that URL heard anything again, though the
-- README says the client tries again every 2 s, for ever. The module now
-- connects anew every 2 s after such a close, and subscribes there the
-- subjects its channels joined. API.md 12; README "BroadcastChannel over
-- NATS". Every wait is for an event under a generous bound (N.WAIT).

local mc = require "messagechannel"
local N = require "spec.nats.helper"

describe("regress: a NATS connection libnats closed for good is made again", function()
  local suite = N.server_suite(lazy_setup, lazy_teardown)

  it("after the server refused it, its channels hear posts once the server takes it", function()
    if suite.skip then return pending(suite.skip) end
    local server = suite.server
    local subject, url = "spec.nats.reconnect", server:url()
    local bc = mc.BroadcastChannel(subject, { nats = url })
    local errors, got = {}, {}
    bc.onerror = function(e) errors[#errors + 1] = tostring(e.error) end
    bc.onmessage = function(e) got[#got + 1] = e.data end
    local function told(text)
      for _, e in ipairs(errors) do
        if e:find(text, 1, true) then return true end
      end
      return false
    end
    local ok, err = pcall(function()
      -- the server comes back asking for a password this process lacks
      server:kill()
      server.flags = "--user spec --pass secret"
      server:restart()
      N.await("the connection closed", function()
        return told("NATS: the connection is closed")
      end)
      -- and then as it was
      server:kill()
      server.flags = nil
      server:restart()
      local peer = N.peer(url, subject, { brief = 1, life = 60, id = "p", hello = 1 })
      N.await("a post on the new connection", function() return #got > 0 end)
      assert.are.equal("p", got[1].hello)
      assert.is_true(told("a new one is tried every 2 s"))
      peer:command("stop")
    end)
    bc:close()
    server.flags = nil
    if not server.proc then server:restart() end
    assert(ok, err)
  end)
end)
