local mc = require "messagechannel"
local helper = require "spec.helper"

local error_of = helper.error_of

-- Metatables registered once per name, on first use.
local classes = {}
local function class(name)
  local mt = classes[name]
  if not mt then
    mt = { __index = {} }
    mc.register(name, mt)
    classes[name] = mt
  end
  return mt
end

local function bad_argument(...)
  local err = error_of(mc.register, ...)
  assert.truthy(err:find("bad argument", 1, true), err)
end

local ways = {
  {
    name = "mc.structuredClone",
    clone = function(v) return mc.structuredClone(v) end,
  },
  {
    name = "mc.deserialize(mc.serialize(v))",
    clone = function(v) return mc.deserialize(mc.serialize(v)) end,
  },
}

describe("registered metatables", function()
  describe("mc.register", function()
    it("rejects a name that is not a non-empty string", function()
      local mt = {}
      bad_argument(nil, mt)
      bad_argument("", mt)
      bad_argument({}, mt)
      bad_argument(true, mt)
    end)

    it("rejects a metatable that is not a table", function()
      bad_argument("spec04.notatable", nil)
      bad_argument("spec04.notatable", "mt")
      bad_argument("spec04.notatable", 1)
      bad_argument("spec04.notatable", print)
    end)

    it("accepts the same name and metatable twice", function()
      local mt = {}
      mc.register("spec04.twice", mt)
      mc.register("spec04.twice", mt)
      assert.equal(mt, getmetatable(mc.structuredClone(setmetatable({}, mt))))
    end)

    it("raises on a name registered again with another metatable, keeping the first", function()
      local first = {}
      mc.register("spec04.name", first)
      assert.is_false(pcall(mc.register, "spec04.name", {}))
      assert.equal(first, getmetatable(mc.structuredClone(setmetatable({}, first))))
    end)

    it("raises on a metatable registered again under another name, keeping it", function()
      local mt = {}
      mc.register("spec04.first", mt)
      assert.is_false(pcall(mc.register, "spec04.second", mt))
      assert.equal(mt, getmetatable(mc.structuredClone(setmetatable({}, mt))))
      local c = mc.deserialize(mc.serialize(setmetatable({}, mt)))
      assert.equal(mt, getmetatable(c))
    end)

    it("leaves the name free after a rejected registration", function()
      local mt = {}
      mc.register("spec04.taken", mt)
      assert.is_false(pcall(mc.register, "spec04.untaken", mt))
      local other = {}
      mc.register("spec04.untaken", other)
      assert.equal(other, getmetatable(mc.structuredClone(setmetatable({}, other))))
    end)
  end)

  for _, way in ipairs(ways) do
    local clone = way.clone

    describe(way.name, function()
      it("gives the clone the registered metatable itself", function()
        local mt = class("spec04.point")
        mt.__index.norm1 = function(p) return math.abs(p.x) + math.abs(p.y) end
        local c = clone(setmetatable({ x = 3, y = -4 }, mt))
        assert.is_true(rawequal(mt, getmetatable(c)))
        assert.equal(7, c:norm1())
      end)

      it("keeps registered metatables on nested tables and drops the others", function()
        local a, b = class("spec04.a"), class("spec04.b")
        local t = {
          one = setmetatable({}, a),
          list = { setmetatable({ v = 1 }, b), setmetatable({}, {}) },
          deep = { deeper = { setmetatable({}, a) } },
        }
        local c = clone(t)
        assert.is_nil(getmetatable(c))
        assert.equal(a, getmetatable(c.one))
        assert.equal(b, getmetatable(c.list[1]))
        assert.equal(1, c.list[1].v)
        assert.is_nil(getmetatable(c.list[2]))
        assert.equal(a, getmetatable(c.deep.deeper[1]))
      end)

      it("drops a metatable that is not registered", function()
        local c = clone(setmetatable({ x = 1 }, { __index = { y = 2 } }))
        assert.is_nil(getmetatable(c))
        assert.equal(1, c.x)
        assert.is_nil(c.y)
      end)

      it("keeps shared references and cycles of registered tables", function()
        local mt = class("spec04.node")
        local node = setmetatable({}, mt)
        node.self = node
        local c = clone({ node, node })
        assert.equal(c[1], c[2])
        assert.is_false(rawequal(node, c[1]))
        assert.equal(c[1], rawget(c[1], "self"))
        assert.equal(mt, getmetatable(c[1]))
      end)

      it("fills the clone without running the registered metamethods", function()
        local mt, log = helper.trap_metatable({ "__index", "__newindex",
          "__pairs", "__len", "__eq", "__call", "__tostring" })
        local name = "spec04.traps." .. way.name
        mc.register(name, mt)
        local inner = setmetatable({ 1, 2 }, mt)
        local t = setmetatable({ x = 1, inner = inner, again = inner }, mt)
        local ok, c = pcall(clone, t)
        assert.same({}, log)
        assert.is_true(ok, c)
        assert.is_true(rawequal(mt, getmetatable(c)))
        assert.equal(1, rawget(c, "x"))
        local ci = rawget(c, "inner")
        assert.is_true(rawequal(ci, rawget(c, "again")))
        assert.is_true(rawequal(mt, getmetatable(ci)))
        assert.equal(2, rawget(ci, 2))
      end)

      it("keeps a registered metatable that protects itself with __metatable", function()
        local mt = { __metatable = "locked", __index = { kind = "locked" } }
        mc.register("spec04.locked." .. way.name, mt)
        local c = clone({ v = setmetatable({}, mt) })
        assert.equal("locked", getmetatable(c.v))
        assert.equal("locked", c.v.kind)
      end)
    end)
  end
end)
