-- Clone benchmark: mc.structuredClone and mc.serialize + mc.deserialize of
-- a 1000-item catalog against lua-cjson encode + decode and a pure-Lua deep
-- copy. Target on Lua 5.4: at least 5x faster than both. Then the same of
-- a small table, and both against the hand-written floor, a constructor
-- copy of the shape: targets structuredClone within 1.5x of it on the
-- catalog and 2.5x on the small table, serialize + deserialize within 2x
-- and 3x.
--
--   lua5.4 bench/clone.lua
--
-- The paths below are derived from this file's location, so the bench runs
-- the checkout it lives in (lua/ and build/<version>/) from any directory.

local arg = arg
local VERSION = _VERSION
local jit = rawget(_G, "jit")
local format = string.format
local next, type, pcall, require = next, type, pcall, require
local print, tostring, error = print, tostring, error
local exit = os.exit

local root = ((arg and arg[0] or ""):match("^(.*[/\\])") or "") .. "../"
local build = type(jit) == "table" and "luajit" or VERSION:match("%d+%.%d+")
package.path = root .. "?.lua;" .. root .. "lua/?.lua;" .. root
  .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/" .. build .. "/?.so;" .. package.cpath

local common = require "bench.common"

local N = 1000
local TARGET_RATIO = 5
local TARGET_VERSION = "Lua 5.4"

local ok_mc, mc = pcall(require, "messagechannel")
local ok_json, cjson = pcall(require, "cjson")

-- The catalog: deterministic, JSON-representable (no cycles, no sparse
-- arrays, no empty tables), with the mix of integers, floats, strings,
-- booleans, arrays and nested records a real one has.

local TAGS = {"new", "sale", "eco", "bulk", "fragile", "imported",
  "clearance", "premium", "outdoor", "kitchen"}
local SUPPLIERS = {"Acme Industrial", "Nordwind GmbH", "Soleil SARL",
  "Kawasemi Trading", "Rio Verde Ltda", "Ganga Exports", "Thames & Co",
  "Fratelli Rossi"}
local COUNTRIES = {"US", "DE", "FR", "JP", "BR", "IN", "GB", "IT"}

local function make_catalog(n)
  local items = {}
  for i = 1, n do
    items[i] = {
      id = i,
      sku = format("SKU-%06d", i),
      name = "Item " .. i,
      price = (i * 7919 % 100000) / 100 + 0.5,
      stock = i * 13 % 500,
      active = i % 5 ~= 0,
      tags = {TAGS[i % 10 + 1], TAGS[i * 3 % 10 + 1], TAGS[i * 7 % 10 + 1]},
      dims = {w = 1.5 + i % 8 * 0.25, h = 2.25, d = 3 + i % 4},
      supplier = {name = SUPPLIERS[i % 8 + 1],
        country = COUNTRIES[i * 5 % 8 + 1]},
    }
  end
  return {items = items, count = n, generated = "2026-11-21"}
end

-- What a Lua programmer writes by hand, with a `seen` table so shared
-- references and cycles survive as they do in structuredClone. Raw
-- traversal; the metatable is dropped, as structuredClone drops it.
local function deepcopy(v, seen)
  if type(v) ~= "table" then return v end
  local c = seen[v]
  if c then return c end
  c = {}
  seen[v] = c
  for k, x in next, v do
    c[deepcopy(k, seen)] = deepcopy(x, seen)
  end
  return c
end

local catalog = make_catalog(N)

local function check(label, copy)
  local items = type(copy) == "table" and copy.items
  if copy == catalog or type(items) ~= "table" or #items ~= N
      or items[500] == catalog.items[500]
      or type(items[500].dims) ~= "table" or items[500].dims.h ~= 2.25
      or items[N].sku ~= catalog.items[N].sku then
    error(label .. ": the copy of the catalog is wrong", 0)
  end
end

-- Each result goes to `sink` so no compiler can drop the work.
local sink
local workloads = {}
local function add(name, copy)
  check(name, copy(catalog))
  workloads[#workloads + 1] = {name = name, run = function(n)
    for _ = 1, n do sink = copy(catalog) end
  end}
end

if ok_mc then
  local clone, serialize, deserialize =
    mc.structuredClone, mc.serialize, mc.deserialize
  add("structuredClone", clone)
  add("serialize+deserialize", function(v)
    return deserialize(serialize(v))
  end)
end
if ok_json then
  local encode, decode = cjson.encode, cjson.decode
  add("cjson encode+decode", function(v) return decode(encode(v)) end)
end
add("pure-Lua deepcopy", function(v) return deepcopy(v, {}) end)

-- Not a peer: the copy written by hand for this one shape, with table
-- constructors. It allocates what any copy must allocate and does nothing
-- else, so it is the floor a generic copy can approach.
local function rebuild(v)
  local src, items = v.items, {}
  for i = 1, #src do
    local it = src[i]
    local t, d, s = it.tags, it.dims, it.supplier
    items[i] = {id = it.id, sku = it.sku, name = it.name, price = it.price,
      stock = it.stock, active = it.active, tags = {t[1], t[2], t[3]},
      dims = {w = d.w, h = d.h, d = d.d},
      supplier = {name = s.name, country = s.country}}
  end
  return {items = items, count = v.count, generated = v.generated}
end
add("hand-written rebuild", rebuild)

print(format("clone bench: %s, catalog of %d items", common.version(), N))
if ok_mc then
  print("messagechannel " .. tostring(mc.version))
else
  print("messagechannel not loadable (build it first), only the peers run: "
    .. (tostring(mc):gsub("\n.*", "")))
end
if not ok_json then
  print("lua-cjson not installed: cjson encode+decode skipped")
end
if ok_mc and ok_json then
  local bin, json = #mc.serialize(catalog), #cjson.encode(catalog)
  print(format("size: serialized %d bytes, JSON %d bytes (%.2fx of JSON)",
    bin, json, bin / json))
end
print(format("%d rounds interleaved, ~%.3f s per batch, CPU time (os.clock)",
  common.ROUNDS, common.TARGET))
print("")

local results = common.run_interleaved(workloads)
check("last timed result", sink)
common.print_lines(common.table(results))
print("")

local by = results.by_name
local OURS = {"structuredClone", "serialize+deserialize"}
local PEERS = {"cjson encode+decode", "pure-Lua deepcopy"}
local met, checked = true, 0
for i = 1, #OURS do
  for j = 1, #PEERS do
    local ours, peer = by[OURS[i]], by[PEERS[j]]
    if ours and peer then
      print(common.ratio_line(ours, peer))
      checked = checked + 1
      if common.ratio(ours, peer) < TARGET_RATIO then met = false end
    end
  end
end

local verdict
if checked < #OURS * #PEERS then
  verdict = "not checked (a workload is missing)"
elseif met then
  verdict = "met"
else
  verdict = "NOT met"
end
local floor = by["hand-written rebuild"]
if floor then
  local cheapest = math.min(by[PEERS[1]] and by[PEERS[1]].median or math.huge,
    by[PEERS[2]].median)
  print(format("floor: the hand-written rebuild takes %.1f us; %dx faster "
    .. "than the faster peer would be %.1f us", floor.median * 1e6,
    TARGET_RATIO, cheapest / TARGET_RATIO * 1e6))
end
if VERSION == TARGET_VERSION and type(jit) ~= "table" then
  print(format("target: >= %dx faster than both peers on %s: %s",
    TARGET_RATIO, TARGET_VERSION, verdict))
else
  print(format("target: >= %dx faster than both peers on %s: does not "
    .. "apply to %s (these ratios: %s)", TARGET_RATIO, TARGET_VERSION,
    common.version(), verdict))
end

-- Against the floor, the catalog and a small table.
if not ok_mc then exit(1) end

local SMALL = { id = 1, name = "hello", tags = { "a", "b" },
                pos = { x = 1.5, y = -2 } }
local function small_rebuild(v)
  local t, p = v.tags, v.pos
  return { id = v.id, name = v.name, tags = { t[1], t[2] },
           pos = { x = p.x, y = p.y } }
end
local small_sink
local function small(name, copy)
  local c = copy(SMALL)
  if c == SMALL or c.pos.y ~= -2 or c.tags[2] ~= "b" then
    error(name .. ": the copy of the small table is wrong", 0)
  end
  return { name = name, run = function(n)
    for _ = 1, n do small_sink = copy(SMALL) end
  end }
end
local clone, serialize, deserialize =
  mc.structuredClone, mc.serialize, mc.deserialize
local small_results = common.run_interleaved({
  small("structuredClone", clone),
  small("serialize+deserialize",
        function(v) return deserialize(serialize(v)) end),
  small("hand-written rebuild", small_rebuild),
})
if small_sink.pos.y ~= -2 then error("the last small copy is wrong", 0) end
print("")
print(format("the small table %s, %d rounds interleaved",
  "{ id = 1, name = \"hello\", tags = { \"a\", \"b\" }, pos = { x = 1.5, y = -2 } }",
  common.ROUNDS))
common.print_lines(common.table(small_results))
print("")
local sby = small_results.by_name
local TARGETS = {
  { "structuredClone", "catalog", by, 1.5 },
  { "serialize+deserialize", "catalog", by, 2 },
  { "structuredClone", "small table", sby, 2.5 },
  { "serialize+deserialize", "small table", sby, 3 },
}
local fmet = 0
for i = 1, #TARGETS do
  local name, what, set, limit = TARGETS[i][1], TARGETS[i][2], TARGETS[i][3],
    TARGETS[i][4]
  local x = set[name].median / set["hand-written rebuild"].median
  if x <= limit then fmet = fmet + 1 end
  print(format("%s of the %s: %.2fx the floor's time (target <= %.1fx): %s",
    name, what, x, limit, x <= limit and "met" or "NOT met"))
end
print(format("targets against the floor: %d of %d met%s", fmet, #TARGETS,
  VERSION == TARGET_VERSION and type(jit) ~= "table" and ""
    or " (they are set for " .. TARGET_VERSION .. ")"))
