-- format.lua: a second reader of the clone format, written from
-- docs/FORMAT.md alone, plainly and without the decoder's bounds on work.
-- The decoder's fuzz target holds mc.deserialize to it: both accept the
-- same messages, and decode them to the same graph.

local M = {}

local error, math_ult, rawset, setmetatable = error, math.ult, rawset, setmetatable
local unpack = string.unpack

-- Decodes message s. metatables maps the registered names to their
-- metatables; buffer(bytes) makes a Buffer. Raises a string saying what
-- is wrong when s is not a message.
function M.decode(s, metatables, buffer)
  local n = #s
  local pos = 1           -- of the next byte
  local claimed = 0       -- table slots announced so far
  local objects = {}      -- by id + 1
  local bodies = {}       -- { table, narr, nhash }, in id order
  local later = {}        -- table, metatable, ...: set once all is read
  local version

  local function fail(what) error(what .. " at byte " .. (pos - 1), 0) end
  local function need(k)
    if n - pos + 1 < k then fail("truncated") end
  end
  local function byte()
    need(1)
    pos = pos + 1
    return s:byte(pos - 1)
  end
  -- Unsigned LEB128, at most 10 bytes, shortest form, below 2^64 (Lua's
  -- integers hold the bits; compare them with math.ult).
  local function varint()
    local v, shift = 0, 0
    while true do
      need(1)
      local c = s:byte(pos)
      if shift == 63 and c > 1 then fail("varint overflow") end
      if c == 0 and shift > 0 then fail("overlong varint") end
      pos = pos + 1
      v = v | (c & 0x7f) << shift
      if c < 0x80 then return v end
      shift = shift + 7
    end
  end
  local function bytes(k)
    need(k)
    pos = pos + k
    return s:sub(pos - k, pos - 1)
  end
  local function length()
    local k = varint()
    if math_ult(n - pos + 1, k) then fail("length beyond the input") end
    return k
  end
  local function u32()
    return (unpack("<I4", bytes(4)))
  end

  local function value()
    local tag = byte()
    if tag >= 0x80 then return tag - 0x80 end
    if tag >= 0x20 and tag <= 0x3f then return bytes(tag - 0x20) end
    if tag == 0x00 then return nil
    elseif tag == 0x01 then return false
    elseif tag == 0x02 then return true
    elseif tag == 0x03 then
      local z = varint()
      return z >> 1 ~ -(z & 1)
    elseif tag == 0x04 then return (unpack("<d", bytes(8)))
    elseif tag == 0x05 then return bytes(length())
    elseif tag == 0x06 or tag == 0x07 then
      local narr, nhash = u32(), u32()
      claimed = claimed + narr + 2 * nhash
      if claimed > n then fail("table sizes beyond the input") end
      local t = {}
      if tag == 0x07 then
        local mt = metatables[bytes(length())]
        if mt == nil then fail("unknown metatable name") end
        later[#later + 1] = t
        later[#later + 1] = mt
      end
      objects[#objects + 1] = t
      bodies[#bodies + 1] = { t, narr, nhash }
      return t
    elseif tag == 0x08 then
      local id = varint()
      if not math_ult(id, #objects) then fail("reference to no object") end
      return objects[id + 1]
    elseif tag == 0x09 then
      local b = buffer(bytes(length()))
      objects[#objects + 1] = b
      return b
    elseif tag == 0x0a then
      fail("TRANSFER outside a transfer")
    elseif tag == 0x40 and version == 2 then
      local str = bytes(length())
      objects[#objects + 1] = str
      return str
    end
    pos = pos - 1
    fail("unknown tag")
  end

  if n == 0 then fail("empty") end
  version = byte()
  if version ~= 1 and version ~= 2 then fail("unknown version") end
  local root = value()
  local i = 1
  while bodies[i] do  -- bodies found while reading bodies join the end
    local t, narr, nhash = bodies[i][1], bodies[i][2], bodies[i][3]
    for j = 1, narr do rawset(t, j, value()) end
    for _ = 1, nhash do
      local k = value()
      if k == nil or k ~= k then fail("nil or NaN key") end
      rawset(t, k, value())
    end
    i = i + 1
  end
  if pos ~= n + 1 then fail("bytes after the value") end
  for j = 1, #later, 2 do setmetatable(later[j], later[j + 1]) end
  return root
end

return M
