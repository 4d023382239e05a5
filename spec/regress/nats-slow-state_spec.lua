-- A NATS BroadcastChannel whose state did not run its scheduler (busy in
-- other work) while a subject kept arriving grew without limit: libnats's
-- thread handed every message to the channel's queue, which had no bound,
-- so libnats's own slow-consumer limit never applied (a probe reached
-- 609 MB). API.md 12: a message dropped for a slow consumer is reported
-- as an error event, never silently. A channel now holds at most 65,536
-- messages or 64 MB that its state has not dispatched; what comes beyond
-- is dropped, with one error event until it has room again.
--
-- The state here blocks without running the scheduler while a peer posts
-- 150 messages of 1 MB; it waits (plain sleeps, no scheduler) until the
-- peer has posted them all and the server has sent them all to this
-- process, so that far more than 64 MB has reached its client. Then the
-- scheduler runs: an error event tells of the drop, and fewer than the
-- 150 messages come (on the old code all of them came, with no event).

local mc = require "messagechannel"
local N = require "spec.nats.helper"

local COUNT, SIZE = 150, 1000000  -- under the server's 1 MB payload

-- The most messages the server has sent to one connection subscribed to
-- subject (this process's; the peer's own posts do not come back to it).
local function sent_to_subscriber(server, subject)
  local body = server:monitor("connz?subs=1&limit=100000") or ""
  local starts = {}  -- each connection's object starts with its "cid"
  for at in body:gmatch('()"cid"%s*:') do starts[#starts + 1] = at end
  starts[#starts + 1] = #body + 1
  local most = 0
  for i = 1, #starts - 1 do
    local chunk = body:sub(starts[i], starts[i + 1] - 1)
    local list = chunk:match('"subscriptions_list"%s*:%s*(%b[])') or ""
    if list:find('"' .. subject .. '"', 1, true) then
      most = math.max(most, tonumber(chunk:match('"out_msgs"%s*:%s*(%d+)')) or 0)
    end
  end
  return most
end

-- Waits without running the scheduler until cond() is true, under a
-- generous bound.
local function block_until(what, cond)
  for _ = 1, 1200 do
    if cond() then return end
    os.execute("sleep 0.05")
  end
  error("gave up waiting for " .. what)
end

describe("regress: a NATS channel whose state does not dispatch for a while", function()
  local suite = N.server_suite(lazy_setup, lazy_teardown)

  it("drops what comes beyond 64 MB, with an error event", function()
    if suite.skip then return pending(suite.skip) end
    local server = suite.server
    local subject = "spec.nats.slowstate"
    local bc = mc.BroadcastChannel(subject, { nats = server:url() })
    local got, errors = 0, {}
    bc.onmessage = function() got = got + 1 end
    bc.onerror = function(e) errors[#errors + 1] = e.error end
    local poster = N.peer(server:url(), subject, { brief = 1, id = "p" })
    N.await_heard("a first post", poster, "post 1", function() return got > 0 end)
    N.linger(0.2)  -- the rest of those first posts
    local before = got
    local last_posted = function()
      local n = 0
      for _, c in ipairs(poster:all("said posted (%d+)")) do
        n = math.max(n, tonumber(c[1]))
      end
      return n
    end
    local total = last_posted() + COUNT
    poster:command(("post %d %d"):format(COUNT, SIZE))
    block_until("the peer's posts", function() return last_posted() >= total end)
    block_until("the server's sending", function()
      return sent_to_subscriber(server, subject) >= total
    end)
    N.await("the error event", function() return #errors > 0 end)
    assert.is_truthy(tostring(errors[1]):find("dropped", 1, true))
    N.linger(0.5)  -- what was queued is dispatched
    assert.is_true(got - before < COUNT)
    assert.is_true(got - before > 0)
    poster:command("stop")
    bc:close()
  end)
end)
