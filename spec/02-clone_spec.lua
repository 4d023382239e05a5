local mc = require "messagechannel"
local helper = require "spec.helper"

local error_of, ends_with = helper.error_of, helper.ends_with
local same_graph, same_number = helper.same_graph, helper.same_number
local math_type = helper.math_type

-- The clone rules hold for a clone made in memory and for one that went
-- through the wire format, so every rule runs for both.
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

local function count(t)
  local n = 0
  for _ in next, t do n = n + 1 end
  return n
end

local function noop() end

describe("clone rules", function()
  for _, way in ipairs(ways) do
    local clone = way.clone

    -- Asserts that cloning v fails with exactly this message (after an
    -- optional position prefix).
    local function rejects(v, message)
      local err = error_of(clone, v)
      assert.truthy(ends_with(err, message),
        ("expected %q, got %q"):format(message, err))
    end

    describe(way.name, function()
      -------------------------------------------------------------- values

      it("keeps nil and booleans", function()
        assert.is_nil(clone(nil))
        assert.is_true(clone(true))
        assert.is_false(clone(false))
        local c = clone({ t = true, f = false })
        assert.is_true(c.t)
        assert.is_false(c.f)
      end)

      it("keeps strings byte for byte, NUL and all 256 byte values included", function()
        local strings = { "", "\0", "a\0b", "\0\0\0", helper.all_bytes,
                          helper.all_bytes:rep(400) }
        for _, s in ipairs(strings) do
          assert.equal(s, clone(s))
        end
        local c = clone({ [helper.all_bytes] = helper.all_bytes, ["\0"] = "\0" })
        assert.equal(helper.all_bytes, c[helper.all_bytes])
        assert.equal("\0", c["\0"])
        assert.equal(2, count(c))
      end)

      it("keeps floats exactly", function()
        local floats = { 0.5, -1.25, 0.1, 1 / 3, 2 ^ 53, -(2 ^ 53), 2 ^ 63,
                         1e308, -1e308, 2 ^ -1074, 2.2250738585072014e-308 }
        for _, x in ipairs(floats) do
          assert.is_true(same_number(x, clone(x)), tostring(x))
        end
        local c = clone(floats)
        for i, x in ipairs(floats) do
          assert.is_true(same_number(x, c[i]), tostring(x))
        end
      end)

      it("keeps the sign of zero", function()
        local z = clone(helper.negzero)
        assert.equal(0, z)
        assert.equal(-math.huge, 1 / z)
        assert.equal(-math.huge, 1 / clone({ helper.negzero })[1])
        assert.equal(math.huge, 1 / clone(0.0))
      end)

      it("keeps NaN", function()
        local x = clone(helper.nan)
        assert.is_number(x)
        assert.is_true(x ~= x)
        local y = clone({ nan = helper.nan }).nan
        assert.is_true(y ~= y)
      end)

      it("keeps infinities", function()
        assert.equal(math.huge, clone(math.huge))
        assert.equal(-math.huge, clone(-math.huge))
        local c = clone({ math.huge, -math.huge })
        assert.equal(math.huge, c[1])
        assert.equal(-math.huge, c[2])
      end)

      it("keeps an integer an integer and a float a float (5.3+)", function()
        if not math_type then
          -- one number type: the values still have to survive
          assert.equal(3, clone(3))
          assert.equal(-3, clone(-3.0))
          return
        end
        local maxi, mini = helper.maxinteger, helper.mininteger
        local integers = { 0, 3, -3, maxi, mini, maxi - 1, mini + 1,
                           9007199254740993 }
        for _, n in ipairs(integers) do
          local c = clone(n)
          assert.equal("integer", math_type(c), tostring(n))
          assert.equal(n, c)
        end
        for _, x in ipairs({ 3.0, -3.0, 0.0, helper.negzero, 2 ^ 63, -(2 ^ 63) }) do
          local c = clone(x)
          assert.equal("float", math_type(c), tostring(x))
          assert.is_true(same_number(x, c), tostring(x))
        end
        local c = clone({ 3, 3.0, int = maxi, flt = 1.0 })
        assert.equal("integer", math_type(c[1]))
        assert.equal("float", math_type(c[2]))
        assert.equal(maxi, c.int)
        assert.equal("integer", math_type(c.int))
        assert.equal("float", math_type(c.flt))
      end)

      -------------------------------------------------------------- tables

      it("makes a new table with the same entries", function()
        local t = {
          1, 2, 3, "four",
          x = "y", [1.5] = true, [true] = false, [false] = "f", [-7] = 7,
          [1e6] = "sparse", ["a b"] = { a = { b = "c" } },
        }
        local c = clone(t)
        assert.is_table(c)
        assert.is_false(rawequal(t, c))
        assert(same_graph(t, c))
      end)

      it("clones large tables", function()
        local t = {}
        for i = 1, 100000 do t[i] = i * 2 end
        for i = 1, 10000 do t["k" .. i] = { i } end
        local c = clone(t)
        assert(same_graph(t, c))
      end)

      it("gives a clone that shares nothing with the original", function()
        local t = { nested = { a = { b = "c" } }, x = 1 }
        local c = clone(t)
        c.nested.a.b = "changed"
        c.x = 2
        assert.equal("c", t.nested.a.b)
        assert.equal(1, t.x)
        t.nested.a.b = "again"
        assert.equal("changed", c.nested.a.b)
      end)

      it("clones a table reached twice once, so shared references stay shared", function()
        local sub = { v = 1 }
        local t = { a = sub, b = sub, list = { sub } }
        local c = clone(t)
        assert.equal(c.a, c.b)
        assert.equal(c.a, c.list[1])
        assert.is_false(rawequal(sub, c.a))
        assert.equal(1, c.a.v)
        assert(same_graph(t, c))
      end)

      it("keeps cycles", function()
        local t = {}
        t.self = t
        local c = clone(t)
        assert.is_false(rawequal(t, c))
        assert.equal(c, c.self)

        local a, b = {}, {}
        a.b, b.a = b, a
        local ca = clone(a)
        assert.is_false(rawequal(a, ca))
        assert.is_false(rawequal(b, ca.b))
        assert.equal(ca, ca.b.a)
      end)

      it("keeps the identity of tables used as keys", function()
        local k = { name = "key" }
        local t = { [k] = "value", ref = k }
        local c = clone(t)
        assert.equal(2, count(c))
        assert.is_table(c.ref)
        assert.is_false(rawequal(k, c.ref))
        assert.equal("key", c.ref.name)
        assert.equal("value", c[c.ref])

        local s = {}
        s[s] = s
        local cs = clone(s)
        assert.is_false(rawequal(s, cs))
        assert.equal(cs, cs[cs])
        assert.equal(1, count(cs))
      end)

      it("traverses raw: no metamethod of the message runs", function()
        local log = {}
        local function trap(name)
          return function()
            log[#log + 1] = name
            error("metamethod " .. name .. " ran", 2)
          end
        end
        local mt = {}
        for _, e in ipairs({ "__index", "__newindex", "__pairs", "__ipairs",
                             "__len", "__eq", "__lt", "__le", "__call",
                             "__concat", "__tostring" }) do
          mt[e] = trap(e)
        end
        local inner = setmetatable({ 1, 2, x = "y" }, mt)
        local key = setmetatable({ k = true }, mt)
        local t = setmetatable({ inner = inner, again = inner, [key] = "key",
                                 empty = setmetatable({}, mt) }, mt)
        local ok, c = pcall(clone, t)
        assert.same({}, log)
        assert.is_true(ok, c)
        assert(same_graph(t, c))
      end)

      it("copies only raw entries, not what __index provides", function()
        local proxy = setmetatable({}, { __index = { a = 1 } })
        local c = clone({ proxy = proxy })
        assert.is_nil(next(c.proxy))
        assert.is_nil(c.proxy.a)
      end)

      it("drops metatables that are not registered", function()
        local mt = { __index = { method = noop } }
        local t = setmetatable({ x = 1, sub = setmetatable({ y = 2 }, {}) }, mt)
        local c = clone(t)
        assert.is_nil(getmetatable(c))
        assert.is_nil(getmetatable(c.sub))
        assert.is_nil(c.method)
        assert.equal(1, c.x)
        assert.equal(2, c.sub.y)
        assert.equal(mt, getmetatable(t)) -- the original keeps its own
      end)

      -------------------------------------------------------------- nesting

      it("clones 10,000 levels of nesting", function()
        local t = helper.chain(10000)
        assert(helper.same_chain(t, clone(t)))
      end)

      it("clones 10,000 levels of tables nested as keys", function()
        local t = helper.key_chain(10000)
        assert(helper.same_key_chain(t, clone(t)))
      end)

      it("clones 200,000 levels of nesting #slow", function()
        local t = helper.chain(200000)
        assert(helper.same_chain(t, clone(t)))
      end)

      it("clones 200,000 levels of tables nested as keys #slow", function()
        local t = helper.key_chain(200000)
        assert(helper.same_key_chain(t, clone(t)))
      end)

      -------------------------------------------------------------- errors

      it("rejects a function at the top level, naming no path", function()
        local err = error_of(clone, print)
        assert.truthy(ends_with(err, "DataCloneError: function is not cloneable"), err)
        assert.falsy(err:find("(a", 1, true), err)
      end)

      it("rejects a coroutine as a thread", function()
        rejects(coroutine.create(noop), "DataCloneError: thread is not cloneable")
        rejects({ co = coroutine.create(noop) },
          "DataCloneError: thread is not cloneable (at .co)")
      end)

      it("rejects a userdata that is not a Buffer", function()
        rejects(io.stdout, "DataCloneError: userdata is not cloneable")
        rejects({ out = io.stdout },
          "DataCloneError: userdata is not cloneable (at .out)")
      end)

      it("names the path of a nested function", function()
        rejects({ handlers = { 1, print } },
          "DataCloneError: function is not cloneable (at .handlers[2])")
        rejects({ items = { 1, 2, { cb = print } } },
          "DataCloneError: function is not cloneable (at .items[3].cb)")
        rejects({ _x1 = { y2 = { Z = print } } },
          "DataCloneError: function is not cloneable (at ._x1.y2.Z)")
      end)

      it("quotes string keys that are not identifiers", function()
        rejects({ ["a b"] = print },
          'DataCloneError: function is not cloneable (at ["a b"])')
        rejects({ x = { ['a"b\\c'] = print } },
          'DataCloneError: function is not cloneable (at .x["a\\"b\\\\c"])')
        rejects({ ["1abc"] = print },
          'DataCloneError: function is not cloneable (at ["1abc"])')
        rejects({ [""] = print },
          'DataCloneError: function is not cloneable (at [""])')
      end)

      it("quotes string keys that are reserved words", function()
        rejects({ ["end"] = print },
          'DataCloneError: function is not cloneable (at ["end"])')
      end)

      it("writes integer keys in brackets", function()
        rejects({ [3] = { x = { [-2] = print } } },
          "DataCloneError: function is not cloneable (at [3].x[-2])")
      end)

      it("writes float keys in brackets", function()
        rejects({ [1.5] = print },
          "DataCloneError: function is not cloneable (at [1.5])")
      end)

      it("writes boolean keys in brackets", function()
        rejects({ [true] = print },
          "DataCloneError: function is not cloneable (at [true])")
        rejects({ [false] = { f = print } },
          "DataCloneError: function is not cloneable (at [false].f)")
      end)

      it("writes table keys as [table]", function()
        rejects({ [{}] = print },
          "DataCloneError: function is not cloneable (at [table])")
        rejects({ a = { [{}] = { cb = print } } },
          "DataCloneError: function is not cloneable (at .a[table].cb)")
      end)

      it("writes the module's objects as keys by their type", function()
        local buf = mc.Buffer(1)
        rejects({ [buf] = print },
          "DataCloneError: function is not cloneable (at [Buffer])")
        rejects({ a = { [buf] = { cb = print } } },
          "DataCloneError: function is not cloneable (at .a[Buffer].cb)")
      end)

      it("names the table that holds a bad key", function()
        rejects({ x = { [print] = 1 } },
          "DataCloneError: function is not cloneable (as a key in .x)")
        rejects({ a = { [2] = { [coroutine.create(noop)] = true } } },
          "DataCloneError: thread is not cloneable (as a key in .a[2])")
      end)

      it("says when a bad key is in the top-level table", function()
        rejects({ [print] = 1 },
          "DataCloneError: function is not cloneable (as a key at top level)")
        rejects({ [io.stdout] = 1 },
          "DataCloneError: userdata is not cloneable (as a key at top level)")
      end)

      it("changes nothing when it raises, and the next clone works", function()
        local function build()
          local sub = { v = 1 }
          local t = { sub, { sub, { print } }, [sub] = sub, s = "x" }
          return t, sub
        end
        local t, sub = build()
        local err = error_of(clone, t)
        assert.truthy(err:find("DataCloneError:", 1, true), err)
        assert(same_graph(build(), t))
        assert.is_nil(getmetatable(t))
        assert.is_nil(getmetatable(sub))

        sub.v = 2
        local c = clone({ sub, sub })
        assert.equal(c[1], c[2])
        assert.is_false(rawequal(sub, c[1]))
        assert.equal(2, c[1].v)
        assert.equal(1, count(c[1]))
      end)

      -------------------------------------------------------------- Buffers

      it("copies a Buffer into a new Buffer with the same bytes", function()
        local b = mc.Buffer("ab\0\255")
        local c = clone(b)
        assert.is_true(helper.is_buffer(c))
        assert.is_false(rawequal(b, c))
        assert.equal("ab\0\255", c:sub())
        local t = clone({ buf = b })
        assert.is_true(helper.is_buffer(t.buf))
        assert.is_false(rawequal(b, t.buf))
        assert.equal("ab\0\255", t.buf:sub())
      end)

      it("copies an empty Buffer", function()
        local c = clone(mc.Buffer(0))
        assert.is_true(helper.is_buffer(c))
        assert.equal(0, #c)
      end)

      it("gives a copy that does not share bytes with the original", function()
        local b = mc.Buffer("abc")
        local c = clone({ b })[1]
        c:write(1, "X")
        assert.equal("abc", b:sub())
        b:write(3, "Z")
        assert.equal("Xbc", c:sub())
      end)

      it("leaves the original Buffer attached", function()
        local b = mc.Buffer("abc")
        local c = clone({ b })[1]
        assert.is_false(b.detached)
        assert.is_false(c.detached)
        assert.equal(3, #b)
        assert.equal("abc", b:sub())
      end)

      it("copies a Buffer reached twice once", function()
        local b = mc.Buffer("shared")
        local c = clone({ b, b, x = { b } })
        assert.equal(c[1], c[2])
        assert.equal(c[1], c.x[1])
        assert.is_false(rawequal(b, c[1]))
        assert.equal("shared", c[1]:sub())
      end)

      it("copies a Buffer used as a key and a value once", function()
        local b = mc.Buffer("key")
        local c = clone({ [b] = b })
        local k, v = next(c)
        assert.is_true(helper.is_buffer(k))
        assert.equal(k, v)
        assert.is_false(rawequal(b, k))
        assert.equal("key", k:sub())
      end)
    end)
  end

  describe("mc.structuredClone options", function()
    it("accepts no options, an empty table and an empty transfer list", function()
      for _, options in ipairs({ {}, { transfer = {} } }) do
        local c = mc.structuredClone({ x = { 1 } }, options)
        assert.equal(1, c.x[1])
      end
    end)

    it("rejects options that are not a table", function()
      local err = helper.error_of(mc.structuredClone, {}, "transfer")
      assert.truthy(err:find("bad argument #2", 1, true), err)
    end)

    it("rejects a transfer that is not an array", function()
      local err = helper.error_of(mc.structuredClone, {}, { transfer = 1 })
      assert.truthy(err:find("bad argument #2", 1, true), err)
    end)

    it("moves a Buffer in the transfer list instead of copying it", function()
      local b = mc.Buffer("abc")
      local c = mc.structuredClone({ b, b }, { transfer = { b } })
      assert.is_true(b.detached)
      assert.equal(0, #b)
      assert.equal("abc", c[1]:sub())
      assert.equal(c[1], c[2])
    end)
  end)
end)
