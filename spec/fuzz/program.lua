-- program.lua: the inputs of the clone fuzz target are programs for a
-- small stack machine that builds a Lua value; this runs one. Any byte
-- string is a program (an opcode is a byte modulo the number of opcodes,
-- and an operand past the end reads as 0), so whatever the fuzzer makes
-- builds something: tables nested and shared, cycles, tables as keys,
-- numbers of both subtypes at their edges, short and long strings,
-- Buffers, tables with registered metatables (and with one that is not),
-- and things no clone takes: functions, coroutines, foreign userdata,
-- detached Buffers, closed ports, ports outside a transfer list.
--
-- The value is the bottom of the stack when the program ends.

local M = {}

local error, ipairs, rawequal, rawlen, rawset, setmetatable, type =
  error, ipairs, rawequal, rawlen, rawset, setmetatable, type
local char, rep, unpack = string.char, string.rep, string.unpack
local create = coroutine.create
local force_metatable = debug.setmetatable
local stdout = io.stdout

-- The opcodes, numbered from 0 in this order.
M.ops = {
  "nil", "false", "true",
  "byte",      -- an integer from one byte, -64..191
  "int",       -- an integer from 8 bytes, little-endian
  "float",     -- a float from 8 bytes, little-endian
  "special",   -- a number at an edge, from the list below
  "string",    -- a string of up to 47 bytes of the program
  "long",      -- a string of up to 65535 copies of one byte
  "table",     -- a new table
  "meta",      -- a new table with one of the metatables below
  "buffer",    -- a Buffer holding up to 47 bytes of the program
  "zeros",     -- a Buffer of up to 65535 zero bytes
  "ref",       -- an object made before, again
  "set",       -- t k v -> t, with t[k] = v
  "append",    -- t v -> t, with v at #t + 1
  "unset",     -- t k -> t, with t[k] = nil
  "dup", "pop", "swap",
  "self",      -- t -> t, with t.self = t
  "nest",      -- v -> a chain of tables, v in the deepest (see bulk)
  "array",     -- v -> an array of v, or of 1..n (see bulk)
  "keys",      -- t -> t with up to 256 more keys of one kind
  "setmeta",   -- t -> t, with one of the metatables below
  "bad",       -- something no clone takes
  "port",      -- a MessagePort
  "transfer",  -- flags for the transfer list (see clone.lua)
  "collide",   -- t -> t with 2^k integer keys, k up to 10, that share
               -- their main position in a hash part of 2^k nodes
}
M.op = {}
for i, name in ipairs(M.ops) do M.op[name] = i - 1 end

local SPECIAL = {
  math.mininteger, math.maxinteger, math.mininteger + 1, -1, 0, 127, 128,
  -0.0, 0.0, 0 / 0, -(0 / 0), 1 / 0, -1 / 0, 0.5, 2 ^ 53, 2 ^ 53 + 1,
  2 ^ 63, -2 ^ 63, 2 ^ 31, 2 ^ 32, 1e308, 5e-324, 3.0, -3.0,
}

local function refuse() error("a metamethod of the value ran", 0) end

-- Registered under these names: a clone keeps them. The strict one
-- raises from every metamethod a careless copy could call.
M.registered = {
  { name = "fuzz.plain", mt = {} },
  { name = "fuzz.strict", mt = {
      __index = refuse, __newindex = refuse, __len = refuse,
      __pairs = refuse, __eq = refuse, __call = refuse, __lt = refuse,
      __concat = refuse, __tostring = refuse, __close = refuse,
      __gc = function() end, __metatable = "locked",
  } },
  { name = "fuzz." .. ("long name "):rep(16), mt = {} },
}
-- Not registered: a clone drops it.
M.unregistered = { __index = refuse, __newindex = refuse, __len = refuse,
                   __pairs = refuse, __eq = refuse }

local METATABLES = {}
for i, r in ipairs(M.registered) do METATABLES[i] = r.mt end
METATABLES[#METATABLES + 1] = M.unregistered

-- mc.register for every registered metatable, once per Lua state.
function M.register(mc)
  for _, r in ipairs(M.registered) do mc.register(r.name, r.mt) end
end

-- Whether a clone of a table with metatable mt keeps it.
function M.keeps(mt)
  for _, r in ipairs(M.registered) do
    if rawequal(r.mt, mt) then return mt end
  end
  return nil
end

local MAX_STACK = 256
local MAX_BYTES = 1 << 20     -- of strings and Buffers made
local MAX_OBJECTS = 1 << 17   -- tables made and entries set in bulk

local function noop() end

-- How many tables a nest makes or an array holds, from a 16-bit
-- operand: 1 to 256 for most, up to 1020 for 0xff01..0xffff. Deeper is
-- no other code (structuredClone queues tables below depth 64), and
-- costs the fuzzer time; the specs clone 10000 levels.
local function bulk(k)
  if k > 0xff00 then return (k & 0xff) * 4 end
  return k % 256 + 1
end

-- Runs program p with module mc. Returns the value, the transfer flags
-- (the "transfer" operands, or-ed) and a table to keep while the value is
-- used: it holds the partners of its ports, which would close them if
-- they were collected.
function M.run(p, mc)
  local pos, n = 1, #p
  local stack, top = {}, 0
  local objects = {}
  local bytes, count = 0, 0
  local flags = 0
  local keep = {}

  local function byte()
    local b = p:byte(pos) or 0
    pos = pos + 1
    return b
  end
  local function take(k)
    local s = p:sub(pos, pos + k - 1)
    pos = pos + k
    return s .. rep("\0", k - #s)
  end
  local function push(v)
    if top < MAX_STACK then
      top = top + 1
      stack[top] = v
    end
  end
  local function pop()
    if top == 0 then return nil end
    local v = stack[top]
    stack[top], top = nil, top - 1
    return v
  end
  local function object(v)
    objects[#objects + 1] = v
    push(v)
  end
  local function afford(b, o)
    if bytes + b > MAX_BYTES or count + o > MAX_OBJECTS then return false end
    bytes, count = bytes + b, count + o
    return true
  end
  local function valid_key(k)
    return k ~= nil and k == k  -- not nil, not NaN
  end

  while pos <= n do
    local op = M.ops[byte() % #M.ops + 1]
    if op == "nil" then push(nil)
    elseif op == "false" then push(false)
    elseif op == "true" then push(true)
    elseif op == "byte" then push(byte() - 64)
    elseif op == "int" then push((unpack("<i8", take(8))))
    elseif op == "float" then push((unpack("<d", take(8))))
    elseif op == "special" then push(SPECIAL[byte() % #SPECIAL + 1])
    elseif op == "string" then push(take(byte() % 48))
    elseif op == "long" then
      local k, c = byte() << 8 | byte(), byte()
      if afford(k, 0) then push(rep(char(c), k)) end
    elseif op == "table" then
      if afford(0, 1) then object({}) end
    elseif op == "meta" then
      local mt = METATABLES[byte() % #METATABLES + 1]
      if afford(0, 1) then object(setmetatable({}, mt)) end
    elseif op == "buffer" then
      local s = take(byte() % 48)
      if afford(#s, 1) then object(mc.Buffer(s)) end
    elseif op == "zeros" then
      local k = byte() << 8 | byte()
      if afford(k, 1) then object(mc.Buffer(k)) end
    elseif op == "ref" then
      local i = byte()
      if #objects > 0 then push(objects[i % #objects + 1]) end
    elseif op == "set" then
      local v, k = pop(), pop()
      local t = stack[top]
      if type(t) == "table" and valid_key(k) then rawset(t, k, v) end
    elseif op == "append" then
      local v = pop()
      local t = stack[top]
      if type(t) == "table" and v ~= nil then rawset(t, rawlen(t) + 1, v) end
    elseif op == "unset" then
      local k = pop()
      local t = stack[top]
      if type(t) == "table" and valid_key(k) then rawset(t, k, nil) end
    elseif op == "dup" then push(stack[top])
    elseif op == "pop" then pop()
    elseif op == "swap" then
      if top >= 2 then stack[top], stack[top - 1] = stack[top - 1], stack[top] end
    elseif op == "self" then
      local t = stack[top]
      if type(t) == "table" then rawset(t, "self", t) end
    elseif op == "nest" then
      local k = bulk(byte() << 8 | byte())
      local v = pop()
      if afford(0, k) then
        local outer = {}
        local t = outer
        for _ = 2, k do
          local inner = {}
          t[1] = inner
          t = inner
        end
        t[1] = v
        object(outer)
      end
    elseif op == "array" then
      local k = bulk(byte() << 8 | byte()) - 1
      local v = pop()
      if afford(0, k + 1) then
        local t = {}
        for i = 1, k do t[i] = v == nil and i or v end
        object(t)
      end
    elseif op == "keys" then
      local k, kind, step = byte() + 1, byte() % 5, byte() + 2
      local t = stack[top]
      if type(t) == "table" and afford(0, k) then
        for i = 1, k do
          if kind == 0 then rawset(t, "k" .. i, i)
          elseif kind == 1 then rawset(t, i * step, i)       -- sparse
          elseif kind == 2 then rawset(t, -i * step, i)      -- negative
          elseif kind == 3 then rawset(t, i + 0.5, i)        -- float keys
          else rawset(t, i * step * 1.0, i) end              -- integral floats
        end
      end
    elseif op == "setmeta" then
      local mt = METATABLES[byte() % #METATABLES + 1]
      local t = stack[top]
      if type(t) == "table" then force_metatable(t, mt) end  -- even "locked"
    elseif op == "bad" then
      local kind = byte() % 5
      if kind == 0 then push(noop)
      elseif kind == 1 then push(create(noop))
      elseif kind == 2 then push(stdout)
      elseif kind == 3 then
        local b = mc.Buffer("moved away")
        mc.structuredClone(b, { transfer = { b } })
        push(b)
      else
        local port = mc.MessageChannel().port1
        port:close()
        push(port)
      end
    elseif op == "port" then
      if afford(0, 1) then
        local channel = mc.MessageChannel()
        keep[#keep + 1] = channel
        object(channel.port1)
      end
    elseif op == "transfer" then
      flags = flags | byte()
    elseif op == "collide" then
      local k = 1 << byte() % 11
      local t = stack[top]
      if type(t) == "table" and afford(0, k) then
        for i = 1, k do rawset(t, i * (k - 1), i) end  -- all 0 mod k - 1
      end
    end
  end
  return stack[1], flags, keep
end

return M
