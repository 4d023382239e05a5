-- A value that cannot be cloned, deep in a chain of tables, once overflowed
-- the Lua stack while its path was built (one stack slot per level).

local mc = require "messagechannel"
local helper = require "spec.helper"

local function chain(depth, leaf)
  local root = {}
  local cur = root
  for _ = 1, depth do
    cur.n = {}
    cur = cur.n
  end
  cur.f = leaf
  return root
end

describe("regress: path of a deep bad value", function()
  local paths = {
    { "mc.structuredClone", mc.structuredClone },
    { "mc.serialize", mc.serialize },
  }
  for _, p in ipairs(paths) do
    local name, clone = p[1], p[2]

    it(name .. " names a bad value 300 levels down with its path elided", function()
      local err = helper.error_of(clone, chain(300, print))
      assert.truthy(err:find("DataCloneError: function is not cloneable (at .n.n", 1, true), err)
      assert.truthy(err:find("...(268 more)...", 1, true), err)
      assert.truthy(err:find(".n.f)", 1, true), err)
      assert.is_true(#err < 200, err)
    end)

    it(name .. " names a bad value 50,000 levels down #slow", function()
      local err = helper.error_of(clone, chain(50000, coroutine.create(function() end)))
      assert.truthy(err:find("DataCloneError: thread is not cloneable (at .n.n", 1, true), err)
      assert.truthy(err:find("...(49968 more)...", 1, true), err)
    end)

    it(name .. " gives a short path in full", function()
      local err = helper.error_of(clone, chain(40, print))
      assert.equal("DataCloneError: function is not cloneable (at "
        .. (".n"):rep(40) .. ".f)", err)
    end)

    it(name .. " still works after such an error", function()
      helper.error_of(clone, chain(300, print))
      local v = chain(300, "leaf")
      local c = name == "mc.serialize" and mc.deserialize(clone(v)) or clone(v)
      for _ = 1, 300 do c = c.n end
      assert.equal("leaf", c.f)
    end)
  end
end)
