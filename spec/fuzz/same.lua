-- same.lua: whether a value is a faithful copy of another, the oracle of
-- the fuzz targets. The copy must have the original's graph object for
-- object (tables and userdata): a shared reference, a cycle or a table
-- used as a key comes out as one object, and no object of the copy is
-- one of the original's. Numbers keep their subtype and their bits.
-- Everything is read raw: no metamethod runs.
--
-- Objects are paired as they are reached. A table key reached no other
-- way has no partner yet, so it is tried against each unpaired key of the
-- copy, backing out of a choice that fails later. A search longer than
-- the budget gives up and says so rather than take the fuzzer's time.

local M = {}

local error, next, pcall, rawequal, rawget, tostring, type =
  error, next, pcall, rawequal, rawget, tostring, type
local getmetatable = debug.getmetatable
local mtype, pack = math.type, string.pack

local GAVE_UP = {}
local MAX_CHOICES = 2000  -- nested choices followed before giving up

local function is_object(v)
  local t = type(v)
  return t == "table" or t == "userdata"
end

-- 3 is not 3.0, -0.0 is not 0.0, and a NaN is the NaN with its bits.
local function same_scalar(x, y)
  if type(x) ~= type(y) then return false end
  if type(x) == "number" then
    if mtype(x) ~= mtype(y) then return false end
    if mtype(x) == "float" then return pack("<d", x) == pack("<d", y) end
  end
  return x == y
end

-- What a report says of a value; an object's own __tostring may raise.
local function describe(v)
  if is_object(v) then return type(v) end
  if type(v) == "string" then return ("%q"):format(v:sub(1, 40)) end
  return (mtype(v) or type(v)) .. " " .. tostring(v)
end

local function copy(t)
  local c = {}
  for i = 1, #t do c[i] = t[i] end
  return c
end

local function identity(mt) return mt end

-- Whether b is a copy of a. Options:
--   metatable(mt)  the metatable a copy of a table with mt must have
--                  (default: mt itself)
--   userdata(x, y) whether userdata y is a good copy of x; nil, reason
--                  when not (default: no userdata may appear)
--   budget         steps before giving up (default 10^6)
-- Returns true; or false and the first difference found; or nil,
-- "gave up".
function M.same(a, b, options)
  options = options or {}
  local metatable = options.metatable or identity
  local userdata = options.userdata
    or function() return nil, "unexpected userdata" end
  local steps = options.budget or 1e6
  local map, rmap, log = {}, {}, {}
  local why

  local function fail(reason)
    why = reason
    return false
  end

  -- y is found where x is: pair them, or check they are paired.
  local function bind(x, y, st)
    if not is_object(x) then
      return same_scalar(x, y)
        or fail(describe(x) .. " copied as " .. describe(y))
    end
    if type(y) ~= type(x) then
      return fail(type(x) .. " copied as " .. type(y))
    end
    local m = map[x]
    if m ~= nil then
      return rawequal(m, y) or fail("one " .. type(x) .. " became two")
    end
    if rmap[y] ~= nil then return fail("two objects became one") end
    if rawequal(x, y) then return fail("the copy holds an original object") end
    map[x], rmap[y] = y, x
    log[#log + 1] = x
    st.work[#st.work + 1] = x
    return true
  end

  local function undo(mark)
    for i = #log, mark + 1, -1 do
      local x = log[i]
      rmap[map[x]], map[x], log[i] = nil, nil, nil
    end
  end

  local function check_table(x, y, st)
    if not rawequal(getmetatable(y), metatable(getmetatable(x))) then
      return fail("wrong metatable")
    end
    local n = 0
    for k, v in next, x do
      n = n + 1
      local yk = k
      if is_object(k) then yk = map[k] end
      if yk == nil then
        st.pending[#st.pending + 1] = { x, k }
      else
        local yv = rawget(y, yk)
        if yv == nil then return fail("key " .. describe(k) .. " missing") end
        if not bind(v, yv, st) then return false end
      end
    end
    for _ in next, y do n = n - 1 end
    return n == 0 or fail("a table has another number of keys")
  end

  -- The unpaired keys of y that could be the partner of key k, value v.
  local function candidates(y, k, v)
    local list = {}
    for ck, cv in next, y do
      steps = steps - 1
      if type(ck) == type(k) and rmap[ck] == nil and type(cv) == type(v)
         and (is_object(v) or same_scalar(v, cv))
         and (map[v] == nil or rawequal(map[v], cv)) then
        list[#list + 1] = { ck, cv }
      end
    end
    return list
  end

  local search

  -- Pairs key k (value v) of x with a key of y = map[x].
  local function pair_key(x, k, v, st, depth)
    local y = map[x]
    local yk = map[k]
    if yk ~= nil then
      local yv = rawget(y, yk)
      if yv == nil then return fail("a table key missing") end
      return bind(v, yv, st)
    end
    local list = candidates(y, k, v)
    if #list == 0 then return fail("a table key without a partner") end
    if #list == 1 then
      return bind(k, list[1][1], st) and bind(v, list[1][2], st)
    end
    if depth >= MAX_CHOICES then error(GAVE_UP) end
    for i = 1, #list do
      local mark = #log
      local try = { work = copy(st.work), pending = copy(st.pending) }
      steps = steps - #try.work - #try.pending
      if bind(k, list[i][1], try) and bind(v, list[i][2], try)
         and search(try, depth + 1) then
        st.done = true
        return true
      end
      undo(mark)
    end
    return false
  end

  -- Checks every pair waiting in st; true once all of them hold.
  function search(st, depth)
    while true do
      steps = steps - 1
      if steps < 0 then error(GAVE_UP) end
      local x = st.work[#st.work]
      if x ~= nil then
        st.work[#st.work] = nil
        local y = map[x]
        if type(x) == "table" then
          if not check_table(x, y, st) then return false end
        else
          local ok, reason = userdata(x, y)
          if not ok then return fail(reason or "a userdata badly copied") end
        end
      else
        local e = st.pending[#st.pending]
        if e == nil then return true end
        st.pending[#st.pending] = nil
        if not pair_key(e[1], e[2], rawget(e[1], e[2]), st, depth) then
          return false
        end
        if st.done then return true end  -- a choice checked the rest
      end
    end
  end

  local st = { work = {}, pending = {} }
  local ok, res = pcall(function() return bind(a, b, st) and search(st, 0) end)
  if not ok then
    if res == GAVE_UP then return nil, "gave up" end
    error(res, 0)
  end
  if res then return true end
  return false, why
end

return M
