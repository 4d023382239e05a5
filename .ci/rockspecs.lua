-- The scm rockspec and the release rockspec of mc.version must not drift
-- apart: both are loaded in an empty environment and must be equal but for
-- `version` and `source.tag` (which is "v<mc.version>"). And build.modules
-- must list every Lua file of lua/messagechannel/ and every C source of src/,
-- and nothing else. Older release rockspecs are left alone.
-- Run from the top of the tree: lua5.4 .ci/rockspecs.lua

local SCM = "rockspec/messagechannel-scm-1.rockspec"
local RELEASE_PATTERN = "^rockspec/messagechannel%-(%d+%.%d+%.%d+)%-(%d+)%.rockspec$"

local failures = {}
local function fail(fmt, ...)
  failures[#failures + 1] = string.format(fmt, ...)
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function list(command)
  local t = {}
  local p = assert(io.popen(command))
  for line in p:lines() do t[#t + 1] = line end
  p:close()
  table.sort(t)
  return t
end

-- A rockspec's fields, loaded with no access to anything.
local function load_rockspec(path)
  local env = {}
  local text = read(path)
  local chunk, err
  local setfenv = rawget(_G, "setfenv")
  if setfenv then -- 5.1, LuaJIT
    chunk, err = rawget(_G, "loadstring")(text, "@" .. path)
    if chunk then setfenv(chunk, env) end
  else
    chunk, err = load(text, "@" .. path, "t", env)
  end
  if not chunk then error(err, 0) end
  chunk()
  return env
end

-- Every difference between a and b, as paths.
local function compare(a, b, path, out)
  if type(a) ~= "table" or type(b) ~= "table" then
    if a ~= b then
      out[#out + 1] = string.format("%s: %s / %s", path, tostring(a), tostring(b))
    end
    return out
  end
  local keys = {}
  for k in pairs(a) do keys[k] = true end
  for k in pairs(b) do keys[k] = true end
  for k in pairs(keys) do
    local sub = type(k) == "string" and k:match("^[%a_][%w_]*$")
      and path .. "." .. k or path .. "[" .. string.format("%q", k) .. "]"
    compare(a[k], b[k], sub, out)
  end
  return out
end

local scm = load_rockspec(SCM)

-- The version the module reports, and its release rockspecs.
local version = read("lua/messagechannel/init.lua"):match('M%.version = "([^"]+)"')
if not version then error("lua/messagechannel/init.lua sets no M.version", 0) end

local found = 0
for _, path in ipairs(list("ls rockspec/messagechannel-*.rockspec")) do
  local v, rev = path:match(RELEASE_PATTERN)
  if v == version then
    found = found + 1
    local rel = load_rockspec(path)
    if rel.version ~= v .. "-" .. rev then
      fail("%s: version %s does not match its file name", path, tostring(rel.version))
    end
    if not rel.source or rel.source.tag ~= "v" .. v then
      fail("%s: source.tag must be \"v%s\"", path, v)
    end
    -- all the rest must be the scm rockspec's
    local a, b = {}, {}
    for k, x in pairs(scm) do a[k] = x end
    for k, x in pairs(rel) do b[k] = x end
    a.version, b.version = nil, nil
    local sa, sb = {}, {}
    for k, x in pairs(a.source or {}) do sa[k] = x end
    for k, x in pairs(b.source or {}) do sb[k] = x end
    sb.tag = nil
    a.source, b.source = sa, sb
    local diffs = compare(a, b, "", {})
    for _, d in ipairs(diffs) do
      fail("%s and %s differ at %s", SCM, path, d)
    end
  end
end
if found == 0 then
  fail("no release rockspec rockspec/messagechannel-%s-N.rockspec for mc.version %s",
       version, version)
end

-- build.modules against the tree.
local want = {}
for _, f in ipairs(list("ls lua/messagechannel/*.lua")) do
  local name = f:match("^lua/(.*)%.lua$"):gsub("/", ".")
  name = name:gsub("%.init$", "")
  want[name] = f
end
local sources = {}
for _, f in ipairs(list("ls src/*.c")) do sources[f] = true end

local modules = scm.build and scm.build.modules or {}
for name, f in pairs(want) do
  if modules[name] == nil then
    fail("%s: build.modules lacks [%q] = %q", SCM, name, f)
  elseif modules[name] ~= f then
    fail("%s: build.modules[%q] is %s, not %q", SCM, name, tostring(modules[name]), f)
  end
end
for name, f in pairs(modules) do
  if type(f) == "string" and not want[name] then
    fail("%s: build.modules[%q] = %q, a file that does not exist", SCM, name, f)
  end
end
local core = modules["messagechannel.core"]
local listed = {}
for _, f in ipairs(core and core.sources or {}) do
  listed[f] = true
  if not sources[f] then fail("%s: core source %s does not exist", SCM, f) end
end
for f in pairs(sources) do
  if not listed[f] then fail("%s: core sources lack %s", SCM, f) end
end

if #failures > 0 then
  table.sort(failures)
  for _, m in ipairs(failures) do io.stderr:write("rockspecs: ", m, "\n") end
  os.exit(1)
end
print(string.format("rockspecs: %s and the release rockspec of %s agree, "
  .. "and list every module", SCM, version))
