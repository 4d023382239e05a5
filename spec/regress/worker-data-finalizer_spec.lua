-- mc.workerData is decoded at its first read (API.md 7). A finalizer that
-- ran during that read (the decode allocates, so the collector runs) and
-- read mc.workerData itself opened the same message a second time: it
-- decoded it, handed its objects out and freed it, and the first read went
-- on in freed memory (a crash, or a DataCloneError on bytes that were
-- fine). Now such a read raises "mc.workerData is being read", and the
-- first read ends whole; a finalizer that runs before the message is
-- opened, or after, gets the one value every later read gets.
--
-- Each round is a worker, whose small heap lets an aggressive collector
-- finish cycles (and call finalizers) during the read; rounds with more or
-- less garbage made first move the finalizers over it. The AddressSanitizer
-- run of the specs (make check) sees any read of freed memory.

local mc = require "messagechannel"
local helper = require "spec.helper"

local WORKER = helper.ON_GC .. [[
local mc = require "messagechannel"
local phase, refused, got, other = "before", 0, {}, {}
local arm
local function fin()
  if phase == "reading" then
    local ok, v = pcall(function() return mc.workerData end)
    if ok then
      got[#got + 1] = v
    elseif tostring(v):find("^mc%.workerData is being read") then
      refused = refused + 1
    else
      other[#other + 1] = tostring(v)
    end
  end
  if phase ~= "after" then arm() end
end
function arm() on_gc(fin) end
collectgarbage("setpause", 0)
collectgarbage("setstepmul", 1000)
arm()
for _ = 1, WARM do local _ = {} end
phase = "reading"
local d = mc.workerData
phase = "after"
collectgarbage("setpause", 200)
collectgarbage("setstepmul", 200)
local same = true
for _, v in ipairs(got) do same = same and rawequal(v, d) end
mc.parentPort:postMessage({
  whole = #d == 3000 and d[1] == "s1" and d[3000] == "s3000",
  same = same and rawequal(d, mc.workerData),
  refused = refused, other = table.concat(other, "; "),
})
]]

describe("regress: mc.workerData read by a finalizer during its first read",
         function()
  it("raises, and the first read ends whole #threads", function()
    local data = {}
    for i = 1, 3000 do data[i] = "s" .. i end
    local reports, errors = {}, {}
    for warm = 0, 1900, 100 do
      local w = mc.Worker(WORKER:gsub("WARM", tostring(warm)),
                          { eval = true, data = data })
      w.onmessage = function(e) reports[warm] = e.data end
      w.onerror = function(e) errors[#errors + 1] = tostring(e.error) end
    end
    assert.is_true(mc.run(120), "the workers did not end")
    assert.are.same({}, errors)
    for warm = 0, 1900, 100 do
      local r = reports[warm]
      assert.is_table(r, "round " .. warm .. " reported nothing")
      assert.is_true(r.whole, "round " .. warm .. ": workerData not whole")
      assert.is_true(r.same, "round " .. warm .. ": two values")
      assert.are.equal("", r.other, "round " .. warm)
    end
  end)
end)
