-- mc.BroadcastChannel(name, {nats = url}) (API.md 12, the BroadcastChannel
-- over NATS bullets and "NATS details"; section 11 for the local rules it
-- keeps): posts reach every channel of the name in other processes once,
-- in order per sender, values intact; never back to the posting process
-- over NATS (its own channels hear a post once, locally); channels opened
-- without `nats` in a process that joined hear arrivals, a process that
-- joined nothing hears nothing; one connection per URL and one
-- subscription per subject in a process, threads included; the subject is
-- the name itself, in the clone format, open to any NATS client (raw
-- publishes are delivered, bytes that are not the format give a
-- messageerror); invalid subjects and unknown options raise `bad
-- argument`, an unreachable server raises `cannot connect to NATS at
-- <url>`; connection problems are `error` events with a string (server
-- gone, each post the client could not take), to `mc.onerror` when nothing
-- listens; posts made while the connection is down are sent after it
-- comes back; close() and collection leave the subject, and closing the
-- last channel lets mc.run() end.
--
-- The spec starts its own nats-server on 127.0.0.1 (a free port) and kills
-- it at the end; without nats-server, LuaSocket or libnats every spec here
-- is pending, with the reason on stderr. Other processes are
-- spec/nats/peer.lua (see its header) and spec/nats/proxy.lua (a TCP
-- proxy whose death cuts one process off the server while the others stay
-- connected), or a raw LuaSocket client speaking the NATS text protocol.
-- Every wait is for an event, a line of a peer's output or a condition,
-- under a generous bound (N.WAIT); nothing asserts speed. A few waits
-- outlive libnats's reconnect (2 s between attempts): those are #slow.

local mc = require "messagechannel"
local helper = require "spec.helper"
local N = require "spec.nats.helper"

local WHO = "24-nats"
local has = helper.has

-- Why the specs cannot run here (set in lazy_setup), or nil.
local skip_reason = N.missing()

local told = false
local function skipped()
  if skip_reason then
    if not told then
      io.stderr:write(WHO, ": skipped: ", skip_reason, "\n")
      told = true
    end
    pending(skip_reason)
    return true
  end
  return false
end

-- A subject of its own for each spec.
local count = 0
local function fresh(topic)
  count = count + 1
  return ("spec.nats.%s.%d"):format(topic, count)
end

-- Channels and workers a spec made, closed after it.
local made, workers = {}, {}

local function open(name, url)
  local bc = url and mc.BroadcastChannel(name, { nats = url })
             or mc.BroadcastChannel(name)
  made[#made + 1] = bc
  return bc
end

-- Records what reaches bc: rec.data (each message's data), rec.errors
-- (each error event's event.error), rec.messageerrors, rec.hellos (the
-- peers' {hello = id}, counted by id and kept out of rec.data).
local function watch(bc)
  local rec = { data = {}, errors = {}, messageerrors = {}, hellos = {} }
  bc.onmessage = function(e)
    local d = e.data
    if type(d) == "table" and d.hello then
      rec.hellos[d.hello] = (rec.hellos[d.hello] or 0) + 1
    else
      rec.data[#rec.data + 1] = d
    end
  end
  bc.onerror = function(e)
    assert(e.type == "error" and e.target == bc)
    rec.errors[#rec.errors + 1] = e.error
  end
  bc.onmessageerror = function(e)
    rec.messageerrors[#rec.messageerrors + 1] = tostring(e.error)
  end
  return rec
end

-- Waits until channel record `rec` has heard a hello from each peer id.
local function await_hellos(rec, ...)
  local ids = { ... }
  N.await("hellos from " .. table.concat(ids, ", "), function()
    for _, id in ipairs(ids) do
      if not rec.hellos[id] then return false end
    end
    return true
  end)
end

-- The messages of rec.data whose field `from` is `who`.
local function from(rec, who)
  local t = {}
  for _, d in ipairs(rec.data) do
    if type(d) == "table" and d.from == who then t[#t + 1] = d end
  end
  return t
end

-- What the echoing peer posted back ({echo = m}): the list of the m.
local function echoes(rec)
  local t = {}
  for _, d in ipairs(rec.data) do
    if type(d) == "table" and d.echo then t[#t + 1] = d.echo end
  end
  return t
end

-- The i fields of a list of tables.
local function indexes(list)
  local t = {}
  for k, d in ipairs(list) do t[k] = d.i end
  return t
end

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

-- A peer's reports for channel k: a list of {from, i, data} where data is
-- the decoded message (nil with brief=1), the peer's hellos left out.
local function peer_got(p, k, who)
  local t = {}
  for _, c in ipairs(p:all("msg (%S+) (%S+) ?(%x*)")) do
    local ch, tag, hex = c[1], c[2], c[3]
    if ch == tostring(k) and tag ~= "hello" then
      local data = hex ~= "" and mc.deserialize(N.unhex(hex)) or nil
      local sender, i = tag:match("^(.-):(%d+)$")
      if who == nil or sender == who then
        t[#t + 1] = { from = sender, i = tonumber(i), data = data, tag = tag }
      end
    end
  end
  return t
end

local function await_peer(p, k, who, n)
  N.await(("%d messages from %s at the peer's channel %s"):format(n, who, k),
          function() return #peer_got(p, k, who) >= n end)
end

-- An own nats-server for a spec that kills it, stopped after the spec.
local own_servers = {}
local function own_server()
  local s = assert(N.server())
  own_servers[#own_servers + 1] = s
  return s
end

describe("BroadcastChannel over NATS (API.md 12)", function()
  local server, url
  local errors, catch, release = helper.error_hooks(0.2)

  lazy_setup(function()
    if skip_reason then return end
    server, skip_reason = N.usable_server()
    url = server and server:url()
  end)

  lazy_teardown(function()
    if server then server:stop() end
    N.cleanup()
  end)

  before_each(catch)

  after_each(function()
    for i = #made, 1, -1 do
      pcall(made[i].close, made[i])
      made[i] = nil
    end
    helper.terminate_all(workers)
    N.cleanup()
    for i = #own_servers, 1, -1 do
      own_servers[i]:stop()
      own_servers[i] = nil
    end
    release()
  end)

  ---------------------------------------------------------------------------
  describe("between processes", function()
    it("delivers each post once to every channel of the name in another "
       .. "process, in order, with its values intact", function()
      if skipped() then return end
      local name = fresh("deliver")
      local a = open(name, url)
      local rec = watch(a)
      -- two NATS channels, one plain and one in a worker
      local p = N.peer(url, name, { nats = 2, plain = 1, worker = "nats",
                                    hello = 1 })
      await_hellos(rec, "peer")
      p:command("quiet")
      local buf = mc.Buffer("buf\0fer\255")
      local shared = { "shared" }
      local cycle = {}
      cycle.self = cycle
      local values = {
        42, -7, 0.1, -1.5e300, 2 ^ 53, math.huge, -math.huge, helper.negzero,
        helper.nan, true, false, "", "zero\0bytes\0", helper.all_bytes,
        { nested = { deep = { 1, 2, 3 } }, [true] = "t", [2.5] = "f" },
        { shared, shared, cycle = cycle },
        buf,
        { list = { buf } },
      }
      if helper.maxinteger then
        values[#values + 1] = helper.maxinteger
        values[#values + 1] = helper.mininteger
        values[#values + 1] = 3.0  -- a float stays a float
      end
      local sent = {}
      for i, v in ipairs(values) do
        sent[i] = { from = "spec", i = i, v = v }
        a:postMessage(sent[i])
      end
      for i = #values + 1, 300 do  -- a longer run, for the order
        sent[i] = { from = "spec", i = i }
        a:postMessage(sent[i])
      end
      assert.is_false(buf.detached)  -- copied, not moved
      for _, k in ipairs { 1, 2, 3, "w" } do
        await_peer(p, k, "spec", #sent)
        local got = peer_got(p, k, "spec")
        assert.are.same(range(#sent), indexes(got), "channel " .. k)
        for i, g in ipairs(got) do
          local ok, err = helper.same_graph(sent[i], g.data)
          assert(ok, ("channel %s, message %d: %s"):format(k, i, tostring(err)))
        end
      end
      -- and Buffers arrive as Buffers
      local got = peer_got(p, 1, "spec")
      for i, v in ipairs(values) do
        if v == buf then
          assert.is_true(helper.is_buffer(got[i].data.v))
          assert.are.equal("buf\0fer\255", got[i].data.v:sub())
        end
      end
      assert.are.same({}, rec.data)
      assert.are.equal(0, p:count("messageerror") + p:count("error"))
    end)

    it("keeps each sender's order when two processes post at once, and "
       .. "neither hears its own posts back", function()
      if skipped() then return end
      local name = fresh("order")
      local a, b = open(name, url), open(name)
      local ra, rb = watch(a), watch(b)
      local p1 = N.peer(url, name, { id = "p1", hello = 1, brief = 1 })
      local p2 = N.peer(url, name, { id = "p2", hello = 1, brief = 1 })
      await_hellos(ra, "p1", "p2")
      p1:command("quiet")
      p2:command("quiet")
      local M = 400
      p1:command("post " .. M)
      p2:command("post " .. M)
      for _, r in ipairs { ra, rb } do
        N.await("every post of both peers", function()
          return #from(r, "p1") == M and #from(r, "p2") == M
        end)
        assert.are.same(range(M), indexes(from(r, "p1")))
        assert.are.same(range(M), indexes(from(r, "p2")))
      end
      -- each peer hears the other's posts, in order, and not its own
      await_peer(p1, 1, "p2", M)
      await_peer(p2, 1, "p1", M)
      assert.are.same(range(M), indexes(peer_got(p1, 1, "p2")))
      assert.are.same(range(M), indexes(peer_got(p2, 1, "p1")))
      assert.are.equal(0, #peer_got(p1, 1, "p1"))
      assert.are.equal(0, #peer_got(p2, 1, "p2"))
    end)

    it("never sends a post back to the posting process: its other channels, "
       .. "in every thread, hear it once, locally", function()
      if skipped() then return end
      local name = fresh("no-echo")
      local a, b, c = open(name, url), open(name, url), open(name)
      local ra, rb, rc = watch(a), watch(b), watch(c)
      local w = helper.record_worker(workers, [[
local bc = mc.BroadcastChannel(mc.workerData.name, { nats = mc.workerData.url })
bc.onmessage = function(e)
  if type(e.data) == "table" and not e.data.hello then
    mc.parentPort:postMessage(e.data)
  end
end
mc.parentPort.onmessage = function() bc:close() mc.parentPort:close() end
mc.parentPort:postMessage("open")
]], { data = { name = name, url = url } })
      N.await("the worker's channel", function() return w.messages[1] == "open" end)
      -- the peer posts back {echo = m} for each m it gets: the echo of the
      -- last post comes after any copy of it the server would send back
      local p = N.peer(url, name, { echo = 1, hello = 1, brief = 1 })
      await_hellos(ra, "peer")
      p:command("quiet")
      local M = 50
      for i = 1, M do a:postMessage({ from = "spec", i = i }) end
      N.await("every echo at every channel", function()
        local wn = 0
        for _, m in ipairs(w.messages) do
          if type(m) == "table" and m.echo then wn = wn + 1 end
        end
        return #echoes(ra) == M and #echoes(rb) == M and #echoes(rc) == M
               and wn == M
      end)
      assert.are.same(range(M), indexes(echoes(ra)))
      assert.are.equal(0, #from(ra, "spec"))  -- the sender: never
      assert.are.same(range(M), indexes(from(rb, "spec")))  -- once each
      assert.are.same(range(M), indexes(from(rc, "spec")))
      local wspec = {}
      for _, m in ipairs(w.messages) do
        if type(m) == "table" and m.from == "spec" then wspec[#wspec + 1] = m end
      end
      assert.are.same(range(M), indexes(wspec))
      -- the peer got each post once
      assert.are.same(range(M), indexes(peer_got(p, 1, "spec")))
    end)

    it("delivers to channels opened without nats in a process that joined, "
       .. "and nothing to a process that joined nothing", function()
      if skipped() then return end
      local name = fresh("plain")
      local a = open(name, url)
      local ra = watch(a)
      local joined = N.peer(url, name, { nats = 1, plain = 2, hello = 1,
                                         brief = 1, id = "joined" })
      local alone = N.peer(url, name, { nats = 0, plain = 2, brief = 1 })
      await_hellos(ra, "joined")
      joined:command("quiet")
      local M = 20
      for i = 1, M do a:postMessage({ from = "spec", i = i }) end
      for k = 1, 3 do
        await_peer(joined, k, "spec", M)
        assert.are.same(range(M), indexes(peer_got(joined, k, "spec")))
      end
      -- the hellos went to the joined peer's own plain channels once each,
      -- locally (its posts never come back over NATS)
      alone:command("stop")
      alone:expect("end true")
      assert.are.equal(0, alone:count("msg"))
      assert.are.equal(0, alone:count("error"))
    end)

    it("joins once per URL: one connection and one subscription for all its "
       .. "channels, in every thread", function()
      if skipped() then return end
      local name, other = fresh("join"), fresh("join")
      local a, b = open(name, url), open(name, url)
      open(name)
      open(other, url)
      local w = helper.record_worker(workers, [[
local bc = mc.BroadcastChannel(mc.workerData.name, { nats = mc.workerData.url })
mc.parentPort.onmessage = function() bc:close() mc.parentPort:close() end
mc.parentPort:postMessage("open")
]], { data = { name = name, url = url } })
      N.await("the worker's channel", function() return w.messages[1] == "open" end)
      N.await("the subscriptions at the server", function()
        return server:subscriptions(name) == 1 and server:subscriptions(other) == 1
      end)
      local conns = server:connections()
      assert.are.equal(conns[name][1], conns[other][1])  -- one connection
      a:close()
      b:close()
      assert.are.equal(1, server:subscriptions(name))  -- the worker's holds it
    end)

    it("gives a messageerror at each channel of the other process for a "
       .. "message it cannot decode, and goes on", function()
      if skipped() then return end
      local name = fresh("messageerror")
      local a = open(name, url)
      local ra = watch(a)
      local p = N.peer(url, name, { nats = 1, plain = 1, hello = 1 })
      await_hellos(ra, "peer")
      p:command("quiet")
      local mt = {}
      mc.register("spec.nats.only-here", mt)
      a:postMessage(setmetatable({}, mt))  -- unknown over there
      a:postMessage({ from = "spec", i = 1 })
      for k = 1, 2 do
        await_peer(p, k, "spec", 1)
        local e = p:find("messageerror " .. k .. " (.*)")
        assert.truthy(has(e, "DataCloneError:"), e)
      end
      assert.are.equal(2, p:count("messageerror"))
    end)
  end)

  ---------------------------------------------------------------------------
  describe("subjects", function()
    it("raises bad argument for a name that is not a NATS subject, before "
       .. "any connection", function()
      if skipped() then return end
      local nowhere = "nats://127.0.0.1:" .. N.free_port()
      for _, bad in ipairs { "", ".", "a..b", ".a", "a.", "a b", "a\tb",
                             "a\nb", "*", "a.*", "a.*.b", ">", "a.>", "a>",
                             "x*", "a\0b", "a\rb" } do
        local err = helper.error_of(mc.BroadcastChannel, bad, { nats = url })
        assert.truthy(has(err, "bad argument #1 to 'BroadcastChannel'"),
                      ("%q: %s"):format(bad, err))
        err = helper.error_of(mc.BroadcastChannel, bad, { nats = nowhere })
        assert.truthy(has(err, "bad argument #1 to 'BroadcastChannel'"),
                      ("%q: %s"):format(bad, err))
        -- without nats any name is a channel's (section 11)
        open(bad):close()
      end
    end)

    it("a name too long for the server's protocol line does not break the "
       .. "process's other channels on that server", function()
      if skipped() then return end
      -- nats-server's max_control_line is 4 KiB: "SUB <subject> <sid>"
      -- beyond it makes the server drop the connection
      local name = fresh("neighbour")
      local a = open(name, url)
      local ra = watch(a)
      local ok, long = pcall(mc.BroadcastChannel, "spec.nats." .. ("l"):rep(5000),
                             { nats = url })
      if ok then
        made[#made + 1] = long
        long:postMessage("long")
      else
        assert.truthy(has(long, "bad argument #1 to 'BroadcastChannel'"), long)
      end
      local raw = N.raw(server.port)
      N.await("a's subscription at the server, or an error at a", function()
        return server:subscriptions(name) == 1 or #ra.errors > 0
      end)
      assert.are.same({}, ra.errors)
      raw:pub(name, mc.serialize({ from = "raw", i = 1 }))
      raw:sync()
      N.await("the raw client's message at a", function()
        return #from(ra, "raw") == 1 or #ra.errors > 0
      end)
      assert.are.same({}, ra.errors)
      assert.are.same({ 1 }, indexes(from(ra, "raw")))
    end)

    it("takes names of tokens with dots, dashes, digits and UTF-8", function()
      if skipped() then return end
      for _, good in ipairs { "a", "a.b.c", "x-y_z.1.$sys", "ütf8.ñ",
                              "spec.nats." .. string.rep("t", 200) } do
        local bc = open(good, url)
        assert.are.equal(good, bc.name)
        bc:close()
      end
    end)

    it("publishes on the subject `name` itself, in the clone format, where "
       .. "any NATS client sees it", function()
      if skipped() then return end
      local name = fresh("raw-sub")
      local raw = N.raw(server.port)
      raw:sub("spec.nats.>", "1")  -- a wildcard: it shows the subject used
      local a = open(name, url)
      local values = { { x = 1, list = { 1, 2 } }, "zero\0byte", 7 }
      for _, v in ipairs(values) do a:postMessage(v) end
      local msgs = raw:expect(#values)
      for i, v in ipairs(values) do
        assert.are.equal(name, msgs[i].subject)
        assert.are.same(v, mc.deserialize(msgs[i].payload))
      end
    end)

    it("delivers what another NATS client publishes on the subject to every "
       .. "channel of the name", function()
      if skipped() then return end
      local name = fresh("raw-pub")
      local a, b = open(name, url), open(name)
      local ra, rb = watch(a), watch(b)
      N.await("the subscription at the server", function()
        return server:subscriptions(name) == 1
      end)
      local raw = N.raw(server.port)
      raw:pub(name, mc.serialize({ from = "raw", i = 1, s = "a\0b" }))
      raw:pub(name, mc.serialize({ from = "raw", i = 2 }))
      raw:pub(name .. ".other", mc.serialize({ from = "raw", i = 3 }))
      raw:sync()
      for _, r in ipairs { ra, rb } do
        N.await("the raw client's messages", function()
          return #from(r, "raw") >= 2
        end)
        assert.are.same({ { from = "raw", i = 1, s = "a\0b" },
                          { from = "raw", i = 2 } }, from(r, "raw"))
      end
    end)

    it("gives a messageerror, not a crash, for a payload that is not the "
       .. "clone format, and goes on", function()
      if skipped() then return end
      local name = fresh("raw-bad")
      local a, b = open(name, url), open(name)
      local ra, rb = watch(a), watch(b)
      N.await("the subscription at the server", function()
        return server:subscriptions(name) == 1
      end)
      local raw = N.raw(server.port)
      local bad = { "garbage", "", "\255\255\255\255", mc.serialize({ 1 }) .. "x",
                    mc.serialize(("x"):rep(100)):sub(1, 20) }
      for _, s in ipairs(bad) do raw:pub(name, s) end
      raw:pub(name, mc.serialize({ from = "raw", i = 1 }))
      raw:sync()
      for _, r in ipairs { ra, rb } do
        N.await("the good message after the bad ones", function()
          return #from(r, "raw") == 1
        end)
        assert.are.equal(#bad, #r.messageerrors)
        for _, e in ipairs(r.messageerrors) do
          assert.truthy(has(e, "DataCloneError:"), e)
        end
        assert.are.equal(1, #r.data)
      end
    end)
  end)

  ---------------------------------------------------------------------------
  describe("options and opening", function()
    it("raises bad argument for an unknown option, a nats that is not a "
       .. "string and options that are not a table", function()
      if skipped() then return end
      local err = helper.error_of(mc.BroadcastChannel, "spec.nats.opt",
                                  { nats = url, timeout = 1 })
      assert.truthy(has(err, "bad argument #2 to 'BroadcastChannel'"), err)
      assert.truthy(has(err, "timeout"), err)
      err = helper.error_of(mc.BroadcastChannel, "spec.nats.opt", { Nats = url })
      assert.truthy(has(err, "bad argument #2 to 'BroadcastChannel'"), err)
      for _, bad in ipairs { 4222, true, {} } do
        err = helper.error_of(mc.BroadcastChannel, "spec.nats.opt", { nats = bad })
        assert.truthy(has(err, "bad argument #2 to 'BroadcastChannel'"), err)
      end
      for _, bad in ipairs { url, 1, true } do
        err = helper.error_of(mc.BroadcastChannel, "spec.nats.opt", bad)
        assert.truthy(has(err, "bad argument #2 to 'BroadcastChannel'"), err)
      end
    end)

    it("raises 'cannot connect to NATS at <url>' when no server is there, "
       .. "and leaves nothing behind", function()
      if skipped() then return end
      local name = fresh("refused")
      local nowhere = "nats://127.0.0.1:" .. N.free_port()
      local err = helper.error_of(mc.BroadcastChannel, name, { nats = nowhere })
      assert.truthy(has(err, "BroadcastChannel: cannot connect to NATS at "
                        .. nowhere .. ": "), err)
      -- the name works as before, locally and over NATS
      local a, b = open(name), open(name, url)
      local rb = watch(b)
      a:postMessage({ from = "spec", i = 1 })
      N.await("the local post", function() return #rb.data == 1 end)
      assert.are.same({}, rb.errors)
    end)
  end)

  ---------------------------------------------------------------------------
  describe("errors", function()
    -- A channel of `name` in this process behind a proxy to the server
    -- (its connection can be cut while everything else stays up), and a
    -- peer on the server itself that has been heard from.
    local function cut_off_setup(name, peer_options, listen)
      local proxy, pport = N.proxy(server.port)
      local purl = "nats://127.0.0.1:" .. pport
      local a = open(name, purl)
      local ra = listen ~= false and watch(a) or nil
      local opts = peer_options or {}
      opts.hello = 1
      local p = N.peer(url, name, opts)
      if ra then
        await_hellos(ra, opts.id or "peer")
        p:command("quiet")
      end
      return a, ra, p, proxy, pport
    end

    it("gives an error event with a string at each NATS channel when the "
       .. "server goes away, and posts flow again once it is back #slow",
       function()
      if skipped() then return end
      local s = own_server()
      local name = fresh("server-gone")
      local a, b, c = open(name, s:url()), open(name, s:url()), open(name)
      local ra, rb, rc = watch(a), watch(b), watch(c)
      local p = N.peer(s:url(), name, { hello = 1, brief = 1 })
      await_hellos(ra, "peer")
      p:command("quiet")
      s:kill()
      N.await("an error event at each NATS channel", function()
        return #ra.errors >= 1 and #rb.errors >= 1
      end)
      for _, e in ipairs { ra.errors[1], rb.errors[1] } do
        assert.are.equal("string", type(e))
        assert.truthy(#e > 0)
      end
      assert.are.same({}, rc.errors)  -- a channel without nats: no NATS problem
      p:expect("error 1 ")           -- the peer heard of it too
      s:restart()
      -- both processes reconnect in their own time: post until one arrives
      local i = 0
      N.await("a post to get through after the restart", function()
        i = i + 1
        a:postMessage({ from = "spec", i = i })
        N.linger(0.2)
        return #peer_got(p, 1, "spec") > 0
      end, 30)
      local first = #peer_got(p, 1, "spec")
      for _ = 1, 20 do
        i = i + 1
        a:postMessage({ from = "spec", i = i })
      end
      await_peer(p, 1, "spec", first + 20)
      local got = indexes(peer_got(p, 1, "spec"))
      for k = 2, #got do assert.is_true(got[k] > got[k - 1]) end
      assert.are.equal(i, got[#got])
      assert.are.same({}, errors)
    end)

    it("buffers the posts made while the connection is down and sends them "
       .. "once it is back #slow", function()
      if skipped() then return end
      local name = fresh("buffered")
      local a, ra, p, proxy, pport = cut_off_setup(name, { brief = 1 })
      proxy:finish()
      N.await("the disconnection's error event", function()
        return #ra.errors >= 1
      end)
      local down = #ra.errors
      local M = 30
      for i = 1, M do a:postMessage({ from = "spec", i = i }) end
      N.proxy(server.port, pport)  -- back
      await_peer(p, 1, "spec", M)
      assert.are.same(range(M), indexes(peer_got(p, 1, "spec")))
      assert.are.equal(down, #ra.errors)  -- none was lost
      assert.are.same({}, errors)
    end)

    it("reports each post it cannot buffer while down as an error event, and "
       .. "sends the rest once back #slow", function()
      if skipped() then return end
      local name = fresh("lost")
      local a, ra, p, proxy, pport = cut_off_setup(name, { brief = 1 })
      proxy:finish()
      N.await("the disconnection's error event", function()
        return #ra.errors >= 1
      end)
      local down = #ra.errors
      -- 24 posts of 512 KiB: more than libnats's 8 MiB reconnect buffer
      local M, size = 24, 512 * 1024
      local pad = ("p"):rep(size)
      for i = 1, M do a:postMessage({ from = "spec", i = i, pad = pad }) end
      N.await("the lost posts' error events", function()
        return #ra.errors > down
      end)
      N.proxy(server.port, pport)
      N.await("the posts that were buffered", function()
        return #peer_got(p, 1, "spec") + (#ra.errors - down) >= M
      end, 30)
      local got = indexes(peer_got(p, 1, "spec"))
      local lost = #ra.errors - down
      assert.is_true(lost >= 1)
      assert.is_true(#got >= 1)
      assert.are.equal(M, #got + lost)
      for k = 2, #got do assert.is_true(got[k] > got[k - 1]) end
      for k = down + 1, #ra.errors do
        assert.are.equal("string", type(ra.errors[k]))
      end
    end)

    it("reports a post the server cannot take (larger than its max_payload) "
       .. "as an error event, and still delivers it locally", function()
      if skipped() then return end
      local name = fresh("too-big")
      local a, b = open(name, url), open(name)
      local ra, rb = watch(a), watch(b)
      local big = ("B"):rep(2 * 1024 * 1024)  -- the server takes 1 MiB
      a:postMessage(big)
      N.await("the error event", function() return #ra.errors == 1 end)
      assert.are.equal("string", type(ra.errors[1]))
      N.await("the local delivery", function() return #rb.data == 1 end)
      assert.are.equal(big, rb.data[1])
      a:postMessage("small")  -- the channel goes on
      N.await("the next post", function() return #rb.data == 2 end)
      assert.are.equal(1, #ra.errors)
    end)

    it("reports a post the server cannot take from a sender that nothing "
       .. "references any more (collected before its turn)", function()
      if skipped() then return end
      local name = fresh("too-big-dropped")
      local rb = watch(open(name))
      mc.BroadcastChannel(name, { nats = url }):postMessage(("B"):rep(2 * 1024 * 1024))
      collectgarbage()
      collectgarbage()  -- the error event's token keeps the sender
      N.await("the error at mc.onerror", function() return #errors >= 1 end)
      assert.are.equal("string", type(errors[1].err))
      N.await("the local delivery", function() return #rb.data == 1 end)
    end)

    it("sends an error event that no listener takes to mc.onerror (a channel "
       .. "with a message listener only)", function()
      if skipped() then return end
      local name = fresh("onerror")
      local a, _, _, proxy = cut_off_setup(name, { brief = 1 }, false)
      local got = {}
      a.onmessage = function(e) got[#got + 1] = e.data end
      N.await("a hello", function() return #got > 0 end)
      proxy:finish()
      N.await("the error at mc.onerror", function() return #errors >= 1 end)
      assert.are.equal("string", type(errors[1].err))
      assert.truthy(#errors[1].err > 0)
    end)

    it("sends an error event to mc.onerror from a channel with no listener "
       .. "at all", function()
      if skipped() then return end
      local name = fresh("onerror-none")
      local proxy, pport = N.proxy(server.port)
      open(name, "nats://127.0.0.1:" .. pport)
      N.await("the subscription", function()
        return server:subscriptions(name) == 1
      end)
      proxy:finish()
      N.await("the error at mc.onerror", function() return #errors >= 1 end)
      assert.are.equal("string", type(errors[1].err))
    end)

    it("gives the error event to a channel whose only listeners are error "
       .. "listeners (onerror, addEventListener)", function()
      if skipped() then return end
      local name = fresh("error-only")
      local proxy, pport = N.proxy(server.port)
      local purl = "nats://127.0.0.1:" .. pport
      local a, b = open(name, purl), open(name, purl)
      local seen = { a = {}, b = {} }
      a.onerror = function(e) seen.a[#seen.a + 1] = e.error end
      b:addEventListener("error", function(e) seen.b[#seen.b + 1] = e.error end)
      N.await("the subscription", function()
        return server:subscriptions(name) == 1
      end)
      proxy:finish()
      N.await("an error event at each channel", function()
        return #seen.a >= 1 and #seen.b >= 1
      end)
      assert.are.equal("string", type(seen.a[1]))
      assert.are.equal("string", type(seen.b[1]))
      assert.are.same({}, errors)
    end)
  end)

  ---------------------------------------------------------------------------
  describe("local rules (section 11) for what arrives", function()
    it("drops what arrives while it has no message listener, even with an "
       .. "error listener, as HTML dispatches at once", function()
      if skipped() then return end
      local name = fresh("drop")
      local a, b = open(name, url), open(name, url)
      local rb = watch(b)
      local heard = {}
      a.onerror = function() end  -- watches the connection, hears nothing
      local p = N.peer(url, name, { hello = 1, brief = 1 })
      await_hellos(rb, "peer")
      p:command("quiet")
      p:command("post 3")
      -- b has them, so a's copies came too (one delivery loop)
      N.await("the posts at b", function() return #from(rb, "peer") == 3 end)
      a.onmessage = function(e)
        if type(e.data) == "table" and e.data.from == "peer" then
          heard[#heard + 1] = e.data.i
        end
      end
      p:command("post 1")
      N.await("the next post at b", function() return #from(rb, "peer") == 4 end)
      N.await("the next post at a", function() return #heard > 0 end)
      assert.are.same({ 4 }, heard)
    end)
  end)

  ---------------------------------------------------------------------------
  describe("close", function()
    it("close() leaves the subject: nothing more arrives, postMessage raises "
       .. "InvalidStateError, and the last close unsubscribes", function()
      if skipped() then return end
      local name = fresh("close")
      local a, b = open(name, url), open(name, url)
      local ra, rb = watch(a), watch(b)
      local p = N.peer(url, name, { hello = 1, brief = 1 })
      await_hellos(rb, "peer")
      p:command("quiet")
      a:close()
      local heard = #ra.data
      assert.are.equal(2, server:subscriptions(name))  -- b's and the peer's
      p:command("post 3")
      N.await("the peer's posts at b", function() return #from(rb, "peer") == 3 end)
      assert.are.equal(heard, #ra.data)
      local err = helper.error_of(a.postMessage, a, "x")
      assert.truthy(has(err, "InvalidStateError:"), err)
      b:close()
      N.await("the server to drop the subscription", function()
        return server:subscriptions(name) == 1  -- the peer's
      end)
    end)

    it("a collected channel leaves the subject too", function()
      if skipped() then return end
      local name = fresh("collect")
      local weak = setmetatable({}, { __mode = "v" })
      do
        weak[1] = mc.BroadcastChannel(name, { nats = url })
      end
      N.await("the subscription", function()
        return server:subscriptions(name) == 1
      end)
      helper.collect()
      assert.is_nil(weak[1])
      N.await("the server to drop the subscription", function()
        return server:subscriptions(name) == 0
      end)
    end)

    it("with a message listener keeps mc.run() going, is woken by what "
       .. "arrives, and lets mc.run() end once closed", function()
      if skipped() then return end
      local name = fresh("run")
      local a = open(name, url)
      local got, hello = {}, false
      a.onmessage = function(e)
        if type(e.data) == "table" and e.data.from == "peer" then
          got[#got + 1] = e.data.i
          if e.data.i == 3 then a:close() end
        else
          hello = true
        end
      end
      local p = N.peer(url, name, { hello = 1, brief = 1 })
      N.await("a hello", function() return hello end)
      p:command("quiet")
      p:command("post 3")
      assert.is_true(mc.run(N.WAIT), "mc.run() did not end")
      assert.are.same({ 1, 2, 3 }, got)
    end)

    it("closing the last channel of a URL closes the connection and lets "
       .. "another process's mc.run() end", function()
      if skipped() then return end
      local name = fresh("last")
      local p = N.peer(url, name, { nats = 2, plain = 1, worker = "nats",
                                    brief = 1 })
      local cid
      N.await("the peer's connection", function()
        local c = server:connections()[name]
        cid = c and c[1]
        return cid ~= nil
      end)
      p:command("stop")
      p:expect("end true")
      assert.is_true(p:wait_end())
      N.await("the server to drop the connection", function()
        return not server:connections().cids[cid]
      end)
    end)
  end)

  ---------------------------------------------------------------------------
  describe("one process, two URLs of one server", function()
    it("still never hears its own posts, and hears each post once",
       function()
      if skipped() then return end
      local name = fresh("two-urls")
      local proxy_port = select(2, N.proxy(server.port))
      local a = open(name, url)
      local b = open(name, "nats://127.0.0.1:" .. proxy_port)
      local ra, rb = watch(a), watch(b)
      local p = N.peer(url, name, { echo = 1, hello = 1, brief = 1 })
      await_hellos(ra, "peer")
      await_hellos(rb, "peer")
      p:command("quiet")
      a:postMessage({ from = "spec", i = 1 })
      N.await("the echo at both", function()
        return #echoes(ra) >= 1 and #echoes(rb) >= 1
      end)
      N.linger(0.5)  -- room for copies that must not come
      assert.are.equal(0, #from(ra, "spec"), "the sender heard its own post")
      assert.are.equal(1, #from(rb, "spec"), "b heard the post more than once")
      assert.are.equal(1, #echoes(ra), "the echo came more than once")
    end)
  end)
end)
