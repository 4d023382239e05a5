-- A finalizer can run while a message is decoded (the decode allocates,
-- so the collector runs). One that closed the BroadcastChannel being read
-- (bc:close(), or its __gc called by hand), or called a port's __gc by
-- hand, freed the message under the decoder: it read freed memory
-- (valgrind: invalid reads in the decoder; a crash with a large message).
-- No input crashes the process (API.md 9). Now the read keeps the message
-- until it ends, then frees it, and delivers nothing: the channel was
-- closed (API.md 11: messages not yet dispatched to it are dropped), the
-- port collected as far as its owner is concerned. (A finalizer that runs
-- once the message is taken, as the listener is called, comes too late to
-- stop that delivery; nothing later is delivered.)
--
-- Each case runs in a worker, whose small heap lets an aggressive
-- collector finish cycles (and call finalizers) during the decode; rounds
-- with more or less garbage made first move the finalizer's call over the
-- decode. The AddressSanitizer run of the specs (make check) sees any read
-- of freed memory.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WORKER = helper.ON_GC .. [[
local mc = require "messagechannel"
local mode = mc.workerData
local value = {}
for i = 1, 5000 do value[i] = "string " .. i end
local acted, wrong = 0, {}
collectgarbage("setpause", 0)
collectgarbage("setstepmul", 1000)
for warm = 0, 1900, 100 do
  local a, b
  if mode == "port gc" then
    local ch = mc.MessageChannel()
    a, b = ch.port1, ch.port2
  else
    a, b = mc.BroadcastChannel("let go"), mc.BroadcastChannel("let go")
  end
  local phase, got, done = "before", 0, false
  b.onmessage = function() phase = "dispatched"; got = got + 1 end
  a:postMessage(value)
  local arm
  local function fin()
    if phase == "before" then
      arm()
    elseif phase == "reading" and not done then
      done = true
      if mode == "bc close" then b:close() else getmetatable(b).__gc(b) end
    end
  end
  function arm() on_gc(fin) end
  arm()
  for _ = 1, warm do local _ = {} end
  phase = "reading"
  mc.step()
  phase = "after"
  if done then  -- whatever came before, nothing comes after
    local before = got
    acted = acted + 1
    a:postMessage("after")
    mc.step()
    if got ~= before then wrong[#wrong + 1] = warm end
  end
  a:close()
  if mode ~= "port gc" then b:close() end
end
mc.parentPort:postMessage({ acted = acted, wrong = table.concat(wrong, ",") })
]]

local function run_case(mode)
  local report
  local w = mc.Worker(WORKER, { eval = true, data = mode })
  w.onmessage = function(e) report = e.data end
  w.onerror = function(e) error(e.error, 0) end
  assert.is_true(mc.run(120), "the worker did not end")
  assert.is_table(report, "the worker reported nothing")
  assert.are.equal("", report.wrong,
                   "delivered after it was let go (rounds, by garbage made first)")
  assert.is_true(report.acted > 0, "no finalizer ran during a dispatch")
end

describe("regress: a finalizer that lets go of the receiver being read",
         function()
  it("bc:close(): the message is dropped, nothing freed under the read #threads",
     function()
    run_case("bc close")
  end)

  it("a BroadcastChannel's __gc by hand: the same #threads", function()
    run_case("bc gc")
  end)

  it("a port's __gc by hand: the same #threads", function()
    run_case("port gc")
  end)
end)
