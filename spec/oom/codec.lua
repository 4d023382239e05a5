-- mc.serialize, mc.deserialize and mc.Buffer under allocation failure.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

-- mc.serialize of what make() returns; `version`: the format version the
-- bytes must have, or nil.
local function serialize_case(name, make, version)
  return {
    name = name,
    setup = function()
      return { v = make() }
    end,
    action = function(c)
      return mc.serialize(c.v)
    end,
    check = function(c, ok, r)
      if ok then
        H.expect(type(r) == "string"
                 and (version == nil or r:byte(1) == version)
                 and H.same(mc.deserialize(r), c.v),
                 "the bytes do not decode to the value")
      end
      H.expect(H.same(mc.deserialize(mc.serialize(c.v)), c.v),
               "a later round trip differs")
    end,
  }
end

cases[#cases + 1] = serialize_case("serialize", function() return H.sample(30) end)

-- An array of records: version 2, its keys shared (STRDEF, REF).
local function records()
  local t = {}
  for i = 1, 24 do t[i] = { rid = i, label = "r" .. i, nested = { kk = i } } end
  return t
end

cases[#cases + 1] = serialize_case("serialize-shared", records, 2)

cases[#cases + 1] = {
  name = "deserialize-shared",
  setup = function()
    local v = records()
    return { v = v, s = mc.serialize(v) }
  end,
  action = function(c)
    return mc.deserialize(c.s)
  end,
  check = function(c, ok, r)
    if ok then
      H.expect(H.same(r, c.v), "the value decoded differs")
    end
    H.expect(H.same(mc.deserialize(c.s), c.v), "a later decode differs")
  end,
}

cases[#cases + 1] = {
  name = "deserialize",
  setup = function()
    local v = H.sample(30)
    v.buf = mc.Buffer("in the bytes")
    local s = mc.serialize(v)
    v.buf = nil
    return { v = v, s = s }
  end,
  action = function(c)
    return mc.deserialize(c.s)
  end,
  check = function(c, ok, r)
    if ok then
      H.expect(r.buf:sub() == "in the bytes", "the Buffer decoded as %q",
               r.buf:sub())
      r.buf = nil
      H.expect(H.same(r, c.v), "the value decoded differs")
    end
    H.expect(mc.deserialize(c.s).buf:sub() == "in the bytes",
             "a later decode differs")
  end,
}

cases[#cases + 1] = {
  name = "registered",
  setup = function()
    local mt = {}
    mc.register("oom.Codec", mt)
    local s = mc.serialize({ setmetatable({ 1 }, mt) })
    return { mt = mt, s = s }
  end,
  action = function(c)
    return mc.deserialize(c.s)
  end,
  check = function(c, ok, r)
    if ok then
      H.expect(getmetatable(r[1]) == c.mt, "the metatable was lost")
    end
  end,
}

-- Bytes that do not decode: the DataCloneError gives the offset.
cases[#cases + 1] = {
  name = "hostile",
  raises = "DataCloneError:",
  setup = function()
    local s = mc.serialize({ 1, 2, { 3, "four" } })
    return { s = s:sub(1, #s - 2) }
  end,
  action = function(c)
    return mc.deserialize(c.s)
  end,
  check = function(_, ok, r)
    H.expect(not ok, "truncated bytes decoded")
    H.expect(r:find("DataCloneError:", 1, true)
             or r:find("not enough memory", 1, true), "the error is %s", r)
  end,
}

cases[#cases + 1] = {
  name = "buffer",
  setup = function()
    return { s = string.rep("b", 64), buf = false }
  end,
  action = function(c)
    c.buf = mc.Buffer(c.s)
    c.buf:write(2, "xyz")
    return c.buf:sub(1, 5)
  end,
  check = function(c, ok, r)
    if ok then
      H.expect(r == "bxyzb" and #c.buf == 64, "the Buffer holds %q", r)
    end
  end,
}

return cases
