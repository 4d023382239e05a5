-- User code that runs while the library is in the middle of something:
--
-- - a listener that calls dispatchEvent on its own port, which calls it
--   again, nested one coroutine deeper each time inside a task: LuaJIT
--   sets no limit on nested resumes and crashed (segfault) about 100,000
--   levels down. Now more than 64 levels report a stack overflow to
--   mc.onerror, on every version before Lua 5.1 to 5.4 would reach their
--   own C stack overflow, so that mc.onerror has room to run (API.md 9:
--   no input crashes the process).
-- - the same outside any task: Lua 5.1 to 5.3 raised their own C stack
--   overflow out of every dispatchEvent level (about 98 deep), with no
--   mc.onerror call and the outer levels' other listeners skipped; 5.4
--   reported it. Now the same limit of 64 holds there too.
-- - a listener error whose text merely ended in "interrupted!" was taken
--   for the interpreter's Ctrl-C and raised out of mc.run, with no
--   messageerror (API.md 3.5).
-- - addEventListener read options.once after it looked for the listener:
--   a `once` read (__index) that added the same listener registered it
--   twice (API.md 2: adding the same pair twice has no effect).
-- - dispatchEvent marked the table as being dispatched before it set the
--   event fields: a __newindex that raised there left it marked, and every
--   later dispatchEvent of it raised InvalidStateError.

local mc = require "messagechannel"

describe("regress: user code re-entering the library", function()
  local saved
  before_each(function() saved = mc.onerror end)
  after_each(function() mc.onerror = saved end)

  it("reports dispatchEvent nested too deep in a task, without a crash", function()
    local ch, depth, errs = mc.MessageChannel(), 0, {}
    mc.onerror = function(e) errs[#errs + 1] = tostring(e) end
    ch.port2.onmessage = function()
      depth = depth + 1
      ch.port2:dispatchEvent({ type = "message" })
    end
    ch.port1:postMessage(0)
    assert.is_true(mc.run(20))
    assert.equal(1, #errs)
    assert.matches("dispatchEvent nested more than 64 deep", errs[1])
    assert.equal(65, depth)  -- the message, then 64 dispatchEvent levels
    ch.port1:close()
    assert.is_true(mc.run(20))
  end)

  it("reports dispatchEvent nested too deep outside any task; outer listeners run", function()
    local p, depth, errs, after = mc.MessageChannel().port2, 0, {}, {}
    mc.onerror = function(e) errs[#errs + 1] = tostring(e) end
    p:addEventListener("deep", function(e)
      depth = math.max(depth, e.d)
      p:dispatchEvent({ type = "deep", d = e.d + 1 })
    end)
    p:addEventListener("deep", function(e) after[#after + 1] = e.d end)
    assert.is_true(p:dispatchEvent({ type = "deep", d = 1 }))
    assert.equal(64, depth)
    -- each of the two listeners of level 65 is refused
    assert.equal(2, #errs)
    assert.matches("dispatchEvent nested more than 64 deep", errs[1])
    assert.equal(64, #after)
    assert.equal(1, after[64])  -- the outermost level's second listener, last
  end)

  it("dispatches a listener's error ending in 'interrupted!' as a messageerror", function()
    local ch, got, later = mc.MessageChannel(), {}, {}
    ch.port2.onmessage = function(e)
      if e.data == 1 then error("the download was interrupted!", 0) end
      later[#later + 1] = e.data
    end
    ch.port2.onmessageerror = function(e) got[#got + 1] = e.error end
    ch.port1:postMessage(1)
    ch.port1:postMessage(2)
    assert.is_true(mc.run(20))
    assert.same({ "the download was interrupted!" }, got)
    assert.same({ 2 }, later)
  end)

  it("adds a listener once when reading its options adds it too", function()
    local ch, n = mc.MessageChannel(), 0
    local function l() n = n + 1 end
    local options = setmetatable({}, { __index = function(_, k)
      if k == "once" then ch.port2:addEventListener("message", l) end
    end })
    ch.port2:addEventListener("message", l, options)
    ch.port2:start()
    ch.port1:postMessage(1)
    assert.is_true(mc.run(20))
    assert.equal(1, n)
    ch.port2:removeEventListener("message", l)
    ch.port1:postMessage(2)
    assert.is_true(mc.run(20))
    assert.equal(1, n)
    ch.port1:close()
  end)

  it("dispatches a table again after its __newindex raised", function()
    local ch, bad, seen = mc.MessageChannel(), true, 0
    ch.port2:addEventListener("x", function() seen = seen + 1 end)
    local ev = setmetatable({ type = "x" }, { __newindex = function(t, k, v)
      if bad then error("no field " .. k, 0) end
      rawset(t, k, v)
    end })
    local ok, err = pcall(ch.port2.dispatchEvent, ch.port2, ev)
    assert.is_false(ok)
    assert.matches("no field", err)
    bad = false
    assert.is_true(ch.port2:dispatchEvent(ev))
    assert.equal(1, seen)
    ch.port1:close()
  end)
end)
