-- clone.lua: the check of the clone fuzz target (see harness.c). The
-- input is a program (program.lua) that builds a value v. Then:
--   mc.deserialize(mc.serialize(v)) and mc.structuredClone(v) are copies
--   of v (same.lua); when v holds something no clone takes (a port among
--   them), both raise DataCloneError instead.
--   mc.structuredClone(v, {transfer = list}), the list holding v's
--   Buffers and ports, is a copy in which they are new objects with the
--   old contents, the old ones detached; when v or the list is wrong, it
--   raises DataCloneError and every entry stays as it was.
-- The program's transfer flags spoil the list: bit 0 repeats an entry,
-- bit 1 adds a table, bit 2 adds a Buffer v does not hold (allowed: it is
-- detached too), bit 3 leaves the ports out.
--
-- A table whose keys collide in Lua's hash may be refused with "too many
-- colliding keys", as a DataCloneError, like a value no clone takes.

local mc = require "messagechannel"
local program = require "program"
local same = require "same"

local error, ipairs, next, pcall, rawequal, tostring, type =
  error, ipairs, next, pcall, rawequal, tostring, type
local getmetatable = debug.getmetatable

program.register(mc)

local buffer_mt = getmetatable(mc.Buffer(0))
local port_mt = getmetatable(mc.MessageChannel().port1)

local function is_open(port)
  return tostring(port) ~= "MessagePort (closed)"
end

-- What v holds beyond tables and plain values: its attached Buffers and
-- open ports, each once, and the first thing found that no clone takes.
local function survey(v)
  local buffers, ports, bad = {}, {}, nil
  local seen, todo = {}, { v }
  while #todo > 0 do
    local x = todo[#todo]
    todo[#todo] = nil
    local t = type(x)
    if (t == "table" or t == "userdata" or t == "function" or t == "thread")
       and not seen[x] then
      seen[x] = true
      local mt = getmetatable(x)
      if t == "table" then
        for k, e in next, x do
          todo[#todo + 1] = k
          todo[#todo + 1] = e
        end
      elseif rawequal(mt, buffer_mt) and not x.detached then
        buffers[#buffers + 1] = x
      elseif rawequal(mt, port_mt) and is_open(x) then
        ports[#ports + 1] = x
      else
        bad = bad or x
      end
    end
  end
  return buffers, ports, bad
end

local function is_clone_error(err)
  return type(err) == "string" and err:find("DataCloneError:", 1, true) ~= nil
end

local function colliding(err)
  return type(err) == "string"
    and err:find("DataCloneError: too many colliding keys", 1, true) ~= nil
end

-- Checks how a call went: it must succeed unless it had a reason to fail,
-- and then fail with DataCloneError.
local function expect(what, ok, err, failing)
  if ok and failing then
    error(what .. " took " .. tostring(failing) .. ", which no clone takes", 0)
  elseif not ok and not is_clone_error(err) then
    error(what .. " failed without DataCloneError: " .. tostring(err), 0)
  elseif not ok and not failing and not colliding(err) then
    error(what .. " failed on a value it should copy: " .. tostring(err), 0)
  end
end

local function compare(what, v, w, options)
  local ok, why = same.same(v, w, options)
  if ok == false then error(what .. " is not a copy: " .. why, 0) end
end

return function(input)
  local v, flags, keep = program.run(input, mc)
  local buffers, ports, bad = survey(v)
  local bytes = {}  -- each Buffer's bytes now; a transfer detaches it
  for _, b in ipairs(buffers) do bytes[b] = b:sub() end
  local options = {
    metatable = program.keeps,
    userdata = function(x, y)
      local mt = getmetatable(x)
      if not rawequal(getmetatable(y), mt) then
        return nil, "a userdata copied as another type"
      elseif rawequal(mt, buffer_mt) then
        if y.detached then return nil, "a copied Buffer arrived detached" end
        if y:sub() ~= bytes[x] then return nil, "a Buffer's bytes changed" end
        return true
      elseif rawequal(mt, port_mt) then
        return is_open(y) or nil, "a transferred port arrived closed"
      end
      return nil, "a userdata copied that no clone takes"
    end,
  }

  local ok, s = pcall(mc.serialize, v)
  expect("mc.serialize", ok, s, bad or ports[1])
  if ok then
    local dok, w = pcall(mc.deserialize, s)
    if not dok then
      error("mc.deserialize failed on what mc.serialize wrote: " .. tostring(w), 0)
    end
    compare("mc.deserialize(mc.serialize(v))", v, w, options)
  end

  local w
  ok, w = pcall(mc.structuredClone, v)
  expect("mc.structuredClone", ok, w, bad or ports[1])
  if ok then compare("mc.structuredClone(v)", v, w, options) end

  -- The transfer list, spoiled as the flags say.
  local list, failing = {}, bad
  for _, b in ipairs(buffers) do list[#list + 1] = b end
  if flags & 8 == 0 then
    for _, p in ipairs(ports) do list[#list + 1] = p end
  elseif #ports > 0 then
    failing = failing or ports[1]
  end
  if flags & 1 ~= 0 and #list > 0 then
    list[#list + 1] = list[1]
    failing = failing or "an entry twice"
  end
  if flags & 2 ~= 0 then
    list[#list + 1] = {}
    failing = failing or "a table in the transfer list"
  end
  if flags & 4 ~= 0 then
    local extra = mc.Buffer("not in the value")
    bytes[extra] = extra:sub()
    list[#list + 1] = extra
  end

  ok, w = pcall(mc.structuredClone, v, { transfer = list })
  expect("mc.structuredClone with a transfer list", ok, w, failing)
  for _, x in ipairs(list) do
    if rawequal(getmetatable(x), buffer_mt) then
      if x.detached ~= ok then
        error(ok and "a transferred Buffer was not detached"
                 or "a failed transfer detached a Buffer", 0)
      end
      if not ok and x:sub() ~= bytes[x] then
        error("a failed transfer changed a Buffer", 0)
      end
    elseif rawequal(getmetatable(x), port_mt) and is_open(x) == ok then
      error(ok and "a transferred port is still open"
               or "a failed transfer closed a port", 0)
    end
  end
  if ok then
    compare("mc.structuredClone(v, {transfer = ...})", v, w, options)
    if #list > 0 then  -- its entries are gone now
      local again, err = pcall(mc.structuredClone, v, { transfer = list })
      expect("a second transfer of the same list", again, err, "detached entries")
    end
  end
  -- Closed and moved ports leave events in the run queue; dispatched
  -- now, so that nothing of this input outlives it.
  mc.step()
  return keep
end
