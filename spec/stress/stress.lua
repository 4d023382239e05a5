-- Stress: many threads moving messages, Buffers and ports at once.
--
--   lua spec/stress/stress.lua [scale]        (from the top directory)
--
-- Three scenarios, one line each:
--   fan-in     8 workers post to the main thread at once, some messages
--              carrying a Buffer or a new port by transfer; every message
--              arrives once, in order per sender, Buffers intact.
--   ring       workers joined in a ring by MessageChannels pass several
--              tokens round and round, each hop with a new port whose
--              close its sender awaits, and ports ride along hop by hop
--              until one is used to answer the main thread.
--   terminate  workers get ports every way there is (workerData, posts,
--              ports queued inside ports) and are terminated at a random
--              point of that sequence; every partner kept here gets its
--              close, mc.run() goes idle, and nothing stays pinned.
--
-- scale 1 is the size `make stress` runs under ThreadSanitizer; larger
-- ones are for runs by hand. Random choices come from a generator seeded
-- with STRESS_SEED (or a fixed default), printed first so that any run
-- can be repeated. Nothing depends on time: every wait is a message, an
-- exit or a close under mc.run(timeout), whose timeout only turns a hang
-- into a failure. A violation fails its scenario (the others still run)
-- and the script then exits with status 1.

local mc = require "messagechannel"
local helper = require "spec.helper"

local char, format, rep = string.char, string.format, string.rep
local jit = rawget(_G, "jit")
local concat = table.concat

local scale = tonumber(arg and arg[1] or "1")
if not scale or scale < 1 or scale % 1 ~= 0 then
  io.stderr:write("usage: lua spec/stress/stress.lua [scale]  (a whole number >= 1)\n")
  os.exit(2)
end
local seed = tonumber(os.getenv("STRESS_SEED") or "") or 20250611

-- Seconds before a run that is still busy counts as a hang.
local TIMEOUT = 300

---------------------------------------------------------------------------
-- Violations
---------------------------------------------------------------------------

local problems = {}

local function problem(fmt, ...)
  problems[#problems + 1] = format(fmt, ...)
end

-- An error that no listener took is a violation too.
mc.onerror = function(err, traceback)
  problem("uncaught error: %s\n%s", tostring(err), tostring(traceback))
end

-- What a scenario raises to stop at its first failed check.
local FAILED = {}

-- Stops the scenario when it saw any violation.
local function verdict()
  if #problems > 0 then error(FAILED, 0) end
end

-- Runs the scheduler until idle; when it is not idle after TIMEOUT
-- seconds, `hang` describes what is still waited for, and stops the
-- workers that are left.
local function run(hang)
  if mc.run(TIMEOUT) ~= true then
    problem("mc.run(%d) did not become idle: a hang", TIMEOUT)
    if hang then hang() end
    verdict()
  end
end

local function worker(source, options)
  options.eval = true
  return mc.Worker(source, options)
end

-- Exit events of workers: codes[i] is the list of worker i's exit codes.
local function watch_exit(w, codes, i)
  codes[i] = {}
  w.onexit = function(e) local c = codes[i]; c[#c + 1] = e.code end
end

---------------------------------------------------------------------------
-- 1. fan-in
---------------------------------------------------------------------------

-- Workers 1-4 post through their parentPort, the others through a port
-- moved in with workerData. kinds[seq] is "." (data only), "b" (a Buffer
-- by transfer) or "p" (a new port by transfer: the main thread replies
-- on it when seq is even, then closes it). The last message (seq n + 1)
-- is the worker's own report.
local FANIN_WORKER = [[
local mc = require "messagechannel"
local d = mc.workerData
local id, n, kinds, pads, tail = d.id, d.n, d.kinds, d.pads, d.tail
local out = d.port or mc.parentPort
local wrong, replies, closes = {}, 0, 0
local function bad(what, seq)
  if #wrong < 10 then wrong[#wrong + 1] = what .. " at seq " .. seq end
end
for seq = 1, n do
  local kind = kinds:sub(seq, seq)
  local msg = { from = id, seq = seq,
                pad = string.rep(string.char(97 + (id + seq) % 26), pads:byte(seq)) }
  local ok, why
  if kind == "b" then
    local buf = mc.Buffer(("buffer %d/%d "):format(id, seq) .. tail)
    msg.buf = buf
    ok, why = out:postMessage(msg, { buf })
    if not buf.detached or #buf ~= 0 then bad("the sent Buffer is not detached", seq) end
  elseif kind == "p" then
    local ch = mc.MessageChannel()
    ch.port1.onmessage = function(e)
      if e.data ~= seq then bad("reply " .. tostring(e.data), seq) end
      replies = replies + 1
    end
    ch.port1.onclose = function() closes = closes + 1 end
    msg.port = ch.port2
    ok, why = out:postMessage(msg, { ch.port2 })
    if ch.port2:postMessage("moved") ~= false then bad("the sent port still posts", seq) end
  else
    ok, why = out:postMessage(msg)
  end
  if ok ~= true then bad("postMessage returned " .. tostring(why), seq) end
  if seq % 64 == 0 then mc.step() end
end
local idle = mc.run(TIMEOUT)
out:postMessage({ from = id, seq = n + 1, done = true, idle = idle,
                  replies = replies, closes = closes, wrong = wrong })
]]

local function fan_in(rng)
  local W, n = 8, 4000 * scale
  local tail = helper.all_bytes
  local plans, state, codes, closes = {}, {}, {}, {}
  local buffers, ports = 0, 0

  local function on_message(e)
    local d = e.data
    local from, seq = type(d) == "table" and d.from, type(d) == "table" and d.seq
    local st, plan = state[from], plans[from]
    if not st or type(seq) ~= "number" then
      problem("fan-in: a message from nowhere: %s", tostring(d))
      return
    end
    if st.seen[seq] then
      problem("fan-in: worker %d's seq %d arrived twice", from, seq)
    elseif seq <= st.last then
      problem("fan-in: worker %d's seq %d arrived after seq %d", from, seq, st.last)
    end
    st.seen[seq], st.count = true, st.count + 1
    if seq > st.last then st.last = seq end
    if d.done then
      if seq ~= n + 1 or d.idle ~= true or #d.wrong > 0
        or d.replies ~= plan.replies or d.closes ~= plan.ports then
        problem("fan-in: worker %d reports seq %d, idle %s, %d/%d replies, %d/%d closes: %s",
                from, seq, tostring(d.idle), d.replies, plan.replies, d.closes,
                plan.ports, concat(d.wrong, "; "))
      end
      return
    end
    local kind = plan.kinds:sub(seq, seq)
    if d.pad ~= rep(char(97 + (from + seq) % 26), plan.pads:byte(seq)) then
      problem("fan-in: worker %d's seq %d: the padding differs", from, seq)
    end
    local nports = kind == "p" and 1 or 0
    if #e.ports ~= nports then
      problem("fan-in: worker %d's seq %d: %d ports in event.ports", from, seq, #e.ports)
    end
    if kind == "b" then
      local buf, want = d.buf, format("buffer %d/%d ", from, seq) .. tail
      if not helper.is_buffer(buf) or buf.detached or #buf ~= #want or buf:sub() ~= want then
        problem("fan-in: worker %d's seq %d: the Buffer is not intact", from, seq)
      end
    elseif kind == "p" then
      local port = d.port
      if not rawequal(port, e.ports[1]) then
        problem("fan-in: worker %d's seq %d: data.port is not event.ports[1]", from, seq)
      elseif seq % 2 == 0 and port:postMessage(seq) ~= true then
        problem("fan-in: worker %d's seq %d: the reply was not queued", from, seq)
      end
      if port then port:close() end
    elseif d.buf ~= nil or d.port ~= nil then
      problem("fan-in: worker %d's seq %d: a field that was not sent", from, seq)
    end
  end

  local workers = {}
  for id = 1, W do
    local kinds, pads, plan = {}, {}, { ports = 0, replies = 0 }
    for seq = 1, n do
      local r = rng.int(1, 100)
      kinds[seq] = r <= 8 and "b" or r <= 14 and "p" or "."
      pads[seq] = char(rng.int(0, 255))
      if kinds[seq] == "p" then
        plan.ports = plan.ports + 1
        if seq % 2 == 0 then plan.replies = plan.replies + 1 end
        ports = ports + 1
      elseif kinds[seq] == "b" then
        buffers = buffers + 1
      end
    end
    plan.kinds, plan.pads = concat(kinds), concat(pads)
    plans[id] = plan
    state[id] = { seen = {}, last = 0, count = 0 }
    local data = { id = id, n = n, kinds = plan.kinds, pads = plan.pads, tail = tail }
    local options = { data = data }
    if id > W / 2 then
      local ch = mc.MessageChannel()
      ch.port1.onmessage = on_message
      ch.port1.onclose = function() closes[id] = (closes[id] or 0) + 1 end
      data.port, options.transfer = ch.port2, { ch.port2 }
    end
    local w = worker("local TIMEOUT = " .. TIMEOUT .. "\n" .. FANIN_WORKER, options)
    if id <= W / 2 then w.onmessage = on_message end
    w.onerror = function(e) problem("fan-in: worker %d failed: %s", id, tostring(e.error)) end
    watch_exit(w, codes, id)
    workers[id] = w
  end

  run(function()
    for id = 1, W do
      if state[id].count ~= n + 1 or #codes[id] == 0 then
        problem("fan-in: worker %d: %d of %d messages, exit %s", id, state[id].count, n + 1,
                tostring(codes[id][1]))
      end
      workers[id]:terminate()
    end
  end)
  for id = 1, W do
    local st = state[id]
    if st.count ~= n + 1 then
      local missing = {}
      for seq = 1, n + 1 do
        if not st.seen[seq] and #missing < 10 then missing[#missing + 1] = seq end
      end
      problem("fan-in: worker %d: %d of %d messages arrived; missing seq %s", id, st.count,
              n + 1, concat(missing, ", "))
    end
    if #codes[id] ~= 1 or codes[id][1] ~= 0 then
      problem("fan-in: worker %d: exit codes {%s}, want {0}", id, concat(codes[id], ", "))
    end
    if id > W / 2 and closes[id] ~= 1 then
      problem("fan-in: worker %d's port: %d close events", id, closes[id] or 0)
    end
  end
  verdict()
  return format("%d workers x %d messages (%d with a Buffer, %d with a port): "
                .. "each arrived once, in order per sender", W, n, buffers, ports)
end

---------------------------------------------------------------------------
-- 2. ring
---------------------------------------------------------------------------

-- Worker `me` reads link me - 1 and writes link me (mod k). A token
-- {token, start, hop, hops, lseq} is read at hop h by worker
-- (start + h) % k; lseq numbers the messages of each link. Each hop
-- carries a new port, the receipt: the reader posts lseq on it when lseq
-- is even, then closes it, and the sender, which keeps its partner only
-- by its listeners, counts both. A token may also carry a port
-- (data.port) until hop data.ride, where that worker reads the greetings
-- queued at the port, answers on it and closes it. After the stop, each
-- worker runs until idle and reports.
local RING_WORKER = [[
local mc = require "messagechannel"
local d = mc.workerData
local me, k, inp, out = d.me, d.k, d.inp, d.out
local sent, expect, received, wrong = 0, 1, 0, {}
local acks, closes = 0, 0  -- of the receipts
local function bad(what)
  if #wrong < 10 then wrong[#wrong + 1] = what end
end
local function answer(port, traveler, hop, greetings)
  local got = {}
  port.onmessage = function(e)
    got[#got + 1] = e.data
    if #got == greetings then
      e.target:postMessage({ traveler = traveler, hop = hop, at = me, greetings = got })
      e.target:close()
    end
  end
end
local function forward(t)
  t.hop, sent = t.hop + 1, sent + 1
  local lseq, receipt = sent, mc.MessageChannel()
  receipt.port1.onmessage = function(e)
    if e.data ~= lseq then bad(("receipt %s for link seq %d"):format(tostring(e.data), lseq)) end
    acks = acks + 1
  end
  receipt.port1.onclose = function() closes = closes + 1 end
  t.lseq, t.receipt = lseq, receipt.port2
  local ok = out:postMessage(t, { receipt.port2, t.port })
  if ok ~= true then bad("postMessage on the ring returned " .. tostring(ok)) end
end
inp.onmessage = function(e)
  local t = e.data
  received = received + 1
  if t.lseq ~= expect then bad(("link seq %s, want %d"):format(tostring(t.lseq), expect)) end
  expect = expect + 1
  if (t.start + t.hop) % k ~= me then bad(("token %d hop %d here"):format(t.token, t.hop)) end
  if not rawequal(t.receipt, e.ports[1]) or not rawequal(t.port, e.ports[2])
    or #e.ports ~= (t.port and 2 or 1) then
    bad(("token %d hop %d: its ports and event.ports differ"):format(t.token, t.hop))
  end
  if t.lseq % 2 == 0 then t.receipt:postMessage(t.lseq) end
  t.receipt:close()
  t.receipt = nil
  if t.port and t.hop == t.ride then
    answer(t.port, t.traveler, t.hop, t.greetings)
    t.port = nil
  end
  if t.hop == t.hops then
    mc.parentPort:postMessage({ done = t.token, hop = t.hop, at = me })
  else
    forward(t)
  end
end
mc.parentPort.onmessage = function(e)
  if e.data.inject then
    local t = e.data.inject
    if (t.port ~= nil) ~= (#e.ports == 1) then bad("an injected port is missing") end
    forward(t)
  else -- stop
    inp:close()
    out:close()
    mc.parentPort.onmessage = nil
  end
end
local idle = mc.run(TIMEOUT)
mc.parentPort:postMessage({ me = me, received = received, sent = sent, wrong = wrong,
                            idle = idle, acks = acks, closes = closes })
]]

local function ring(rng)
  local K, R = 6, 200 * scale
  local T, P, G = 2 * K, K, 6      -- tokens, travelers, greetings each
  local HOPS = R * K
  local links, workers, codes = {}, {}, {}
  local done, travelers, summaries = {}, {}, {}
  local finished, stopped = 0, false

  local function stop_all()
    if stopped then return end
    stopped = true
    for i = 1, K do workers[i]:postMessage({ stop = true }) end
  end
  local function progress()
    finished = finished + 1
    if finished == T + P then stop_all() end
  end
  local function fail_all()
    stopped = true
    for i = 1, K do workers[i]:terminate() end
  end

  local function on_worker(e)
    local d = e.data
    if d.done then
      local t = d.done
      done[t] = (done[t] or 0) + 1
      if done[t] > 1 then problem("ring: token %d finished twice", t) end
      if d.hop ~= HOPS or d.at ~= (t - 1) % K then
        problem("ring: token %d finished at hop %d in worker %d", t, d.hop, d.at)
      end
      progress()
    else
      summaries[#summaries + 1] = d
      for _, w in ipairs(d.wrong) do problem("ring: worker %d: %s", d.me, w) end
    end
  end

  for i = 0, K - 1 do links[i] = mc.MessageChannel() end
  for me = 0, K - 1 do
    local inp, out = links[(me - 1) % K].port2, links[me].port1
    local w = worker("local TIMEOUT = " .. TIMEOUT .. "\n" .. RING_WORKER,
                     { data = { me = me, k = K, inp = inp, out = out },
                       transfer = { inp, out } })
    w.onmessage = on_worker
    w.onerror = function(e)
      problem("ring: worker %d failed: %s", me, tostring(e.error))
      fail_all()
    end
    watch_exit(w, codes, me + 1)
    workers[me + 1] = w
  end

  local rides = {}
  for t = 1, T do
    local start = (t - 1) % K
    local tok = { token = t, start = start, hop = 0, hops = HOPS }
    local transfer, port
    if t <= P then
      local ch = mc.MessageChannel()
      local rec = { got = {}, closes = 0 }
      travelers[t] = rec
      ch.port1.onmessage = function(e) rec.got[#rec.got + 1] = e.data end
      ch.port1.onclose = function()
        rec.closes = rec.closes + 1
        progress()
      end
      tok.traveler, tok.ride, tok.greetings = t, rng.int(1, HOPS), G
      rides[#rides + 1] = tok.ride
      tok.port, transfer, port = ch.port2, { ch.port2 }, ch.port1
      -- half the greetings wait in the port's queue, half chase it round the ring
      for g = 1, G / 2 do port:postMessage(format("greeting %d/%d", t, g)) end
    end
    workers[start + 1]:postMessage({ inject = tok }, transfer)
    if port then
      for g = G / 2 + 1, G do port:postMessage(format("greeting %d/%d", t, g)) end
    end
  end

  run(function()
    problem("ring: %d of %d tokens and ports came back", finished, T + P)
    fail_all()
  end)
  for t = 1, T do
    if done[t] ~= 1 then problem("ring: token %d finished %d times", t, done[t] or 0) end
  end
  for t, rec in pairs(travelers) do
    local r = rec.got[1]
    local want = {}
    for g = 1, G do want[g] = format("greeting %d/%d", t, g) end
    if #rec.got ~= 1 or rec.closes ~= 1 or type(r) ~= "table" or r.traveler ~= t
      or r.hop ~= rides[t] or r.at ~= (t - 1 + rides[t]) % K
      or concat(r.greetings, ",") ~= concat(want, ",") then
      problem("ring: port %d: %d answers (%s), %d closes", t, #rec.got,
              type(r) == "table" and format("hop %s at %s: %s", tostring(r.hop),
                tostring(r.at), concat(r.greetings or {}, ",")) or tostring(r), rec.closes)
    end
  end
  local received, sent = 0, 0
  for _, s in ipairs(summaries) do
    received, sent = received + s.received, sent + s.sent
    if s.idle ~= true or s.closes ~= s.sent or s.acks ~= (s.sent - s.sent % 2) / 2 then
      problem("ring: worker %d: idle %s, %d hops sent, %d receipts closed, %d acked",
              s.me, tostring(s.idle), s.sent, s.closes, s.acks)
    end
  end
  if #summaries ~= K or received ~= T * HOPS or sent ~= T * HOPS then
    problem("ring: %d reports, %d hops received and %d sent, want %d", #summaries,
            received, sent, T * HOPS)
  end
  for i = 1, K do
    if #codes[i] ~= 1 or codes[i][1] ~= 0 then
      problem("ring: worker %d: exit codes {%s}, want {0}", i - 1, concat(codes[i], ", "))
    end
  end
  verdict()
  table.sort(rides)
  return format("%d workers, %d tokens x %d rounds (%d hops, each with a receipt "
                .. "port), %d ports carried %d-%d hops: no loss, no duplicate, in order "
                .. "per link",
                K, T, R, T * HOPS, P, rides[1], rides[#rides])
end

---------------------------------------------------------------------------
-- 3. terminate during transfers
---------------------------------------------------------------------------

-- What a worker does with a port it gets, given with the port as
-- {port = p, id = n, how = ...}:
--   greet   posts {greet = id} on it and keeps it
--   return  posts it back to the main thread through parentPort
--   close   closes it
--   keep    keeps it
--   drop    lets it go (the collector or the worker's end closes it)
--   drain   listens on it, and uses the same way every port its messages
--           carry ({items = {...}})
-- The worker reads workerData or not (READ_DATA), takes READS messages
-- from parentPort (acking each), then ENDS: "end" (falls off the file,
-- its scheduler runs until idle), "spin" (a busy loop) or "sleep".
local TERMINATE_WORKER = [[
local mc = require "messagechannel"
local kept, wrong = {}, {}
local function bad(what)
  if #wrong < 10 then wrong[#wrong + 1] = what end
end
local use
local function use_all(items, ports)
  for j, item in ipairs(items) do
    if not rawequal(item.port, ports[j]) then bad("item " .. item.id .. " is not ports[j]") end
    use(item)
  end
end
function use(item)
  local port, how = item.port, item.how
  if how == "greet" then
    if port:postMessage({ greet = item.id }) ~= true then bad("greet " .. item.id) end
    kept[#kept + 1] = port
  elseif how == "return" then
    if mc.parentPort:postMessage({ ret = item.id }, { port }) ~= true then
      bad("return " .. item.id)
    end
  elseif how == "close" then
    port:close()
  elseif how == "keep" then
    kept[#kept + 1] = port
  elseif how == "drain" then
    port.onmessage = function(e) use_all(e.data.items, e.ports) end
  end
end
if READ_DATA then
  local d = mc.workerData
  use_all(d.items, d.ports)
end
for i = 1, READS do
  local e = mc.parentPort:receive()
  if not e then break end
  use_all(e.data.items, e.ports)
  mc.parentPort:postMessage({ ack = i, wrong = wrong })
end
if ENDS == "spin" then
  while true do end
elseif ENDS == "sleep" then
  mc.sleep(3600)
end
]]

local HOWS = { "greet", "return", "close", "keep", "drop", "drain" }

-- One batch of B workers at once; adds to the counts in `stats`.
-- Returns a weak-keyed table of the partners and Workers it made, for the
-- caller to check that they are collected.
local function terminate_batch(rng, batch, B, stats)
  local recs, plans, codes, workers = {}, {}, {}, {}
  local weak = setmetatable({}, { __mode = "k" })

  -- A partner that stays here, watched: its record counts what reaches
  -- it. Nothing here holds it but its listeners, as API 3.6 allows.
  local function watched(port, via, depth, how, w)
    local rec = { id = #recs + 1, via = via, depth = depth, how = how, worker = w,
                  greets = 0, loops = 0, closes = 0, returned = false }
    recs[rec.id] = rec
    weak[port] = format("partner %d (%s, depth %d, %s) of worker %d", rec.id, via, depth,
                        how, w)
    port.onmessage = function(e)
      local d = e.data
      if rec.closes > 0 then
        problem("terminate: partner %d got a message after its close", rec.id)
      elseif type(d) == "table" and d.greet == rec.id and how == "greet" then
        rec.greets = rec.greets + 1
      elseif type(d) == "table" and d.loop == rec.id and rec.returned then
        rec.loops = rec.loops + 1
      else
        problem("terminate: partner %d (%s) got an unexpected message", rec.id, how)
      end
    end
    port.onclose = function(e)
      rec.closes = rec.closes + 1
      local ok, why = e.target:postMessage("after the close")
      if ok ~= false or why ~= "closed" then
        problem("terminate: partner %d: postMessage after close returned %s, %s", rec.id,
                tostring(ok), tostring(why))
      end
    end
    return rec
  end

  -- A new pair: returns the port that goes to worker w, its item
  -- {port, id, how}, and its partner, which stays here. With depth > 0 it
  -- may be a carrier: messages queued at it carry more such ports.
  local function item(via, depth, w)
    local ch = mc.MessageChannel()
    local how = HOWS[rng.int(1, #HOWS)]
    local rec = watched(ch.port2, via, depth, how, w)
    if depth > 0 and rng.int(1, 3) == 1 then
      for _ = 1, rng.int(1, 2) do
        local inner, inner_item = item("nested", depth - 1, w)
        ch.port2:postMessage({ items = { inner_item } }, { inner })
      end
    end
    return ch.port1, { port = ch.port1, id = rec.id, how = how }, ch.port2
  end

  local function items(via, n, depth, w)
    local list, ports, partners = {}, {}, {}
    for j = 1, n do ports[j], list[j], partners[j] = item(via, depth, w) end
    return list, ports, partners
  end

  -- A port that could not be sent, or came back: this thread takes what
  -- is queued at it (and so the ports that carries) and closes it.
  local function take_back(port)
    port.onmessage = function(e)
      for _, p in ipairs(e.ports) do take_back(p) end
    end
    port:close()
  end

  for b = 1, B do
    local plan = {
      read_data = rng.int(1, 10) <= 7,
      ends = ({ "end", "spin", "sleep" })[rng.int(1, 3)],
      posts = rng.int(1, 6),
    }
    plan.reads = rng.int(0, plan.posts)
    -- terminate after post k (0: before the first), or on ack k - posts
    plan.kill = rng.int(0, plan.posts + plan.reads)
    plans[b] = plan
    local carriers = {}   -- the partners of ports sent to this worker
    local source = format("local READ_DATA, READS, ENDS = %s, %d, %q\n",
                          tostring(plan.read_data), plan.reads, plan.ends)
                   .. TERMINATE_WORKER
    local list, ports, partners = items("data", rng.int(0, 3), 2, b)
    local w = worker(source, { data = { items = list, ports = ports }, transfer = ports })
    for _, p in ipairs(partners) do carriers[#carriers + 1] = p end
    workers[b] = w
    weak[w] = format("worker %d", b)
    local acks = 0
    local function kill() w:terminate() end
    w.onmessage = function(e)
      local d = e.data
      if d.ack then
        acks = acks + 1
        for _, what in ipairs(d.wrong) do problem("terminate: worker %d: %s", b, what) end
        if d.ack ~= acks then problem("terminate: worker %d: ack %d, want %d", b, d.ack, acks) end
        if plan.kill == plan.posts + acks then kill() end
      elseif d.ret then
        local rec, port = recs[d.ret], e.ports[1]
        if not rec or rec.how ~= "return" or rec.returned or not port then
          problem("terminate: worker %d returned partner %s's port wrongly", b, tostring(d.ret))
        else
          rec.returned = true
          if port:postMessage({ loop = d.ret }) ~= true then
            problem("terminate: a returned port does not post")
          end
        end
        if port then take_back(port) end
      end
    end
    w.onerror = function(e)
      problem("terminate: worker %d failed: %s", b, tostring(e.error))
    end
    watch_exit(w, codes, b)

    if plan.kill == 0 then kill() end
    for k = 1, plan.posts do
      local kind = rng.int(1, 4)
      if kind == 1 and #carriers > 0 then
        -- a port into a carrier already on its way (or gone)
        local carrier = carriers[rng.int(1, #carriers)]
        local p, it = item("late", 0, b)
        if carrier:postMessage({ items = { it } }, { p }) ~= true then
          stats.refused = stats.refused + 1
          take_back(p)
        end
        w:postMessage({ items = {} })
      else
        local list2, ports2, partners2 = items("post", kind == 2 and 0 or rng.int(1, 2), 2, b)
        if w:postMessage({ items = list2 }, ports2) == true then
          for _, p in ipairs(partners2) do carriers[#carriers + 1] = p end
        else
          stats.refused = stats.refused + #ports2
          for _, p in ipairs(ports2) do take_back(p) end
        end
      end
      if plan.kill == k then kill() end
    end
  end

  run(function()
    for _, rec in ipairs(recs) do
      if rec.closes ~= 1 then
        local plan = plans[rec.worker]
        problem("terminate: batch %d: partner %d (%s, depth %d, %s) of worker %d got no "
                .. "close; worker reads data %s, reads %d of %d posts, ends %s, kill at %d",
                batch, rec.id, rec.via, rec.depth, rec.how, rec.worker,
                tostring(plan.read_data), plan.reads, plan.posts, plan.ends, plan.kill)
      end
    end
    for b = 1, B do workers[b]:terminate() end
  end)
  for _, rec in ipairs(recs) do
    if rec.closes ~= 1 then
      problem("terminate: batch %d: partner %d (%s, depth %d, %s) of worker %d: %d closes",
              batch, rec.id, rec.via, rec.depth, rec.how, rec.worker, rec.closes)
    end
    if rec.greets > 1 or rec.loops > 1 or (rec.loops == 1) ~= rec.returned then
      problem("terminate: partner %d: %d greetings, %d loops", rec.id, rec.greets, rec.loops)
    end
    stats.greets, stats.loops = stats.greets + rec.greets, stats.loops + rec.loops
  end
  for b = 1, B do
    if #codes[b] ~= 1 then
      problem("terminate: worker %d: %d exit events", b, #codes[b])
    elseif codes[b][1] == 0 then
      stats.ended = stats.ended + 1
    end
  end
  stats.partners = stats.partners + #recs
  return weak
end

local function terminate(rng)
  local batches, B = 150 * scale, 4
  local stats = { partners = 0, greets = 0, loops = 0, refused = 0, ended = 0 }
  for batch = 1, batches do
    local weak = terminate_batch(rng, batch, B, stats)
    -- LuaJIT's traces keep the closures they were compiled for alive,
    -- and with them what the batch's closures hold
    if jit then jit.flush() end
    for _ = 1, 3 do
      collectgarbage("collect")
      collectgarbage("collect")
      run()
    end
    for _, what in pairs(weak) do
      problem("terminate: batch %d: %s was not collected", batch, what)
    end
    verdict()
  end
  return format("%d workers in batches of %d, terminated at a random point (%d had "
                .. "ended): %d partners here (%d greeted, %d came back, %d not sent) "
                .. "each got one close, mc.run() went idle, all collected",
                batches * B, B, stats.ended, stats.partners, stats.greets, stats.loops,
                stats.refused)
end

---------------------------------------------------------------------------

-- Each scenario prints one line, or FAILED and its violations; a failed
-- one does not stop the next, unless it leaves the scheduler busy.
print(format("stress on %s: scale %d, seed %d (STRESS_SEED sets it)",
             jit and jit.version or _VERSION, scale, seed))
io.stdout:flush()
local failed = 0
for i, scenario in ipairs({ { "fan-in", fan_in }, { "ring", ring },
                             { "terminate", terminate } }) do
  local name, t0 = scenario[1] .. ":", mc.now()
  local ok, line = pcall(scenario[2], helper.prng(seed + i))
  if ok then
    print(format("%-10s %s (%.1f s)", name, line, mc.now() - t0))
  else
    failed = failed + 1
    if line ~= FAILED then problem("error: %s", tostring(line)) end
    print(format("%-10s FAILED (seed %d, scale %d):", name, seed, scale))
    for k = 1, math.min(#problems, 30) do print("  " .. problems[k]) end
    if #problems > 30 then print(format("  ... and %d more", #problems - 30)) end
    problems = {}
    if mc.run(TIMEOUT) ~= true then
      print("stress: the scheduler stays busy after the failure; stopping")
      io.stdout:flush()
      os.exit(1)  -- without closing the state: its workers may never end
    end
  end
  io.stdout:flush()
end
if failed > 0 then
  io.stderr:write(format("stress: %d of 3 scenarios failed (seed %d, scale %d)\n",
                         failed, seed, scale))
  os.exit(1)
end
