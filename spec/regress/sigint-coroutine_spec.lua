-- Ctrl-C under the standalone interpreter did not reach mc.run() in two
-- places:
-- - mc.run() called inside a coroutine (5.1-5.4): the interpreter's SIGINT
--   handler sets its hook on the main thread only, so the wait in the
--   coroutine went on for as long as a worker lived;
-- - a SIGINT that landed while a listener ran (LuaJIT, whose hook fires in
--   any coroutine): the "interrupted!" error went to mc.onerror like a
--   listener's error, and mc.run() went on.
-- Both now end mc.run() with the interpreter's "interrupted!" error. The
-- first, once: the hook set on the coroutine stayed on the main thread
-- too, and raised again there as soon as the coroutine returned, where
-- no pcall around the coroutine could catch it.
--
-- Each case runs in a child process of this interpreter, with this
-- process's package paths. The child writes a ready file at the point the
-- signal is meant for; the spec then sends SIGINT and polls for the
-- child's end under a bound, killing it when the bound passes. Nothing
-- asserts a speed. Not tagged #threads: the threads are the child's, and a
-- ThreadSanitizer run cannot start the shell that starts it.

local mc = require "messagechannel"
local helper = require "spec.helper"

local has = helper.has

local BOUND = 30  -- seconds: the bound of each wait for the child

local function read_file(name)
  local f = io.open(name, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

-- Polls until read_file(name) is non-empty or BOUND seconds pass; returns
-- the text or nil.
local function await_file(name)
  local deadline = mc.now() + BOUND
  repeat
    local text = read_file(name)
    if text and text ~= "" then return text end
    os.execute("sleep 0.05")
  until mc.now() > deadline
  return nil
end

-- Runs `body` (Lua source, where READY and GO are file names: the child
-- writes READY, the spec creates GO after the signal) in a child
-- interpreter, sends it SIGINT once it is ready, and returns its stderr.
-- Fails when the child is not ready or does not end within BOUND seconds.
-- The child keeps the environment (a sanitizer run's LD_PRELOAD too: it
-- loads the same build).
local function interrupted(body)
  local interpreter = arg and arg[-1]
  if type(interpreter) ~= "string" then
    pending("the interpreter's name is not in arg[-1]")
    return nil
  end
  local base = os.tmpname()
  local script, ready, go, pidf, errf, statusf =
    base .. ".lua", base .. ".ready", base .. ".go", base .. ".pid",
    base .. ".err", base .. ".status"
  local f = assert(io.open(script, "w"))
  f:write(("package.path = %q\npackage.cpath = %q\nlocal READY, GO = %q, %q\n")
          :format(package.path, package.cpath, ready, go))
  f:write([[
local mc = require "messagechannel"
local function ready()
  local r = assert(io.open(READY, "w"))
  r:write("ready\n")
  r:close()
end
]], body)
  f:close()
  os.execute(("( %s %s 2>%s & echo $! >%s; wait $!; "
              .. "echo $? >%s ) </dev/null >/dev/null 2>&1 &")
             :format(interpreter, script, errf, pidf, statusf))
  local ok, why = pcall(function()
    local pid = assert(tonumber(await_file(pidf)), "no pid")
    if not await_file(ready) then
      os.execute("kill -KILL " .. pid .. " 2>/dev/null")
      error("the child did not get ready: " .. tostring(read_file(errf)))
    end
    os.execute("kill -INT " .. pid .. " 2>/dev/null")
    assert(io.open(go, "w")):close()
    if not await_file(statusf) then
      os.execute("kill -KILL " .. pid .. " 2>/dev/null")
      error("the child did not end within " .. BOUND .. " s of SIGINT; stderr: "
            .. tostring(read_file(errf)))
    end
    return read_file(errf) or ""
  end)
  for _, name in ipairs({ base, script, ready, go, pidf, errf, statusf }) do
    os.remove(name)
  end
  assert(ok, why)
  return why
end

describe("regress: Ctrl-C and mc.run()", function()
  it("interrupts mc.run() called inside a coroutine", function()
    local err = interrupted([[
      -- a worker that lives until terminated keeps mc.run() going
      local w = mc.Worker('local mc = require "messagechannel" mc.parentPort:receive()',
                          { eval = true })
      coroutine.wrap(function()
        ready()
        local ok, e = pcall(mc.run)
        io.stderr:write("in the coroutine: ", tostring(ok), " ", tostring(e), "\n")
        w:terminate()
      end)()
      io.stderr:write("after the coroutine\n")
    ]])
    if not err then return end
    assert.truthy(err:find("in the coroutine: false [^\n]*interrupted!\n"), err)
    -- once: the hook moved to the coroutine did not stay on the main
    -- thread to raise again there, out of reach of the pcall (5.1-5.4)
    assert.truthy(has(err, "after the coroutine\n"), err)
    assert.falsy(err:find("interrupted!.*interrupted!"), err)
  end)

  it("ends mc.run() with the interrupted error when it lands in a listener", function()
    local err = interrupted([[
      local w = mc.Worker('local mc = require "messagechannel" '
                          .. 'mc.parentPort:postMessage(1) mc.parentPort:receive()',
                          { eval = true })
      -- busy until the spec has sent the signal (GO), under a bound
      -- longer than the spec's
      w.onmessage = function()
        ready()
        local deadline = mc.now() + 60
        repeat
          local f = io.open(GO)
          if f then f:close() end
        until f or mc.now() > deadline
      end
      mc.onerror = function(e) io.stderr:write("onerror: ", tostring(e), "\n") end
      local ok, e = pcall(mc.run, 120)
      io.stderr:write("mc.run: ", tostring(ok), " ", tostring(e), "\n")
      w:terminate()
    ]])
    if not err then return end
    assert.truthy(err:find("mc.run: false [^\n]*interrupted!\n"), err)
    assert.falsy(has(err, "onerror:"), err)
  end)
end)
