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

  -- A new connection the server refuses again, while the thread that made
  -- it still subscribes there (a server that takes fewer subscriptions
  -- than the channels joined): that close was not seen, and nothing tried
  -- again after it.
  it("a new connection closed again is made again, until the server takes it", function()
    if suite.skip then return pending(suite.skip) end
    local server = suite.server
    local url, n = server:url(), 300
    local chans, closes, got = {}, 0, {}
    local conf = os.tmpname()
    local f = assert(io.open(conf, "w"))
    f:write("max_subscriptions: 1\n")
    f:close()
    local ok, err = pcall(function()
      for i = 1, n do
        local bc = mc.BroadcastChannel("spec.nats.again." .. i, { nats = url })
        bc.onerror = function(e)
          if i == 1 and tostring(e.error):find("a new one is tried", 1, true) then
            closes = closes + 1
          end
        end
        bc.onmessage = function(e) got[#got + 1] = e.data end
        chans[i] = bc
      end
      server:kill()
      server.flags = "-c " .. N.quote(conf)
      server:restart()
      N.await("two closes", function() return closes >= 2 end, 30)
      server:kill()
      server.flags = nil
      server:restart()
      local peer = N.peer(url, "spec.nats.again." .. n,
                          { brief = 1, life = 60, id = "p", hello = 1 })
      N.await("a post on the new connection", function() return #got > 0 end, 30)
      peer:command("stop")
    end)
    for _, bc in ipairs(chans) do bc:close() end
    os.remove(conf)
    server.flags = nil
    if not server.proc then server:restart() end
    assert(ok, err)
  end)
end)
