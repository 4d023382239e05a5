-- deserialize.lua: the check of the decoder's fuzz target (see
-- harness.c). mc.deserialize either returns a value or raises
-- "DataCloneError: <reason> at byte <offset>", the offset inside the
-- input. It accepts what the plain reader of docs/FORMAT.md (format.lua)
-- accepts, and decodes it to the same graph (same.lua). What it returns
-- is an ordinary value: mc.serialize encodes it, the bytes decode to a
-- copy of it, and mc.structuredClone copies it.
--
-- The copies are compared as graphs, not as the bytes of their encodings:
-- pairs are written in `next` order, which two equal tables need not
-- share (table keys hash by address, and a message may announce other
-- sizes than the writer would).
--
-- The codec may refuse a table whose keys were chosen to collide in Lua's
-- hash ("too many colliding keys"): that is a DataCloneError a message
-- docs/FORMAT.md allows may get, and a decoded value may get again when
-- it is encoded.

local mc = require "messagechannel"
local format = require "format"
local program = require "program"
local same = require "same"

local error, ipairs, pcall, rawequal, tonumber, tostring, type =
  error, ipairs, pcall, rawequal, tonumber, tostring, type
local getmetatable = debug.getmetatable

program.register(mc)  -- the names the seed corpus uses
local metatables = {}
for _, r in ipairs(program.registered) do metatables[r.name] = r.mt end

local buffer_mt = getmetatable(mc.Buffer(0))

local options = {
  userdata = function(x, y)
    if not rawequal(getmetatable(x), buffer_mt)
       or not rawequal(getmetatable(y), buffer_mt) then
      return nil, "a userdata that is not a Buffer"
    end
    if x.detached or y.detached then return nil, "a detached Buffer" end
    return x:sub() == y:sub() or nil, "a Buffer's bytes changed"
  end,
}

local function compare(what, v, w)
  local ok, why = same.same(v, w, options)
  if ok == false then error(what .. " is not a copy: " .. why, 0) end
end

local function colliding(err)
  return type(err) == "string"
    and err:find("DataCloneError: too many colliding keys", 1, true) ~= nil
end

return function(input)
  local ok, v = pcall(mc.deserialize, input)
  local valid, want = pcall(format.decode, input, metatables, mc.Buffer)
  if not ok then
    local at = type(v) == "string"
      and v:match("^DataCloneError: .* at byte (%d+)$")
    if not at then
      error("mc.deserialize raised something else than DataCloneError: "
            .. tostring(v), 0)
    end
    if tonumber(at) > #input then
      error("mc.deserialize points past the input: " .. v, 0)
    end
    if valid and not colliding(v) then
      error("mc.deserialize refused a message docs/FORMAT.md allows: " .. v, 0)
    end
    return
  end
  if not valid then
    error("mc.deserialize took a message docs/FORMAT.md refuses ("
          .. tostring(want) .. ")", 0)
  end
  compare("mc.deserialize(input)", want, v)

  local s
  ok, s = pcall(mc.serialize, v)
  if not ok and not colliding(s) then
    error("mc.serialize refused a decoded value: " .. tostring(s), 0)
  end
  if ok then compare("mc.deserialize(mc.serialize(v))", v, mc.deserialize(s)) end
  local c
  ok, c = pcall(mc.structuredClone, v)
  if not ok and not colliding(c) then
    error("mc.structuredClone refused a decoded value: " .. tostring(c), 0)
  end
  if ok then compare("mc.structuredClone(v)", v, c) end
end
