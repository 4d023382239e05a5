-- messagechannel.eventtarget: the EventTarget model the module's objects
-- share: listener records, handler fields (`onmessage`), events, and the
-- walk over the listeners of one dispatch. It knows no scheduler: the
-- caller says how a listener is called and where its errors go.
--
-- A target keeps its listeners in a table U of its own (a port's
-- uservalue, which the C side reads too, see src/mc.h):
--   U.lists  event type -> array of records {fn, once, removed, handler}
--            (once: false, or the type the record was added for),
--            absent when empty. Arrays are never changed, only replaced,
--            so a dispatch walks the array it started with: listeners
--            added meanwhile are not called, and removed ones are skipped
--            by their `removed` mark (the DOM's rules).
--   U.on     handler field ("onmessage") -> its record; the record sits
--            where the field was first set to a function.
-- Every change calls changed(target), the target type's hook.

local M = {}

local error, pairs, rawequal, rawget, rawset, setmetatable, tostring, type =
  error, pairs, rawequal, rawget, rawset, setmetatable, tostring, type
local getmetatable_raw = debug.getmetatable
local format, byte, gsub = string.format, string.byte, string.gsub

---------------------------------------------------------------------------
-- Events
---------------------------------------------------------------------------

local STOP = {}  -- event key: stopImmediatePropagation() was called
local DISPATCHING = {}  -- event key: dispatchEvent is dispatching it

local function preventDefault(ev)
  ev.defaultPrevented = true
end

local function stopImmediatePropagation(ev)
  rawset(ev, STOP, true)
end

local event_defaults = {
  origin = "", lastEventId = "", defaultPrevented = false,
  preventDefault = preventDefault,
  stopImmediatePropagation = stopImmediatePropagation,
}

-- Events the module makes carry their constant fields in a metatable;
-- `ports` is made on first read, and `currentTarget`, when the event has
-- none of its own, is its target. It is the Lua state's one event
-- metatable, which src/sched.c gives its events too.
local core = require "messagechannel.core"
local EVENT_MT = core.event_mt()
core.not_cloneable(EVENT_MT, "Event")  -- as on the web
EVENT_MT.__index = function(ev, k)
  if k == "ports" then
    local t = {}
    rawset(ev, "ports", t)
    return t
  end
  if k == "currentTarget" then return rawget(ev, "target") end
  return event_defaults[k]
end

M.EVENT_MT = EVENT_MT

function M.new_event(typ, target, data, ports)
  return setmetatable({ type = typ, data = data, target = target,
                        currentTarget = target, ports = ports }, EVENT_MT)
end

-- Gives a table passed to dispatchEvent the fields and methods of an
-- event being dispatched at target; returns an error instead when it is
-- being dispatched already, by dispatchEvent or (`busy`, the caller
-- knows) by the scheduler: the DOM's dispatchEvent raises
-- InvalidStateError then. The table is marked last: an assignment that
-- raises (its __newindex) leaves it unmarked, to be dispatched again.
function M.prepare(ev, target, busy)
  if busy or rawget(ev, DISPATCHING) then
    return "InvalidStateError: the event is already being dispatched"
  end
  ev.target, ev.currentTarget = target, target
  if ev.defaultPrevented == nil then ev.defaultPrevented = false end
  ev.preventDefault = preventDefault
  ev.stopImmediatePropagation = stopImmediatePropagation
  rawset(ev, STOP, nil)
  rawset(ev, DISPATCHING, true)
end

-- Stops a walk over ev's listeners after the one being called, as the
-- event's stopImmediatePropagation() does.
M.halt = stopImmediatePropagation

function M.finish(ev)
  rawset(ev, STOP, nil)
  rawset(ev, DISPATCHING, nil)
end

---------------------------------------------------------------------------
-- Listeners
---------------------------------------------------------------------------

-- Whether v can be called: a function, or a value whose metatable's
-- __call (read raw, as Lua reads it) is a function; Lua 5.4 also calls
-- through a __call that is itself callable (to CALL_DEPTH levels here: a
-- bound, for a __call that leads back to itself, which Lua cannot call).
local CALL_DEPTH = _VERSION == "Lua 5.4" and 1000 or 1
local function is_callable(v)
  for _ = 1, CALL_DEPTH do
    if type(v) == "function" then return true end
    local mt = getmetatable_raw(v)
    if type(mt) ~= "table" then return false end
    v = rawget(mt, "__call")
  end
  return type(v) == "function"
end
M.is_callable = is_callable

-- What v is, for an argument error, as the C side names it
-- (mc_ctx_typename): a userdata by C, which knows the module's own by
-- their metatables (MessagePort, BroadcastChannel, Buffer) and a light
-- userdata; one of the module's classes made in Lua, tables, by its
-- metatable's __name; anything else by its type; "no value" for an
-- argument not given at all, as Lua's own errors name it (given: whether
-- it was). Another value whose __name is MessagePort is no MessagePort.
local TABLE_CLASSES = { MessageChannel = true, Worker = true,
                        Listener = true }
local function typename(v, given)
  if not given then return "no value" end
  local t = type(v)
  if t == "userdata" then return core.typename(v) end
  if t == "table" then
    local mt = getmetatable_raw(v)
    local name = type(mt) == "table" and rawget(mt, "__name")
    if TABLE_CLASSES[name] then return name end
  end
  return t
end
M.typename = typename

-- A control byte (a NUL too) as \<its decimal code>.
local function escape(c)
  local b = byte(c)
  if b < 32 or b == 127 then return "\\" .. b end
end

-- How an error names the key k of an options table, as the C side does:
-- 'k' for a string (a control byte in it escaped: an error message
-- carries none, and no "%s" of it is cut at a NUL), [k] for a number or a
-- boolean (as Lua writes such a key), else (a T key) with T its typename.
function M.keyname(k)
  local t = type(k)
  if t == "string" then return "'" .. gsub(k, ".", escape) .. "'" end
  if t == "number" or t == "boolean" then return "[" .. tostring(k) .. "]" end
  return "(a " .. typename(k, true) .. " key)"
end

-- Whether v is a table that is none of the module's objects: what an
-- options table (or an environment) must be.
function M.is_plain_table(v)
  return type(v) == "table" and typename(v, true) == "table"
end

-- Calls one listener record with the event. Errors propagate.
function M.call(rec, ev)
  local l = rec.fn
  if is_callable(l) then
    return l(ev)
  end
  local h = l.handleEvent
  if not is_callable(h) then
    error("TypeError: the listener's handleEvent is not callable", 0)
  end
  return h(l, ev)
end

local EMPTY = {}

local function listeners(U, typ)
  local ls = U.lists
  return ls and ls[typ] or EMPTY
end
M.listeners = listeners

-- A change of listeners runs in three steps, so that an error (running
-- out of memory at any allocation, a hook's at any instruction) leaves U
-- as it was: first what may allocate (the new list, the records, the
-- tables to commit, and U.lists and U.on themselves, empty meaning what
-- absent does); then the commit, one C call (core.commit) that only
-- assigns keys that exist (or nil), so allocates nothing, and rereads a
-- receiver's listeners; then changed(target), the target type's hook.
local commit = core.commit

-- U.lists or U.on, made (empty) when U has none yet.
local function table_of(U, name)
  local t = U[name]
  if not t then
    t = {}
    U[name] = t
  end
  return t
end

-- The table to commit as U.lists (ls) for typ's listeners to be list: ls
-- itself when typ has a list in it or list is empty, else a copy of ls
-- with list, as typ would be a new key there.
local function lists_with(ls, typ, list)
  if ls[typ] ~= nil or not list[1] then return ls end
  local t = {}
  for k, l in pairs(ls) do t[k] = l end
  t[typ] = list
  return t
end

-- Adds rec to typ's listeners, and as handler field k when k is given: a
-- new key of U.on, so the commit puts a copy of U.on that has it. ls has
-- typ as a key (lists_with). rec has its `removed` field (false) from the
-- start, so that marking it allocates nothing.
local function add_record(target, U, typ, rec, changed, k)
  local old, list = listeners(U, typ), {}
  for i = 1, #old do list[i] = old[i] end
  list[#old + 1] = rec
  local ls = lists_with(table_of(U, "lists"), typ, list)
  if k then
    local on = { [k] = rec }
    for f, r in pairs(table_of(U, "on")) do on[f] = r end
    commit(target, U, "lists", ls, ls, typ, list, U, "on", on)
  else
    commit(target, U, "lists", ls, ls, typ, list)
  end
  changed(target)
end

-- Removes rec from typ's listeners, and from handler field k when k is
-- given; with d, a dispatch's walk removing a `once` listener, sets d.i
-- to i in the same commit (see walk). typ has a list in U.lists already,
-- unless the new list is empty: then ls[typ] = nil changes nothing.
local function remove_record(target, U, typ, rec, changed, k, d, i)
  local old, list = listeners(U, typ), {}
  for j = 1, #old do
    if old[j] ~= rec then list[#list + 1] = old[j] end
  end
  local ls = lists_with(table_of(U, "lists"), typ, list)
  local rest = list[1] and list or nil
  if k then
    commit(target, U, "lists", ls, ls, typ, rest, rec, "removed", true,
           U.on, k, nil)
  elseif d then
    commit(target, U, "lists", ls, ls, typ, rest, rec, "removed", true,
           d, "i", i)
  else
    commit(target, U, "lists", ls, ls, typ, rest, rec, "removed", true)
  end
  changed(target)
end

local function find(list, l)
  for i = 1, #list do
    local rec = list[i]
    -- the same listener: identity, never a __eq of the user's
    if rawequal(rec.fn, l) and not rec.handler then return rec end
  end
end

-- The checks below return the error to raise, for the method to raise it
-- at its caller. Argument errors are worded as Lua words them for a method
-- call: the arguments after the object count from 1.
local function bad_argument(n, name, msg)
  return format("bad argument #%d to '%s' (%s)", n, name, msg)
end

local function check_type(typ, given, name)
  if type(typ) ~= "string" then
    return bad_argument(1, name, "string expected, got "
                                 .. typename(typ, given))
  end
end

local function check_listener(l, given, name)
  if l == nil then
    return bad_argument(2, name, "function or table expected, got "
                                 .. typename(l, given))
  end
  if is_callable(l) or type(l) == "table" and l.handleEvent ~= nil then
    return
  end
  return format("TypeError: %s: the listener must be a function, a "
                .. "callable value or a table with a handleEvent method "
                .. "(got %s)", name, typename(l, true))
end

-- addEventListener(type, listener [, options]), given n arguments after
-- the target. Returns an error message, or nothing.
function M.add(target, U, changed, n, typ, l, options)
  local name = "addEventListener"
  local err = check_type(typ, n >= 1, name)
    or check_listener(l, n >= 2, name)
  if err then return err end
  local ot = type(options)
  if ot ~= "nil" and ot ~= "boolean" and not M.is_plain_table(options) then
    return bad_argument(3, name, "table expected, got "
                                 .. typename(options, true))
  end
  -- options first, as the DOM reads them: reading `once` may run code
  -- (its __index) that adds the same listener
  local once = ot == "table" and options.once and true or false
  if find(listeners(U, typ), l) then return end
  add_record(target, U, typ,
             { fn = l, once = once and typ, removed = false }, changed)
end

-- removeEventListener(type, listener): a listener never added is ignored.
function M.remove(target, U, changed, n, typ, l)
  local name = "removeEventListener"
  local err = check_type(typ, n >= 1, name)
    or l == nil and check_listener(l, n >= 2, name)
  if err then return err end
  local rec = find(listeners(U, typ), l)
  if rec then remove_record(target, U, typ, rec, changed) end
end

-- The error for a value v that handler field k cannot take, or nil.
local function check_handler(k, v)
  if v ~= nil and not is_callable(v) then
    return format("TypeError: %s must be a function, a callable value or "
                  .. "nil (got %s)", k, typename(v, true))
  end
end
M.check_handler = check_handler

-- Sets handler field k (of event type typ) to v: a function, a callable
-- value or nil. Returns an error message, or nothing.
function M.set_handler(target, U, changed, k, typ, v)
  local err = check_handler(k, v)
  if err then return err end
  local on = U.on
  local rec = on and on[k]
  if v == nil then
    if rec then remove_record(target, U, typ, rec, changed, k) end
  elseif rec then
    changed(target)  -- first, as it may fail; the store allocates nothing
    rec.fn = v
  else
    add_record(target, U, typ, { fn = v, handler = true, removed = false },
               changed, k)
  end
end

function M.field_error(k, what)
  return format("TypeError: cannot set field '%s' of %s", tostring(k), what)
end

---------------------------------------------------------------------------
-- One dispatch
---------------------------------------------------------------------------

-- Calls the listeners of d.ev, a dispatch in progress, from d.list[d.i]
-- on, each through invoke(rec, ev). d.i is where the walk is, in one
-- field so that each step is a single store (an interrupt hook may stop
-- the walk at any instruction): k > 0, listener k is next; -k, listener
-- k's call is under way, so that a caller goes on after it when it
-- raised (from 1 + k). d holds target, U, ev, list and i.
function M.walk(d, invoke, changed)
  local list, ev = d.list, d.ev
  for i = d.i, #list do
    if rawget(ev, STOP) then break end
    local rec = list[i]
    if not rec.removed then
      -- a `once` listener leaves the list it was added to (whatever
      -- ev.type says by now) in the commit that marks its call under way:
      -- an error before it leaves the listener next, one after it counts
      -- as the listener's
      if rec.once then
        remove_record(d.target, d.U, rec.once, rec, changed, nil, d, -i)
      else
        d.i = -i
      end
      invoke(rec, ev)
    end
    d.i = i + 1
  end
end

return M
