-- A worker's uncaught error from its file was passed to tostring, to
-- begin its traceback, without protection: a table error whose
-- __tostring raises reached the parent as that raise's message (on
-- LuaJIT as "error in error handling", with no traceback), not as the
-- table. Its traceback also began with the error's text, where one from a
-- task began with "stack traceback:". API.md 7 (`event.error`) and the
-- README (`w.onerror`: a clone of the error value).

local helper = require "spec.helper"

describe("regress: a worker's error value and traceback #threads", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  local raising = [[setmetatable({ code = 7 },
                                 { __tostring = function() error("ts") end })]]

  for _, where in ipairs { "file", "task" } do
    it("a table whose __tostring raises arrives as the table, from the " .. where, function()
      local source = where == "file" and "error(" .. raising .. ")"
        or "require('messagechannel').spawn(function() error(" .. raising .. ") end)"
      local w = start(source)
      local got
      w.onerror = function(e) got = e end
      helper.run()
      assert.is_table(got.error)
      assert.equal(7, got.error.code)
      assert.is_nil(getmetatable(got.error))
      assert.equal("stack traceback:", got.traceback:sub(1, 16))
      assert.same({}, errors)
    end)
  end

  it("the traceback of an error from the script ends with the script's frames", function()
    -- it went on through the module's own runner: its function, xpcall
    -- and the worker's main
    local w = start "local function f() error('boom') end\nf()"
    local got
    w.onerror = function(e) got = e end
    helper.run()
    local tb = got.traceback
    assert.truthy(tb:find("\n\tworker:1: in ", 1, true), tb)
    assert.truthy(tb:find("\n\tworker:2: in [^\n]*$"), tb)
    assert.is_nil(tb:find("xpcall", 1, true), tb)
    assert.is_nil(tb:find("messagechannel", 1, true), tb)
    assert.same({}, errors)
  end)

  it("the traceback is made though the script changed the string table", function()
    -- the cut looked up string.find and string.match when the error came:
    -- the error became "error in error handling"
    for _, change in ipairs { "string.find = function() error('mine') end",
                              "string.match = nil", "string.sub = nil" } do
      local w = start(change .. "\nerror('x')")
      local got
      w.onerror = function(e) got = e end
      helper.run()
      assert.equal("worker:2: x", got.error, change)
      assert.truthy(got.traceback:find("\n\tworker:2: in [^\n]*$"), got.traceback)
      assert.same({}, errors)
    end
  end)

  it("unhandled, it is raised once named, then the traceback", function()
    local mc = require "messagechannel"
    mc.onerror = nil  -- the default: raised out of mc.run
    start "error('boom')"
    local ok, err = pcall(mc.run, 5)
    assert.is_false(ok)
    local first, rest = tostring(err):match("^(Error in worker %d+: [^\n]*)\n(.*)$")
    assert.is_truthy(first and first:find("boom", 1, true), err)
    assert.equal("stack traceback:", rest:sub(1, 16))
    assert.is_nil(rest:find("boom", 1, true))
  end)
end)
