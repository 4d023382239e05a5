-- worker:postMessage was a Lua method that tail-called the port's, and
-- Lua 5.1 to 5.4 keep the caller's frame for a C function called so: its
-- errors named a line of the library (lua/messagechannel/worker.lua:55:
-- bad argument #2 to 'postMessage'), where port:postMessage names the
-- caller's. It is now the port's postMessage itself, given the Worker.

local helper = require "spec.helper"

describe("regress: worker:postMessage errors name the caller's line #threads", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  -- the error of f, a one-line function, and the line f is on
  local function error_and_line(f)
    local ok, err = pcall(f)
    assert.is_false(ok)
    return tostring(err), debug.getinfo(f, "S").linedefined
  end

  it("for a bad argument, a bad self and a value that cannot be cloned", function()
    local w = start("")
    local err, line = error_and_line(function() w:postMessage(1, 5) end)
    assert.equal("worker-post-position_spec.lua:" .. line
      .. ": bad argument #2 to 'postMessage' (table expected, got number)",
      err:match("[^/]*$"))
    err, line = error_and_line(function() w.postMessage({}, 1) end)
    assert.equal("worker-post-position_spec.lua:" .. line
      .. ": bad argument #1 to 'postMessage' (Worker expected, got table)",
      err:match("[^/]*$"))
    err = error_and_line(function() w:postMessage(print) end)
    assert.equal("DataCloneError: function is not cloneable", err)
    assert.same({}, errors)
  end)

  it("and still posts, and says closed once the worker has ended", function()
    local w = start([[
      local mc = require "messagechannel"
      mc.parentPort.onmessage = function(e)
        mc.parentPort:postMessage(e.data * 2)
        mc.parentPort:close()
      end
    ]])
    local got
    w.onmessage = function(e) got = e.data end
    assert.is_true(w:postMessage(21))
    helper.run()
    assert.equal(42, got)
    w:terminate()
    helper.run()
    assert.same({ false, "closed" }, { w:postMessage(1) })
  end)

  it("finds the port of a Worker a finalizer reaches", function()
    local res
    do
      local w = start("")
      helper.run()
      local function fin() res = { pcall(w.postMessage, w, "bye") } end
      local proxy = rawget(_G, "newproxy")
      if proxy then getmetatable(proxy(true)).__gc = fin  -- 5.1, LuaJIT
      else setmetatable({}, { __gc = fin }) end
    end
    collectgarbage()
    collectgarbage()
    assert.same({ true, false, "closed" }, res)
  end)
end)
