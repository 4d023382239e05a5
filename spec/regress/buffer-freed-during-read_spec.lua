-- A finalizer that calls a Buffer's __gc by hand (README Buffer: that
-- detaches it) could free the Buffer's bytes while the module was reading
-- them, and the process crashed (a read of freed memory):
-- - mc.structuredClone took a Buffer's bytes, then made the copy's
--   userdata, which may run the collector and so the finalizer, and then
--   copied from the freed block (5.1 and LuaJIT crashed; every version ran
--   that code);
-- - buf:sub() passed the bytes to lua_pushlstring, which on 5.1, 5.2 and
--   LuaJIT runs the collector before it copies (LuaJIT crashed).
-- The bytes are now read only after every step that may run the
-- collector: a Buffer detached meanwhile gives the clone's DataCloneError
-- ("detached Buffer"), or sub()'s InvalidStateError. API.md 9: no input
-- crashes the process.
--
-- Each case runs in a child interpreter with glibc's MALLOC_MMAP_THRESHOLD_
-- set low, so that a freed block of the size used is unmapped and a read
-- of it faults at once (a sanitizer run finds it either way: the child
-- keeps the environment). The collector runs at every allocation, and
-- finalizers detach the Buffers being read.

local helper = require "spec.helper"

local SIZE = 200000  -- bytes per Buffer: over the threshold below

-- Runs `body` (Lua source, after a prelude that defines mc, SIZE and
-- on_gc(fn): an object whose __gc calls fn) in a child interpreter;
-- returns its output, which ends with " exit:<status>".
local function child(body)
  local out = helper.run_child(([[
local SIZE = %d
local mc = require "messagechannel"
collectgarbage("setpause", 0)
collectgarbage("setstepmul", 1000)
]]):format(SIZE) .. helper.ON_GC .. body .. "\nprint('done')\n", 60,
                               "MALLOC_MMAP_THRESHOLD_=65536")
  if out == nil then pending(helper.NO_CHILD) end
  return out
end

describe("regress: a Buffer a finalizer frees while it is read", function()
  it("is cloned whole or refused as detached, never read after its free", function()
    local out = child([[
local victims
local function free_victims()
  if victims then
    for _, b in ipairs(victims) do getmetatable(b).__gc(b) end
    victims = nil
  end
end
for _ = 1, 60 do
  local msg, want = {}, {}
  for i = 1, 12 do
    want[i] = string.rep(string.char(64 + i), SIZE)
    msg[i] = mc.Buffer(want[i])
  end
  for _ = 1, 4 do on_gc(free_victims) end
  victims = msg
  local ok, copy = pcall(mc.structuredClone, msg)
  victims = nil
  if ok then
    for i = 1, 12 do assert(copy[i]:sub() == want[i], "copy " .. i .. " differs") end
  else
    assert(tostring(copy):find("DataCloneError", 1, true)
           and tostring(copy):find("detached Buffer", 1, true), copy)
  end
end
]])
    if out then assert.are.equal("done\n exit:0\n", out) end
  end)

  it("gives sub() its bytes or InvalidStateError, never a read after its free", function()
    local out = child([[
local victim
local function free_victim()
  if victim then getmetatable(victim).__gc(victim) victim = nil end
end
for k = 1, 100 do
  local want = string.rep(string.char(65 + k % 26), SIZE)
  local b = mc.Buffer(want)
  for _ = 1, 3 do on_gc(free_victim) end
  victim = b
  local ok, s = pcall(b.sub, b)
  victim = nil
  if ok then
    assert(s == want, "sub() gave other bytes")
  else
    assert(tostring(s):find("InvalidStateError: the Buffer is detached", 1, true), s)
  end
end
]])
    if out then assert.are.equal("done\n exit:0\n", out) end
  end)
end)
