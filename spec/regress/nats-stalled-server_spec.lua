-- A NATS server that stopped reading (stopped, or stalled) made
-- bc:postMessage block once libnats's buffer to it was full: the write
-- had no deadline, and libnats writes holding its connection's lock, so
-- every post on that connection, from any thread, blocked with it, for as
-- long as the server did not read (168 s in the probe, until SIGCONT).
-- API.md 12 and the README: a post the client cannot take is an `error`
-- event, never silent, and posts do not block. Writes to the server now
-- have a deadline (2 s): past it the post fails with an error event.

local N = require "spec.nats.helper"

describe("regress: a NATS server that stops reading does not block posts", function()
  local suite = N.server_suite(lazy_setup, lazy_teardown)

  it("posts of 20 MiB to a stopped server all return, the failed ones as error events", function()
    if suite.skip then return pending(suite.skip) end
    local server = suite.server
    local peer = N.peer(server:url(), "spec.nats.stalled", { brief = 1, life = 90 })
    assert.is_true(server.proc:signal("STOP"))
    peer:command("post 320 65536")
    local ok, err = pcall(peer.expect, peer, "said posted 320", 60)
    server.proc:signal("CONT")
    assert(ok, err)
    assert.truthy(peer:find("error 1 NATS: the post was lost"))
  end)
end)
