-- A tls:// NATS URL (README: "NATS with TLS ... is the way across
-- untrusted networks", API.md 12 "Trust") talked plain text to a server
-- that offered no TLS: the password in CONNECT and every message went out
-- in clear, to whoever answered in the server's place. A tls:// server in
-- the URL now requires TLS: without it the channel is refused with an
-- error that says so.

local mc = require "messagechannel"
local N = require "spec.nats.helper"

describe("regress: a tls:// NATS URL", function()
  local suite = N.server_suite(lazy_setup, lazy_teardown)

  -- The error of a channel on url, or nil when it was made.
  local function refused(url)
    local ok, b = pcall(mc.BroadcastChannel, "spec.nats.tls", { nats = url })
    if ok then
      b:close()
      return nil
    end
    return tostring(b)
  end

  it("is refused by a server without TLS, its password kept out of the text", function()
    if suite.skip then return pending(suite.skip) end
    local port = suite.server.port
    for _, url in ipairs({ "tls://bob:hunter2@127.0.0.1:" .. port,
                           "TLS://127.0.0.1:" .. port,
                           "nats://127.0.0.1:1, tls://127.0.0.1:" .. port }) do
      local err = refused(url)
      assert.is_not_nil(err, url .. " made a channel without TLS")
      assert.truthy(err:find("cannot connect to NATS at", 1, true), err)
      assert.falsy(err:find("hunter2", 1, true), err)
    end
    -- the same server as nats:// is used as before
    assert.is_nil(refused(suite.server:url()))
  end)
end)
