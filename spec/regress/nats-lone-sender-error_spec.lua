-- A post to a NATS BroadcastChannel that the client cannot take (larger
-- than the server's max_payload) is an error event at the channel, and
-- with no listener one at mc.onerror (API.md 12: never silently). A
-- sender alone in its state (no other channel of the name there) that
-- nothing referenced any more lost it: the post reserved run-queue room
-- for the other channels' kicks only, so the error event's token found
-- none, waited for the next poll to look, and the sender was collected
-- before that. The post now reserves room for its own error event too.

local mc = require "messagechannel"
local helper = require "spec.helper"
local N = require "spec.nats.helper"

describe("regress: a NATS sender alone in its state", function()
  local suite = N.server_suite(lazy_setup, lazy_teardown)
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  it("reports a post the server cannot take once nothing references it", function()
    if suite.skip then return pending(suite.skip) end
    mc.BroadcastChannel("spec.nats.lone", { nats = suite.server:url() })
      :postMessage(("B"):rep(2 * 1024 * 1024))  -- the server takes 1 MiB
    collectgarbage()
    collectgarbage()
    N.await("the error at mc.onerror", function() return #errors >= 1 end)
    assert.are.equal("string", type(errors[1].err))
    assert.is_truthy(errors[1].err:find("NATS", 1, true), errors[1].err)
  end)
end)
