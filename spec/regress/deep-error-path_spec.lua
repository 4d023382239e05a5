-- A value that cannot be cloned, deep in a chain of tables, once overflowed
-- the Lua stack while its path was built (one stack slot per level). The
-- path of a long chain kept 17 steps at its end, not 16, and a path of 49
-- steps was not shortened: the bad value's own key was not counted.

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
      assert.truthy(err:find("...(269 more)...", 1, true), err)
      assert.truthy(err:find(".n.f)", 1, true), err)
      assert.is_true(#err < 200, err)
    end)

    it(name .. " names a bad value 50,000 levels down #slow", function()
      local err = helper.error_of(clone, chain(50000, coroutine.create(function() end)))
      assert.truthy(err:find("DataCloneError: thread is not cloneable (at .n.n", 1, true), err)
      assert.truthy(err:find("...(49969 more)...", 1, true), err)
    end)

    it(name .. " gives a short path in full", function()
      local err = helper.error_of(clone, chain(40, print))
      assert.equal("DataCloneError: function is not cloneable (at "
        .. (".n"):rep(40) .. ".f)", err)
    end)

    it(name .. " gives 48 steps in full and shortens 49 to 16 at each end", function()
      local err = helper.error_of(clone, chain(47, print))
      assert.equal("DataCloneError: function is not cloneable (at "
        .. (".n"):rep(47) .. ".f)", err)
      err = helper.error_of(clone, chain(48, print))
      assert.equal("DataCloneError: function is not cloneable (at "
        .. (".n"):rep(16) .. "...(17 more)..." .. (".n"):rep(15) .. ".f)", err)
    end)

    it(name .. " counts 16 steps at each end of a bad key's table", function()
      local root = chain(49, "leaf")
      local cur = root
      for _ = 1, 49 do cur = cur.n end
      cur[print] = true  -- a key in the table 49 steps down
      local err = helper.error_of(clone, root)
      assert.equal("DataCloneError: function is not cloneable (as a key in "
        .. (".n"):rep(16) .. "...(17 more)..." .. (".n"):rep(16) .. ")", err)
      cur = chain(47, "leaf")
      local t = cur
      for _ = 1, 47 do t = t.n end
      t.n = { [print] = true }  -- 48 steps: in full
      err = helper.error_of(clone, cur)
      assert.equal("DataCloneError: function is not cloneable (as a key in "
        .. (".n"):rep(48) .. ")", err)
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
