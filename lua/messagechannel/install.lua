-- messagechannel.install: mc.install(env [, options]), which exposes
-- MessageChannel and MessagePort as globals of env the way the Workers
-- compatibility date and flags do (API.md section 8). The options are parsed
-- with LPeg; everything is checked before env is touched, so an error leaves
-- env as it was. LPeg is loaded, and the grammars built, at the first call of
-- install, so that messagechannel itself (and every worker) runs without it.

local M = {}

local error, pcall, rawset, require, select, tonumber, tostring, type =
  error, pcall, rawset, require, select, tonumber, tostring, type
local format = string.format
local ET = require "messagechannel.eventtarget"

-- The first date on which the globals are exposed without a flag.
local EXPOSE_DATE = "2025-08-15"
local EXPOSE_FLAG = "expose_global_message_channel"
local HIDE_FLAG = "no_expose_global_message_channel"

------------------------------------------------------------------------------
-- Grammars, built by load_grammars at the first call of install
------------------------------------------------------------------------------

local match                                  -- lpeg.match
local date_grammar, name_grammar, list_grammar

local LPEG_HINT = "mc.install needs LPeg (the Lua module 'lpeg'): install "
  .. "it with `apt-get install lua-lpeg` on Debian or `luarocks install lpeg`"

-- Raises at level 3, the caller of install: load_grammars (1) < install (2).
local function load_grammars()
  local ok, lpeg = pcall(require, "lpeg")
  if not ok then
    -- the not-found message lists every path searched: keep its first line
    local why = tostring(lpeg)
    why = why:match("^(module 'lpeg' not found):") or why
    error(LPEG_HINT .. " (" .. why .. ")", 3)
  end
  local C, Ct, R, S = lpeg.C, lpeg.Ct, lpeg.R, lpeg.S

  -- "YYYY-MM-DD", exactly: year, month and day as numbers.
  local digit = R"09"
  local d2 = digit * digit
  date_grammar = (d2 * d2 / tonumber) * "-" * (d2 / tonumber) * "-"
    * (d2 / tonumber) * -1

  -- A flag name, the whole subject.
  name_grammar = (R("az", "AZ", "09") + "_")^1 * -1

  -- A flag list string: comma-separated fields, each holding words separated
  -- by white space. It matches any string; the words are checked afterwards,
  -- so an error can name the word or the empty field that is wrong.
  local space = S" \t\n\v\f\r"
  local word = C((1 - space - ",")^1)
  local field = Ct(space^0 * (word * (space^1 * word)^0)^-1 * space^0)
  list_grammar = Ct(field * ("," * field)^0) * -1

  match = lpeg.match  -- last: set only once every grammar is built
end

------------------------------------------------------------------------------
-- Options
------------------------------------------------------------------------------

-- The checks raise at level 4, the caller of install: check (1) < exposes
-- (2) < install (3). So the facade must expose install itself, not a wrapper.

local function is_leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end

local month_days = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- A valid date is "YYYY-MM-DD", so dates order as strings.
local function check_date(date)
  if type(date) ~= "string" then
    error(format("compatibility_date must be a string \"YYYY-MM-DD\", got %s",
      ET.typename(date, true)), 4)
  end
  local y, m, d = match(date_grammar, date)
  local ok = y and m >= 1 and m <= 12 and d >= 1
    and d <= (m == 2 and is_leap(y) and 29 or month_days[m])
  if not ok then
    error(format("compatibility_date %q is not a valid YYYY-MM-DD date", date), 4)
  end
end

local function is_name(name)
  return match(name_grammar, name) ~= nil
end

-- The set of flag names in flags: nil, an array of names or a string of
-- names separated by commas and/or white space.
local function check_flags(flags)
  local set = {}
  if type(flags) == "string" then
    local fields = match(list_grammar, flags)
    for i = 1, #fields do
      local words = fields[i]
      if #words == 0 and #fields > 1 then -- one empty field is "" or "  "
        error(format("compatibility_flags %q has an empty flag name", flags), 4)
      end
      for j = 1, #words do
        if not is_name(words[j]) then
          error(format("compatibility_flags %q has an invalid flag name %q "
            .. "(letters, digits and _)", flags, words[j]), 4)
        end
        set[words[j]] = true
      end
    end
  elseif type(flags) == "table" then
    -- an array and nothing else: a set of names ({name = true}) or a hole
    -- would be read as fewer flags than meant
    local n = 0
    for k in next, flags do
      n = n + 1
      if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then
        error(format("compatibility_flags must be an array of flag names "
          .. "(it has the key %s)", type(k) == "string" and format("%q", k)
          or tostring(k)), 4)
      end
    end
    if n ~= #flags or (n > 0 and flags[n] == nil) then
      error("compatibility_flags must be an array of flag names (it has "
        .. "holes)", 4)
    end
    for i = 1, #flags do
      local name = flags[i]
      if type(name) ~= "string" then
        error(format("compatibility_flags[%d] must be a string, got %s",
          i, ET.typename(name, true)), 4)
      end
      if not is_name(name) then
        error(format("compatibility_flags[%d] %q is not a valid flag name "
          .. "(letters, digits and _)", i, name), 4)
      end
      set[name] = true
    end
  elseif flags ~= nil then
    error(format("compatibility_flags must be an array or a string of flag "
      .. "names, got %s", ET.typename(flags, true)), 4)
  end
  if set[EXPOSE_FLAG] and set[HIDE_FLAG] then
    -- Workers refuses contradictory flags rather than picking one.
    error(format("compatibility_flags has both %s and %s, which are mutually "
                 .. "contradictory", EXPOSE_FLAG, HIDE_FLAG), 4)
  end
  return set
end

-- Whether options (already known to be nil or a table) expose the globals.
local function exposes(options)
  local date, flags
  if options then
    date, flags = options.compatibility_date, options.compatibility_flags
  end
  if date ~= nil then check_date(date) end
  flags = check_flags(flags)
  if flags[HIDE_FLAG] then return false end
  return flags[EXPOSE_FLAG] or date == nil or date >= EXPOSE_DATE
end

------------------------------------------------------------------------------
-- install
------------------------------------------------------------------------------

local function bad_argument(n, expected, got)
  error(format("bad argument #%d to 'install' (%s expected, got %s)",
    n, expected, got), 3)
end

-- The install function for these two values: install(env [, options])
-- sets env.MessageChannel and env.MessagePort and returns true, or sets
-- nothing and returns false. The fields are set raw, so a strict or proxy
-- metatable on env cannot refuse the second after the first.
function M.new(MessageChannel, MessagePort)
  if MessageChannel == nil or MessagePort == nil then
    error("messagechannel.install.new needs MessageChannel and MessagePort", 2)
  end
  return function(...)
    local env, options = ...
    if not ET.is_plain_table(env) then
      bad_argument(1, "table", ET.typename(env, select("#", ...) >= 1))
    end
    if options ~= nil and not ET.is_plain_table(options) then
      bad_argument(2, "table or nil", ET.typename(options, true))
    end
    if not match then load_grammars() end
    if not exposes(options) then return false end
    rawset(env, "MessageChannel", MessageChannel)
    rawset(env, "MessagePort", MessagePort)
    return true
  end
end

return M
