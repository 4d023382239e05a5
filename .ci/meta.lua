-- Checks docs/meta.lua (the LuaLS definitions) against README.md: every
-- function, method and field the README documents must be declared there,
-- with the parameters the README gives. Fails naming each one that is not.
--
-- What counts as documented: in a `### ` heading, a table row's first cell,
-- or a code span on a bullet's first line, every `mc.name`, `port:name(...)`,
-- `w.name`, `buf:name(...)`, `event:name()`, `ch.name` (chains such as
-- `mc.MessageChannel.new` follow the declared field types), and every
-- `require "messagechannel.x"`; in the table under `### The event`, bare
-- field names too.
--
-- What counts as declared, per class (`---@class Name`, then `local v = {}`
-- binds v to it): `---@field name type`, `function v.name(...)`,
-- `function v:name(...)`. A README parameter list `(a [, b])` must match a
-- declared function's parameters, `---@param b?` marking the optional ones.
--
-- Run from the top of the tree: lua5.4 .ci/meta.lua [--list] [README [META]]
-- (--list prints each name found in the README and where).

local LIST = arg[1] == "--list"
local README = arg[LIST and 2 or 1] or "README.md"
local META = arg[LIST and 3 or 2] or "docs/meta.lua"

-- The README's names for objects, and the classes they are.
local RECEIVERS = {
  mc = "messagechannel",
  port = "MessagePort",
  w = "Worker",
  buf = "Buffer",
  event = "MessageEvent",
  ch = "MessageChannel",
}
-- Tables of bare field names, under these headings.
local FIELD_TABLES = { ["The event"] = "MessageEvent" }

local function lines(path)
  local f = assert(io.open(path, "rb"))
  local t = {}
  for line in f:lines() do t[#t + 1] = (line:gsub("\r$", "")) end
  f:close()
  return t
end

------------------------------------------------------------------------------
-- docs/meta.lua
------------------------------------------------------------------------------

-- classes[name] = { members = { [member] = decl } }, where decl is
-- { kind = "field", type = "T" } or { kind = "function", method = bool,
-- params = { {name=, optional=} ... } }.
local classes = {}
local function class(name)
  local c = classes[name]
  if not c then
    c = { members = {} }
    classes[name] = c
  end
  return c
end

do
  local vars = {}          -- local variable -> class
  local current            -- the class whose @field lines follow
  local pending_params = {} -- @param lines of the doc block above a function
  for _, line in ipairs(lines(META)) do
    local name = line:match("^%-%-%-%s*@class%s+([%w_.]+)")
    if name then
      current = name
      class(name)
    end
    local fname, ftype = line:match("^%-%-%-%s*@field%s+([%w_]+)%??%s+(%S+)")
    if fname and current then
      class(current).members[fname] = { kind = "field", type = ftype }
    end
    local pname, opt = line:match("^%-%-%-%s*@param%s+([%w_.]+)(%??)")
    if pname then
      pending_params[pname] = opt == "?"
    end
    local var = line:match("^local%s+([%w_]+)%s*=")
    if var and current then
      vars[var] = current
    end
    local fvar, sep, member, params =
      line:match("^function%s+([%w_]+)([.:])([%w_]+)%s*%(([^)]*)%)")
    if fvar then
      local cname = vars[fvar] or fvar
      local decl = { kind = "function", method = sep == ":", params = {},
                     line = line }
      for p in params:gmatch("[^,%s]+") do
        decl.params[#decl.params + 1] = { name = p, optional = pending_params[p],
                                          documented = pending_params[p] ~= nil }
      end
      class(cname).members[member] = decl
    end
    if not line:match("^%-%-%-") then
      pending_params = {}
      if line:match("^%s*$") == nil and not var then current = nil end
    end
  end
end

------------------------------------------------------------------------------
-- README.md
------------------------------------------------------------------------------

local documented = {}  -- { key, kind = "name"|"module"|"member"|"field", text, line, ... }
local seen = {}

-- Where a parameter list is a signature: a heading's over a table's over a
-- bullet's leading span; elsewhere in a bullet `mc.run()` is a call.
local RANK = { heading = 3, table = 2, lead = 1, bullet = 0 }

local function add(item, source)
  item.rank = RANK[source]
  if item.rank == 0 then
    item.params, item.text = nil, item.text:gsub("%(%.%.%.%)$", "")
  end
  local old = seen[item.key]
  if not old then
    seen[item.key] = item
    documented[#documented + 1] = item
  elseif item.params and (not old.params or item.rank > old.rank) then
    old.params, old.rank, old.line, old.text = item.params, item.rank, item.line, item.text
  end
end

-- Parses "a, b [, c]" into params, or nil when it is not a plain list.
local function parse_params(s)
  local params, depth, cur = {}, 0, { optional = false, name = "" }
  local function finish()
    local name = cur.name:match("^%s*(.-)%s*$")
    if name == "" then return #params == 0 end  -- "()" only
    if not (name:match("^[%a_][%w_]*$") or name == "...") then return false end
    params[#params + 1] = { name = name, optional = cur.optional }
    return true
  end
  for c in s:gmatch(".") do
    if c == "[" then
      depth = depth + 1
      if cur.name:match("^%s*$") then cur.optional = true end
    elseif c == "]" then
      depth = depth - 1
    elseif c == "," then
      if not finish() then return nil end
      cur = { optional = depth > 0, name = "" }
    else
      cur.name = cur.name .. c
    end
  end
  if not finish() then return nil end
  return params
end

-- Every API name in the text s, found at README line n.
local function scan(s, n, source)
  local REQUIRE = 'require%s*%(?%s*"(messagechannel[%w_.]*)"%s*%)?([.:]?)([%w_]*)'
  for mod, sep, name in s:gmatch(REQUIRE) do
    add({ key = "require:" .. mod, kind = "module", module = mod,
          text = 'require "' .. mod .. '"', line = n }, source)
    if sep ~= "" and name ~= "" then  -- require("messagechannel.luv").start
      add({ key = "require:" .. mod .. sep .. name, kind = "member", module = mod,
            name = name, text = 'require "' .. mod .. '"' .. sep .. name, line = n },
          source)
    end
  end
  -- recv(.|:)name(.|:)name... with an optional parameter list
  local pos = 1
  while true do
    local s0, e0, recv = s:find("%f[%w_]([%a_][%w_]*)[.:][%a_]", pos)
    if not s0 then break end
    pos = e0
    if RECEIVERS[recv] and not (s0 > 1 and s:sub(s0 - 1, s0 - 1):match("[.:]")) then
      local chain, i = {}, s0 + #recv
      while true do
        local sep, name = s:match("^([.:])([%a_][%w_]*)", i)
        if not sep then break end
        chain[#chain + 1] = { sep = sep, name = name }
        i = i + 1 + #name
      end
      local params
      if s:sub(i, i) == "(" then
        local close = s:find(")", i, true)
        if close then params = parse_params(s:sub(i + 1, close - 1)) end
      end
      local text = recv
      for _, c in ipairs(chain) do text = text .. c.sep .. c.name end
      add({ key = text, kind = "name", recv = recv, chain = chain,
            params = params, text = text .. (params and "(...)" or ""),
            line = n }, source)
      pos = i
    end
  end
end

do
  local heading
  for n, line in ipairs(lines(README)) do
    local h = line:match("^#+%s+(.*)$")
    if h then heading = h end
    if line:match("^### ") then
      scan(line, n, "heading")
    elseif line:match("^|") then
      local cell = line:match("^|([^|]*)|")
      if cell and not cell:match("^%s*%-%-%-") then
        scan(cell, n, "table")
        local cls = FIELD_TABLES[heading]
        if cls then
          for span in cell:gmatch("`([^`]+)`") do
            if span:match("^[%a_][%w_]*$") then
              add({ key = cls .. "." .. span, kind = "field", class = cls,
                    name = span, text = "event." .. span, line = n }, "table")
            end
          end
        end
      end
    elseif line:match("^%s*%- ") then
      -- a bullet's first line: the code spans that open it ("- `a`, `b`:
      -- ...") may give signatures, the others names only
      local i = line:find("`", 1, true)
      local lead = line:match("^%s*%- `") ~= nil
      while i do
        local span, rest = line:match("^`([^`]+)`()", i)
        if not span then break end
        scan(span, n, lead and "lead" or "bullet")
        i = line:find("`", rest, true)
        if lead and not line:match("^[,%s]*`", rest) then lead = false end
      end
    end
  end
end

------------------------------------------------------------------------------
-- The check
------------------------------------------------------------------------------

local failures = {}
local function fail(item, fmt, ...)
  failures[#failures + 1] = string.format("%s:%d: %s: ", README, item.line, item.text)
    .. string.format(fmt, ...)
end

local function strip_type(t)
  return t and (t:gsub("%?$", ""):match("^[%w_.]+"))
end

local checked = 0
for _, item in ipairs(documented) do
  checked = checked + 1
  if LIST then print(string.format("%s:%d: %s", README, item.line, item.text)) end
  if item.kind == "module" then
    if not classes[item.module] then
      fail(item, "no ---@class %s in %s", item.module, META)
    end
  elseif item.kind == "member" then
    if not (classes[item.module] and classes[item.module].members[item.name]) then
      fail(item, "%s has no member %s in %s", item.module, item.name, META)
    end
  elseif item.kind == "field" then
    if not (classes[item.class] and classes[item.class].members[item.name]) then
      fail(item, "%s has no field %s in %s", item.class, item.name, META)
    end
  else
    local cname, decl = RECEIVERS[item.recv], nil
    for k, c in ipairs(item.chain) do
      local cls = classes[cname]
      decl = cls and cls.members[c.name]
      if not decl then
        fail(item, "%s has no member %s in %s", cname, c.name, META)
        break
      end
      if c.sep == ":" and decl.kind == "function" and not decl.method then
        fail(item, "documented as a method, declared as %s.%s", cname, c.name)
        break
      end
      if c.sep == "." and decl.kind == "function" and decl.method then
        fail(item, "documented as a function, declared as %s:%s", cname, c.name)
        break
      end
      if k < #item.chain then
        cname = decl.kind == "field" and strip_type(decl.type)
        if not cname or not classes[cname] then
          fail(item, "the type of %s is not a class of %s", c.name, META)
          decl = nil
          break
        end
      end
    end
    -- the parameters, where both sides give them
    if decl and decl.kind == "function" and item.params then
      local got, want = decl.params, item.params
      local function show(ps, mark)
        local t = {}
        for i, p in ipairs(ps) do
          t[i] = p.name .. ((mark and p.optional) and "?" or "")
        end
        return "(" .. table.concat(t, ", ") .. ")"
      end
      local same = #got == #want
      for i = 1, #want do
        local g, w = got[i], want[i]
        if not g or g.name ~= w.name or (g.optional or false) ~= w.optional
           or (g.name ~= "..." and not g.documented) then
          same = false
        end
      end
      if not same then
        fail(item, "README gives %s, %s declares %s (each parameter needs a "
             .. "---@param, `name?` when optional)", show(want, true), META,
             show(got, true))
      end
    end
  end
end

if #failures > 0 then
  for _, m in ipairs(failures) do io.stderr:write("meta: ", m, "\n") end
  io.stderr:write(string.format("meta: %d of the %d names %s documents "
    .. "are missing or wrong in %s\n", #failures, checked, README, META))
  os.exit(1)
end
print(string.format("meta: all %d names %s documents are declared in %s",
  checked, README, META))
