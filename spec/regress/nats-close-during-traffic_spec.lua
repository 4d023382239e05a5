-- Closing the last NATS BroadcastChannel of a subject while messages
-- were arriving on it crashed the process (SIGSEGV or an abort in
-- pthread_mutex_lock), on every Lua version, with the libnats 3.4 that
-- Debian ships. libnats's read loop looked a subscription up for an
-- incoming message and locked it after another thread had destroyed it
-- (libnats issue 637, fixed in 3.6); nats.c unsubscribed and destroyed the
-- subscription at once when its last channel left. A subscription is now
-- destroyed only after a round trip to the server shows the read loop is
-- past it (or with its connection). API.md 9: no input crashes the
-- process; API.md 12: close() leaves the subject.
--
-- A peer floods the subject while this process opens a channel, waits
-- for a message to reach it (so the subscription is live and traffic is
-- flowing) and closes it, many times. The old code crashed within a few
-- hundred rounds in nearly every run.

local mc = require "messagechannel"
local N = require "spec.nats.helper"

local ROUNDS = 300

describe("regress: a NATS channel closed while its subject has traffic", function()
  local suite = N.server_suite(lazy_setup, lazy_teardown)

  it("does not crash the process, and the subscription goes", function()
    if suite.skip then return pending(suite.skip) end
    local server = suite.server
    local subject, url = "spec.nats.churn", server:url()
    local poster = N.peer(url, subject, { brief = 1, life = 120, id = "p" })
    local heard = 0
    for round = 1, ROUNDS do
      local bc = mc.BroadcastChannel(subject, { nats = url })
      local got = false
      bc.onmessage = function() got = true end
      -- traffic that goes on past this round's close
      N.await_heard("a message in round " .. round, poster, "post 1000",
                    function() return got end)
      heard = heard + 1
      bc:close()
    end
    assert.are.equal(ROUNDS, heard)
    poster:command("stop")
    N.await("the subscriptions let go", function()
      return server:subscriptions(subject) == 0
    end)
  end)
end)
