-- The default mc.onerror passed the error value to tostring unprotected:
-- an error object whose __tostring raised made mc.run() raise that
-- instead (the other tasks did not run), and under messagechannel.luv
-- ended the process. API.md 6.1: the default writes the error and its
-- traceback to io.stderr and returns. It now writes what the standalone
-- interpreter writes for such a value, as a worker's error text did.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: the default mc.onerror and an error object tostring cannot print", function()
  local written, real
  local _, _, release = helper.error_hooks(5)
  local function set_stderr(f) rawset(io, "stderr", f) end

  before_each(function()
    mc.onerror = nil  -- the default
    written, real = {}, io.stderr
    set_stderr({ write = function(_, ...)
      for i = 1, select("#", ...) do written[#written + 1] = select(i, ...) end
    end })
  end)

  after_each(function()
    set_stderr(real)
    release()
  end)

  local RAISES = setmetatable({}, { __tostring = function() error("bad __tostring", 0) end })
  local NOT_A_STRING = setmetatable({}, { __tostring = function() return {} end })

  local function text() return table.concat(written) end

  for name, obj in pairs({ ["raises"] = RAISES, ["returns no string"] = NOT_A_STRING }) do
    it("a task's error whose __tostring " .. name .. " is written, and the rest runs", function()
      mc.spawn(function() error(obj) end)
      local after = false
      mc.spawn(function() mc.sleep(0) after = true end)
      assert.is_true(mc.run(5))
      set_stderr(real)
      assert.is_true(after)
      assert.truthy(text():find("messagechannel: uncaught error: (error object is a table value)",
                                1, true))
    end)
  end

  it("so is a listener's, and the next message is dispatched", function()
    local ch = mc.MessageChannel()
    local got = {}
    ch.port2.onmessage = function(e)
      got[#got + 1] = e.data
      if e.data == 1 then error(RAISES) end
    end
    ch.port1:postMessage(1)
    ch.port1:postMessage(2)
    assert.is_true(mc.run(5))
    set_stderr(real)
    assert.same({ 1, 2 }, got)
    assert.truthy(text():find("(error object is a table value)", 1, true))
    ch.port1:close()
  end)

  it("so is one of a listener dispatchEvent calls outside any task; the next one runs", function()
    local p = mc.MessageChannel().port1
    local second = false
    p:addEventListener("x", function() error(RAISES) end)
    p:addEventListener("x", function() second = true end)
    assert.is_true(p:dispatchEvent({ type = "x" }))
    set_stderr(real)
    assert.is_true(second)
    assert.truthy(text():find("(error object is a table value)", 1, true))
  end)
end)
