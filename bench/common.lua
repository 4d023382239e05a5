-- Shared helpers for the benchmarks in bench/: batch calibration, rounds
-- interleaved across workloads, medians and a fixed-width report.
--
-- A workload is a table {name = "...", run = function(n) ... end}: run(n)
-- performs n operations. Each round times one batch of every workload in
-- turn (a b c, a b c, ...), so machine noise falls on all of them alike.
--
-- Times come from os.clock() (CPU seconds of this process) unless the
-- caller passes another clock; a bench that waits on other threads should
-- pass a wall clock such as mc.now instead.

local M = {}

local clock = os.clock
local collectgarbage = collectgarbage
local format = string.format
local rep = string.rep
local floor = math.floor
local sort = table.sort
local concat = table.concat
local type = type
local error = error
local print = print
local tostring = tostring
local VERSION = _VERSION
local jit = rawget(_G, "jit")

M.ROUNDS = 15
M.TARGET = 0.075 -- seconds one batch should take
M.MIN_TIME = 0.01 -- a calibration batch shorter than this is not trusted

local function elapsed(run, n, now)
  local t0 = now()
  run(n)
  return now() - t0
end

-- Batch size n for which run(n) takes about `target` seconds. Doubling from
-- one also serves as the first part of the warm-up.
function M.calibrate(run, target, now)
  target = target or M.TARGET
  now = now or clock
  local n = 1
  while true do
    local t = elapsed(run, n, now)
    if t >= M.MIN_TIME or n >= 2 ^ 30 then
      local scaled = floor(n * target / (t > 0 and t or 1e-9) + 0.5)
      return scaled >= 1 and scaled or 1
    end
    n = n * 2
  end
end

-- Median of a list of numbers (not changed in place).
function M.median(list)
  local n = #list
  if n == 0 then error("median of an empty list", 2) end
  local s = {}
  for i = 1, n do s[i] = list[i] end
  sort(s)
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

local function minmax(list)
  local lo, hi = list[1], list[1]
  for i = 2, #list do
    local v = list[i]
    if v < lo then lo = v end
    if v > hi then hi = v end
  end
  return lo, hi
end

-- Runs every workload: calibrate, one warm-up batch, then `rounds` rounds,
-- interleaved. Returns a list, in the workloads' order, of
--   {name, batch, samples (seconds per op, one per round),
--    median, min, max (seconds per op), ops (ops per second at the median)}
-- and sets result.by_name[name] to the same records.
-- opts: rounds, target (seconds per batch), clock (a function).
function M.run_interleaved(workloads, opts)
  opts = opts or {}
  local rounds = opts.rounds or M.ROUNDS
  local target = opts.target or M.TARGET
  local now = opts.clock or clock
  local results = {by_name = {}}

  for i = 1, #workloads do
    local w = workloads[i]
    if type(w.run) ~= "function" then
      error("workload " .. tostring(w.name) .. " has no run function", 2)
    end
    collectgarbage()
    local batch = M.calibrate(w.run, target, now)
    collectgarbage()
    w.run(batch) -- warm-up at the real batch size
    local r = {name = w.name, batch = batch, samples = {}}
    results[i] = r
    results.by_name[w.name] = r
  end

  for _ = 1, rounds do
    for i = 1, #workloads do
      local r = results[i]
      collectgarbage()
      local t = elapsed(workloads[i].run, r.batch, now)
      r.samples[#r.samples + 1] = t / r.batch
    end
  end

  for i = 1, #results do
    local r = results[i]
    r.median = M.median(r.samples)
    r.min, r.max = minmax(r.samples)
    r.ops = r.median > 0 and 1 / r.median or 1 / 0
  end
  return results
end

-- "Lua 5.4" or "Lua 5.1 (LuaJIT 2.1.0-beta3)".
function M.version()
  if type(jit) == "table" and jit.version then
    return VERSION .. " (" .. jit.version .. ")"
  end
  return VERSION
end

local function pad(s, width, left)
  local fill = width - #s
  if fill <= 0 then return s end
  if left then return s .. rep(" ", fill) end
  return rep(" ", fill) .. s
end

-- Fixed-width table of results as a list of lines: workload, median us per
-- op, ops per second, spread (min..max over the rounds, as % of the median)
-- and rounds x batch.
function M.table(results)
  local namew = #"workload"
  for i = 1, #results do
    if #results[i].name > namew then namew = #results[i].name end
  end
  local cols = {
    {"workload", namew, true},
    {"median us/op", 13},
    {"ops/s", 11},
    {"spread", 16},
    {"rounds x batch", 15},
  }
  local head, rule = {}, {}
  for i = 1, #cols do
    local c = cols[i]
    head[i] = pad(c[1], c[2], c[3])
    rule[i] = rep("-", c[2])
  end
  local lines = {concat(head, "  "), concat(rule, "  ")}
  for i = 1, #results do
    local r = results[i]
    local lo = (r.min / r.median - 1) * 100
    local hi = (r.max / r.median - 1) * 100
    local row = {
      pad(r.name, namew, true),
      pad(format("%.1f", r.median * 1e6), 13),
      pad(format("%.0f", r.ops), 11),
      pad(format("%+.1f%%..%+.1f%%", lo, hi), 16),
      pad(format("%d x %d", #r.samples, r.batch), 15),
    }
    lines[#lines + 1] = concat(row, "  ")
  end
  return lines
end

-- peer / ours from the medians: above 1 means ours is faster.
function M.ratio(ours, peer)
  return peer.median / ours.median
end

-- "structuredClone vs cjson encode+decode: 6.1x faster (median)"
function M.ratio_line(ours, peer)
  local x = M.ratio(ours, peer)
  local word = "faster"
  if x < 1 then x, word = 1 / x, "slower" end
  return format("%s vs %s: %.1fx %s (median)", ours.name, peer.name, x, word)
end

function M.print_lines(lines)
  for i = 1, #lines do print(lines[i]) end
end

return M
