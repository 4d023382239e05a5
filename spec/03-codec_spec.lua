local mc = require "messagechannel"
local helper = require "spec.helper"

local char = string.char
local error_of, hex = helper.error_of, helper.hex
local decode_problem = helper.decode_problem
local decode_error_problem = helper.decode_error_problem

local SEED = 20240521

-- A metatable this file registers, so the samples include one.
local THING = { __index = { kind = function() return "thing" end } }
local thing_registered = false
local function thing(t)
  if not thing_registered then
    mc.register("spec03.thing", THING)
    thing_registered = true
  end
  return setmetatable(t, THING)
end

-- Values whose encodings the decoder specs start from; each has a name.
local function samples()
  local list = {}
  local function add(name, value) list[#list + 1] = { name = name, value = value } end

  add("a nested table of strings, numbers and booleans", {
    name = "x\0y", list = { 1, 2, 3, -7, 1000000, 2 ^ 40, helper.maxinteger or 2 ^ 53 },
    f = 1.5, nz = helper.negzero, inf = math.huge, ninf = -math.huge, nan = helper.nan,
    yes = true, no = false, [2.5] = "float key", [true] = "boolean key",
    nested = { deep = { s = ("ab"):rep(40), empty = "" } },
  })
  local sub = { 1, "two" }
  add("shared references", { a = sub, b = sub, { sub } })
  local loop = { name = "loop" }
  loop.self = loop
  loop.list = { loop }
  add("a cycle", loop)
  local key = { 1 }
  add("a table used as a key", { [key] = "value", ref = key })
  add("a registered metatable", thing({ x = 1, inner = thing({}) }))
  local buf = mc.Buffer("bytes\0\255")
  add("Buffers", { buf = buf, again = buf, empty = mc.Buffer(0) })
  add("references among 40 objects", (function()
    local objs = {}
    for i = 1, 40 do
      objs[i] = i % 7 == 0 and mc.Buffer(tostring(i))
                or (i % 5 == 0 and thing({ i = i }) or { i = i })
    end
    for i = 1, 40 do
      if type(objs[i]) == "table" then
        objs[i].prev = objs[i - 1] or objs[40]
        objs[i].first = objs[1]
      end
    end
    return objs
  end)())
  add("a string", "hello\0")
  add("an integer", -123456789)
  add("a float", 0.1)
  add("true", true)
  add("nil", nil)
  return list
end

-- Runs check(s) on each input that next_input() yields until it returns
-- nil, and fails with the first problem found.
local function no_problem(check, next_input, what)
  for s in next_input do
    local problem = check(s)
    if problem then
      assert.is_nil(problem, ("%s, input %s"):format(what, hex(s)))
    end
  end
end

-- An input source yielding n strings made by make(i).
local function generate(n, make)
  local i = 0
  return function()
    i = i + 1
    if i <= n then return make(i) end
  end
end

describe("wire format", function()
  describe("mc.serialize", function()
    it("returns a string whose first byte is the format version: 2 when "
       .. "it shares strings, else 1", function()
      for _, sample in ipairs(samples()) do
        local s = mc.serialize(sample.value)
        assert.is_string(s, sample.name)
        assert.equal(sample.name == "references among 40 objects" and 2 or 1,
                     s:byte(1), sample.name)
      end
    end)

    it("copies a Buffer's bytes into the string", function()
      local b = mc.Buffer("payload\0\255")
      local s = mc.serialize(b)
      b:write(1, "P")
      local c = mc.deserialize(s)
      assert.equal("payload\0\255", c:sub())
      assert.is_false(b.detached)
    end)
  end)

  -- Version 2 (docs/FORMAT.md): STRDEF, a string written once and
  -- referred to by id after that.
  describe("shared strings (version 2)", function()
    local u32 = helper.u32
    local function tbl(narr, nhash) return "\6" .. u32(narr) .. u32(nhash) end
    local function count(s, needle)
      local n, at = 0, 1
      while true do
        local i = s:find(needle, at, true)
        if not i then return n end
        n, at = n + 1, i + 1
      end
    end
    local function records(n, value)
      local t = {}
      for i = 1, n do
        t[i] = { record_id = i, label = value or ("r" .. i), flag = true }
      end
      return t
    end

    it("writes each key of an array of records once, as version 2",
       function()
      local t = records(40)
      local s = mc.serialize(t)
      assert.equal(2, s:byte(1))
      assert.equal(1, count(s, "record_id"))
      assert.equal(1, count(s, "label"))
      assert.same(t, mc.deserialize(s))
      -- and smaller than the same keys written each time
      local plain = 0
      for _, r in ipairs(t) do plain = plain + #mc.serialize(r) end
      assert.is_true(#s < plain * 0.7, #s .. " bytes against " .. plain)
    end)

    it("writes values in full", function()
      local s = mc.serialize(records(40, "the same value"))
      assert.equal(40, count(s, "the same value"))
    end)

    it("keeps a message of fewer than 16 objects at version 1",
       function()
      local s = mc.serialize(records(10))
      assert.equal(1, s:byte(1))
      assert.equal(10, count(s, "record_id"))
      assert.equal(hex("\1\34ab"), hex(mc.serialize("ab")))
    end)

    it("keeps shared keys through postMessage and structuredClone",
       function()
      local t = records(30)
      local ch = mc.MessageChannel()
      ch.port1:postMessage(t)
      assert.same(t, ch.port2:receive(0).data)
      ch.port1:close()
      assert.same(t, mc.structuredClone(t))
    end)

    it("reads STRDEF and REF to it as values and as keys", function()
      -- { "hello", hello = true, k = "hello" }
      local s = "\2" .. tbl(1, 2) .. "\64\5hello" .. "\8\1\2"
                .. "\64\1k\8\1"
      assert.same({ "hello", hello = true, k = "hello" }, mc.deserialize(s))
      -- a key shared by two tables: { "ab", { ab = 2 }, ab = 1 }
      s = "\2" .. tbl(2, 1) .. "\64\2ab" .. tbl(0, 1) .. "\8\1\129"
          .. "\8\1\130"
      assert.same({ "ab", { ab = 2 }, ab = 1 }, mc.deserialize(s))
      -- a shared string as the whole message, and a STRDEF of 0 bytes
      assert.equal("x", mc.deserialize("\2\64\1x"))
      assert.equal("", mc.deserialize("\2\64\0"))
    end)

    it("rejects STRDEF in a version 1 message as an unknown tag", function()
      local s = "\1" .. tbl(0, 1) .. "\64\1k\2"
      assert.equal("DataCloneError: unknown tag at byte 10",
                   error_of(mc.deserialize, s))
    end)

    it("rejects a STRDEF longer than the input, and a version past 2",
       function()
      assert.truthy(error_of(mc.deserialize, "\2\64\5abc")
                    :find("^DataCloneError: length beyond the end of input"))
      assert.equal("DataCloneError: unsupported format version at byte 0",
                   error_of(mc.deserialize, "\3\0"))
    end)

    it("counts a REF to a shared string as a string key: duplicate keys "
       .. "and REFs to tables stay apart", function()
      -- { [t] = 1, ab = 2 } where t is the root's array value
      local s = "\2" .. tbl(1, 2) .. tbl(0, 0) .. "\8\1\129"
                .. "\64\2ab\130"
      local v = mc.deserialize(s)
      assert.equal(1, v[v[1]])
      assert.equal(2, v.ab)
      -- a REF to a string used as a key twice in one table: one key
      s = "\2" .. tbl(1, 2) .. "\64\2ab" .. "\8\1\129" .. "\8\1\130"
      assert.same({ "ab", ab = 2 }, mc.deserialize(s))
    end)
  end)

  -- Ids of the objects a message holds: the first few are kept apart from
  -- the rest (codec.c, STACK_IDS), so references must resolve on both
  -- sides of that line, for every way a value is copied.
  -- docs/FORMAT.md "Bodies": the keys 1, 2, ... that next gives first are
  -- the array part, every other pair is a pair, wherever Lua keeps them.
  describe("array part and pairs", function()
    -- Every key and value of a, and no other, in b.
    local function same_pairs(a, b, what)
      local n = 0
      for k, v in pairs(a) do
        n = n + 1
        assert.equal(v, rawget(b, k), what .. ", key " .. tostring(k))
      end
      for _ in pairs(b) do n = n - 1 end
      assert.equal(0, n, what .. ": the copy has other keys")
    end

    local function tables()
      local list = {}
      local function add(name, t) list[#list + 1] = { name = name, t = t } end
      local back = {}
      for i = 50, 1, -1 do back[i] = i * 2 end
      add("filled from its end", back)
      local late = { a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7 }
      late[1], late[2], late[3] = "x", "y", "z"  -- into free hash nodes
      add("records with 1..3 added later", late)
      add("a hole", { 1, 2, nil, 4, n = 4 })
      add("keys 0 and below", { [0] = "zero", [-1] = "minus one", 1, 2 })
      add("only 2..5", { [2] = 2, [3] = 3, [4] = 4, [5] = 5 })
      local big = {}
      for i = 1, 1000 do big[i] = i end
      big.x = "x"
      add("1000 values and a key", big)
      add("float keys", { [1.5] = "a", [2 ^ 53] = "b", 10, 20 })
      return list
    end

    for _, case in ipairs(tables()) do
      it("round-trips " .. case.name .. " with the same keys and values",
         function()
        same_pairs(case.t, mc.deserialize(mc.serialize(case.t)), "serialize")
        same_pairs(case.t, mc.structuredClone(case.t), "structuredClone")
        local ch = mc.MessageChannel()
        ch.port1:postMessage(case.t)
        same_pairs(case.t, ch.port2:receive(0).data, "postMessage")
        ch.port1:close()
      end)
    end

    it("writes a sequence made by a constructor as its array part", function()
      -- version 1, TABLE narr = 2, nhash = 0, then SMALLINT 10 and 20
      assert.equal("\1\6\2\0\0\0\0\0\0\0\138\148", mc.serialize({ 10, 20 }))
      -- TABLE narr = 1, nhash = 1, SMALLINT 10, then the pair x = 20
      assert.equal("\1\6\1\0\0\0\1\0\0\0\138\33x\148",
                   mc.serialize({ 10, x = 20 }))
    end)

    it("keeps # and ipairs of a sequence", function()
      local sequences = { ["filled from its end"] = true,
        ["records with 1..3 added later"] = true,
        ["keys 0 and below"] = true, ["1000 values and a key"] = true }
      for _, case in ipairs(tables()) do
        local t = case.t
        if sequences[case.name] then
          local c = mc.deserialize(mc.serialize(t))
          assert.equal(#t, #c, case.name)
          local n = 0
          for i, v in ipairs(c) do
            n = i
            assert.equal(t[i], v, case.name)
          end
          assert.equal(#t, n, case.name)
        end
      end
    end)
  end)

  describe("references among many objects", function()
    -- 40 objects (tables, some with a registered metatable, and Buffers),
    -- each table pointing at the one before it (the first at the last: a
    -- cycle through all) and at the first; the root holds them all.
    local function build(n)
      local objs = {}
      for i = 1, n do
        objs[i] = i % 7 == 0 and mc.Buffer(tostring(i))
                  or (i % 5 == 0 and thing({ i = i }) or { i = i })
      end
      for i = 1, n do
        if type(objs[i]) == "table" then
          objs[i].prev = objs[i % n == 1 and n or i - 1]
          objs[i].first = objs[1]
          objs[i][objs[(i * 3) % n + 1]] = i  -- objects as keys too
        end
      end
      return objs
    end

    local function check(objs, copy, n)
      for i = 1, n do
        local o, c = objs[i], copy[i]
        assert.is_not_nil(c, "object " .. i)
        assert.are_not.equal(o, c)
        if type(o) == "table" then
          assert.equal(i, c.i)
          assert.equal(copy[i % n == 1 and n or i - 1], c.prev)
          assert.equal(copy[1], c.first)
          assert.equal(i, c[copy[(i * 3) % n + 1]])
          assert.equal(getmetatable(o), getmetatable(c))
        else
          assert.equal(o:sub(1), c:sub(1))
        end
      end
    end

    for _, n in ipairs { 15, 16, 17, 40 } do
      it(n .. " objects through serialize and deserialize", function()
        local objs = build(n)
        check(objs, mc.deserialize(mc.serialize(objs)), n)
      end)

      it(n .. " objects through structuredClone", function()
        local objs = build(n)
        check(objs, mc.structuredClone(objs), n)
      end)

      it(n .. " objects through postMessage", function()
        local objs = build(n)
        local ch = mc.MessageChannel()
        ch.port1:postMessage(objs)
        check(objs, ch.port2:receive(0).data, n)
        ch.port1:close()
      end)
    end
  end)

  describe("mc.deserialize", function()
    it("round-trips every sample", function()
      for _, sample in ipairs(samples()) do
        local ok, err = helper.same_graph(sample.value,
          mc.deserialize(mc.serialize(sample.value)))
        assert(ok, sample.name .. ": " .. tostring(err))
      end
    end)

    it("decodes the same string into a new value each time", function()
      local s = mc.serialize({ list = { 1, 2 } })
      local a, b = mc.deserialize(s), mc.deserialize(s)
      assert.is_false(rawequal(a, b))
      assert.is_false(rawequal(a.list, b.list))
      assert(helper.same_graph(a, b))
    end)

    it("rejects an empty string with a DataCloneError at byte N", function()
      local err = error_of(mc.deserialize, "")
      assert.truthy(err:find("DataCloneError:", 1, true), err)
      assert.truthy(err:find("at byte %d+"), err)
    end)

    it("rejects a format version other than 1 and 2", function()
      for _, sample in ipairs(samples()) do
        local body = mc.serialize(sample.value):sub(2)
        for _, version in ipairs({ 0, 3, 127, 255 }) do
          local problem = decode_error_problem(char(version) .. body)
          assert.is_nil(problem, sample.name .. ", version " .. version)
        end
      end
      assert.is_nil(decode_error_problem("\0"))
      assert.is_nil(decode_error_problem("\2"))
      assert.is_nil(decode_error_problem("\3"))
    end)

    it("rejects trailing bytes after a complete value", function()
      for _, sample in ipairs(samples()) do
        local s = mc.serialize(sample.value)
        for _, tail in ipairs({ "\0", "\1", "x", "\255\255", s, s:sub(2) }) do
          local problem = decode_error_problem(s .. tail)
          assert.is_nil(problem, sample.name .. " + " .. hex(tail))
        end
      end
    end)

    it("rejects a non-string argument with a bad argument error", function()
      for _, v in ipairs({ 1, 0, true, false, {}, print }) do
        local err = error_of(mc.deserialize, v)
        assert.truthy(err:find("bad argument", 1, true), err)
      end
      local err = error_of(mc.deserialize, nil)
      assert.truthy(err:find("bad argument", 1, true), err)
      err = error_of(mc.deserialize)
      assert.truthy(err:find("bad argument", 1, true), err)
    end)

    it("rejects every truncation of a valid encoding", function()
      for _, sample in ipairs(samples()) do
        local s = mc.serialize(sample.value)
        no_problem(decode_error_problem,
          generate(#s, function(k) return s:sub(1, k - 1) end), sample.name)
      end
    end)

    it("survives every single-byte change of a valid encoding", function()
      for _, sample in ipairs(samples()) do
        local s = mc.serialize(sample.value)
        -- input k changes byte pos to (old + d) % 256, d = 1..255
        no_problem(decode_problem, generate(#s * 255, function(k)
          local pos, d = math.floor((k - 1) / 255) + 1, (k - 1) % 255 + 1
          local b = (s:byte(pos) + d) % 256
          return s:sub(1, pos - 1) .. char(b) .. s:sub(pos + 1)
        end), sample.name)
      end
    end)

    it("survives random bytes after a prefix of a valid encoding", function()
      local g = helper.prng(SEED)
      for _, sample in ipairs(samples()) do
        local s = mc.serialize(sample.value)
        no_problem(decode_problem, generate(500, function()
          return s:sub(1, g.int(1, #s)) .. g.bytes(g.int(0, 16))
        end), sample.name)
      end
    end)

    it("survives random strings made of the bytes valid encodings use", function()
      local g = helper.prng(SEED + 1)
      local parts = {}
      for _, sample in ipairs(samples()) do parts[#parts + 1] = mc.serialize(sample.value) end
      local alphabet = table.concat(parts)
      no_problem(decode_problem, generate(5000, function()
        return "\1" .. g.bytes(g.int(0, 64), alphabet)
      end), "alphabet")
    end)

    it("survives 20,000 random byte strings #slow", function()
      local g = helper.prng(SEED + 2)
      no_problem(decode_problem, generate(20000, function()
        return g.bytes(g.int(0, 64))
      end), "random")
    end)

    it("survives 20,000 random strings that start with the version byte #slow", function()
      local g = helper.prng(SEED + 3)
      no_problem(decode_problem, generate(20000, function()
        return "\1" .. g.bytes(g.int(0, 64))
      end), "random after version byte")
    end)

    it("rejects a truncated 200,000-level encoding #slow", function()
      local t = helper.chain(200000)
      local s = mc.serialize(t)
      assert(helper.same_chain(t, mc.deserialize(s)))
      assert.is_nil(decode_error_problem(s:sub(1, math.floor(#s / 2))))
      assert.is_nil(decode_error_problem(s:sub(1, -2)))
    end)
  end)
end)
