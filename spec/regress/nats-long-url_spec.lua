-- A NATS BroadcastChannel whose URL was longer than 511 bytes (a token or
-- a JWT in it reaches that easily) heard nothing and got no error event:
-- nats.c copied the URL of a message's connection into a 512-byte buffer,
-- and the copy, cut short, matched no channel. API.md 12: posts reach
-- every channel of the name in other processes; a connection problem is
-- an error event on the channel, never silent. The whole URL is now
-- copied.

local mc = require "messagechannel"
local N = require "spec.nats.helper"

describe("regress: a NATS channel with a URL of 600 bytes", function()
  local suite = N.server_suite(lazy_setup, lazy_teardown)

  it("hears posts from another process, then the server's loss", function()
    if suite.skip then return pending(suite.skip) end
    local server = suite.server
    local subject = "spec.nats.longurl"
    local long = "nats://" .. ("u"):rep(600) .. "@127.0.0.1:" .. server.port
    assert.is_true(#long > 600)
    local bc = mc.BroadcastChannel(subject, { nats = long })
    local got, errors = {}, {}
    bc.onmessage = function(e) got[#got + 1] = e.data.i end
    bc.onerror = function(e) errors[#errors + 1] = e.error end
    local poster = N.peer(server:url(), subject, { brief = 1, id = "p" })
    N.await_heard("the posts", poster, "post 5", function() return #got >= 5 end)
    for k = 2, #got do assert.is_true(got[k] > got[k - 1]) end  -- in order
    poster:command("stop")
    server:kill()
    N.await("an error event", function() return #errors > 0 end)
    assert.are.equal("string", type(errors[1]))
    assert.is_truthy(errors[1]:find("NATS", 1, true))
    bc:close()
  end)
end)
