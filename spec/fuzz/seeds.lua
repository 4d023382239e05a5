-- seeds.lua: writes the seed corpus of the fuzz targets,
-- spec/fuzz/corpus/clone (programs for program.lua, one per kind of value
-- or failure) and spec/fuzz/corpus/deserialize (what mc.serialize makes of
-- those values, then hand-made bad messages, one per check of the
-- decoder). From the top of the tree, after `make`:
--
--   LUA_PATH="spec/fuzz/?.lua;lua/?.lua;lua/?/init.lua" \
--   LUA_CPATH="build/5.4/?.so" lua5.4 spec/fuzz/seeds.lua
--
-- It overwrites the files it names and leaves others alone.

local mc = require "messagechannel"
local program = require "program"

local char, pack = string.char, string.pack
local op = program.op

program.register(mc)

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  assert(f:write(s))
  assert(f:close())
end

-- Program pieces: each pushes or does one thing.
local function o(name, ...) return char(op[name], ...) end
local function str(s) return o("string", #s) .. s end  -- up to 47 bytes
local function int(i) return o("int") .. pack("<i8", i) end
local function float(x) return o("float") .. pack("<d", x) end
local function small(i) return o("byte", i + 64) end
local function field(k, v) return str(k) .. v .. o("set") end
local T, APPEND = o("table"), o("append")

local function specials()
  local p = { T }
  for i = 0, 23 do p[#p + 1] = o("special", i) .. APPEND end
  return table.concat(p)
end

local function each_bad()
  local list = {}
  for kind = 0, 4 do list[kind + 1] = T .. field("x", o("bad", kind)) end
  return list
end

local bad = each_bad()

-- name -> program; those whose value clones also seed the decoder.
local clone = {
  ["empty"] = "",
  ["scalars"] = T .. field("n", o("nil")) .. field("f", o("false"))
    .. field("t", o("true")) .. field("small", small(5))
    .. field("negative", small(-3)) .. field("int", int(-1234567890123))
    .. field("float", float(3.25)) .. field("empty", str("")),
  ["numbers"] = specials(),
  ["strings"] = T .. str("") .. APPEND .. str("\0") .. APPEND
    .. str(("\255\0"):rep(15)) .. APPEND .. str(("x"):rep(32)) .. APPEND
    .. o("long", 1, 0, 65) .. APPEND,
  ["nested"] = T .. str("a") .. T .. str("b") .. T .. str("c") .. T
    .. o("set") .. o("set") .. o("set"),
  ["shared"] = T .. str("a") .. T .. o("set") .. str("b") .. o("ref", 1)
    .. o("set"),
  ["cycle"] = T .. o("self") .. str("again") .. o("ref", 0) .. o("set"),
  ["cycle-of-two"] = T .. str("b") .. T .. str("a") .. o("ref", 0)
    .. o("set") .. o("set"),
  ["table-keys"] = T .. T .. o("true") .. o("set") .. T .. small(1)
    .. o("set") .. str("k") .. o("ref", 1) .. o("set"),
  ["holes"] = T .. small(1) .. APPEND .. small(2) .. APPEND .. small(3)
    .. APPEND .. small(2) .. o("unset"),
  ["keys-strings"] = T .. o("keys", 40, 0, 0),
  ["keys-sparse"] = T .. o("keys", 30, 1, 5),
  ["keys-negative"] = T .. o("keys", 30, 2, 0),
  ["keys-float"] = T .. o("keys", 20, 3, 0) .. o("keys", 20, 4, 1),
  ["array"] = o("nil") .. o("array", 0xff, 0x10),
  ["array-shared"] = T .. o("array", 0, 100),
  ["deep"] = o("true") .. o("nest", 0xff, 0x4b),
  ["deep-cycle"] = T .. o("ref", 0) .. o("nest", 0, 80) .. o("swap")
    .. str("up") .. o("ref", 1) .. o("set") .. o("pop"),
  ["buffers"] = T .. o("buffer", 5) .. "hello" .. APPEND .. o("zeros", 0, 100)
    .. APPEND .. o("ref", 1) .. APPEND .. o("ref", 1) .. o("true")
    .. o("set"),
  ["buffer-big"] = o("zeros", 0x40, 0),
  ["metatables"] = T .. o("meta", 0) .. APPEND .. o("meta", 1) .. APPEND
    .. o("meta", 2) .. APPEND .. o("meta", 3) .. APPEND,
  ["setmeta-late"] = T .. o("ref", 0) .. str("me") .. o("swap") .. o("set")
    .. o("setmeta", 1),
  ["bad-function"] = bad[1],
  ["bad-coroutine"] = bad[2],
  ["bad-userdata"] = bad[3],
  ["bad-detached"] = bad[4],
  ["bad-closed-port"] = bad[5],
  ["bad-key"] = T .. o("bad", 0) .. o("true") .. o("set"),
  ["port"] = T .. o("port") .. APPEND,
  ["port-and-buffers"] = T .. o("port") .. APPEND .. o("buffer", 3) .. "abc"
    .. APPEND .. o("ref", 1) .. o("ref", 2) .. o("set"),
  ["transfer-twice"] = T .. o("buffer", 1) .. "a" .. APPEND .. o("transfer", 1),
  ["transfer-table"] = T .. o("buffer", 1) .. "a" .. APPEND .. o("transfer", 2),
  ["transfer-extra"] = T .. o("buffer", 1) .. "a" .. APPEND .. o("transfer", 4),
  ["transfer-no-ports"] = T .. o("port") .. APPEND .. o("transfer", 8),
  ["colliding-keys"] = T .. o("collide", 8),
  ["mixed"] = T .. field("list", specials()) .. field("keys", T
    .. o("keys", 8, 0, 0)) .. o("self") .. field("buf", o("buffer", 2) .. "xy")
    .. o("ref", 1) .. o("ref", 3) .. o("set") .. o("meta", 0) .. o("ref", 0)
    .. o("set"),
}

-- Hand-made messages for the decoder: one for each way to be wrong, and
-- a few right ones the writer would not make.
local function u32(n) return pack("<I4", n) end
local function tbl(narr, nhash) return "\6" .. u32(narr) .. u32(nhash) end
local deserialize = {
  ["bad-empty"] = "",
  ["bad-version"] = "\3\0",
  ["bad-strdef-v1"] = "\1" .. tbl(0, 1) .. "\64\1k\2",
  ["bad-strdef-length"] = "\2\64\5abc",
  ["strdef"] = "\2" .. tbl(1, 2) .. "\64\5hello\8\1\2\64\1k\8\1",
  ["strdef-ref-key"] = "\2" .. tbl(2, 1) .. "\64\2ab\6" .. u32(0) .. u32(1)
    .. "\8\1\129\8\1\130",
  ["bad-truncated"] = "\1",
  ["bad-truncated-string"] = "\1\5\10abc",
  ["bad-tag"] = "\1\11",
  ["bad-overlong-varint"] = "\1\3\128\0",
  ["bad-varint-overflow"] = "\1\3" .. ("\255"):rep(9) .. "\2",
  ["bad-ref"] = "\1" .. tbl(1, 0) .. "\8\1",
  ["bad-transfer"] = "\1\10\0",
  ["bad-sizes"] = "\1" .. tbl(1000, 1000),
  ["bad-trailing"] = "\1\0\0",
  ["bad-nil-key"] = "\1" .. tbl(0, 1) .. "\0\2",
  ["bad-nan-key"] = "\1" .. tbl(0, 1) .. "\4" .. pack("<d", 0 / 0) .. "\2",
  ["bad-metatable-name"] = "\1\7" .. u32(0) .. u32(0) .. "\4nope",
  ["metatable-name"] = "\1\7" .. u32(0) .. u32(0) .. "\10fuzz.plain",
  ["array-with-nil"] = "\1" .. tbl(3, 0) .. "\129\0\131",
  ["duplicate-keys"] = "\1" .. tbl(0, 2) .. "\33k\129\33k\130",
  ["float-keys"] = "\1" .. tbl(0, 2) .. "\4" .. pack("<d", 1.0) .. "\2\4"
    .. pack("<d", -0.0) .. "\1",
  ["long-string"] = "\1\5\200\1" .. ("s"):rep(200),
  ["buffer"] = "\1\9\3abc",
  ["ref-self"] = "\1" .. tbl(1, 1) .. "\8\0\8\0\8\0",
  ["int-extremes"] = "\1" .. tbl(2, 0) .. "\3" .. ("\255"):rep(9) .. "\1\3"
    .. ("\254"):rep(9) .. "\1",
}

-- 1024 integer keys that share one main position once the table is made.
do
  local p = { "\1", tbl(0, 1024) }
  for i = 1, 1024 do
    local z, v = 2 * i * 1023, {}
    repeat
      v[#v + 1] = char(z & 0x7f | (z >= 0x80 and 0x80 or 0))
      z = z >> 7
    until z == 0
    p[#p + 1] = "\3" .. table.concat(v) .. "\129"
  end
  deserialize["colliding-keys"] = table.concat(p)
end

-- An array of records: version 2, its keys written once.
do
  local records = {}
  for i = 1, 20 do records[i] = { id = i, name = "r" .. i, ok = true } end
  deserialize["from-records"] = mc.serialize(records)
end

for name, p in pairs(clone) do
  write("spec/fuzz/corpus/clone/" .. name, p)
  local ok, s = pcall(mc.serialize, (program.run(p, mc)))
  if ok and not name:find("^transfer") then deserialize["from-" .. name] = s end
end
for name, s in pairs(deserialize) do
  write("spec/fuzz/corpus/deserialize/" .. name, s)
end
