-- mc.structuredClone under allocation failure: a copy, or an error with
-- the transfer list untouched.

local mc = require "messagechannel"
local H = require "oomcheck"

local cases = {}

cases[#cases + 1] = {
  name = "value",
  setup = function()
    return { v = H.sample(30) }
  end,
  action = function(c)
    return mc.structuredClone(c.v)
  end,
  check = function(c, ok, r)
    if ok then
      H.expect(r ~= c.v and H.same(r, c.v), "the clone differs")
      H.expect(r.b == r.c and r.self == r, "the clone lost its shared "
               .. "references")
    end
    H.expect(H.same(mc.structuredClone(c.v), c.v), "a later clone differs")
  end,
}

-- A Buffer in the data, not in the list: copied.
cases[#cases + 1] = {
  name = "copy",
  setup = function()
    local buf = mc.Buffer("copied bytes")
    return { buf = buf, v = { b = buf, t = { 1, 2 } } }
  end,
  action = function(c)
    return mc.structuredClone(c.v)
  end,
  check = function(c, ok, r)
    H.expect(not c.buf.detached and c.buf:sub() == "copied bytes",
             "the Buffer changed")
    if ok then
      H.expect(r.b ~= c.buf and r.b:sub() == "copied bytes",
               "the copy of the Buffer holds %q", r.b:sub())
    end
  end,
}

cases[#cases + 1] = {
  name = "buffer",
  setup = function()
    local buf = mc.Buffer("moved bytes")
    return { buf = buf, v = { b = buf }, opts = { transfer = { buf } } }
  end,
  action = function(c)
    return mc.structuredClone(c.v, c.opts)
  end,
  check = function(c, ok, r)
    if ok then
      H.expect(c.buf.detached, "structuredClone completed, and the Buffer "
               .. "is not detached")
      H.expect(r.b ~= c.buf and r.b:sub() == "moved bytes",
               "the moved Buffer holds %q", r.b:sub())
    else
      H.expect(not c.buf.detached, "structuredClone raised, and the Buffer "
               .. "is detached")
      H.expect(c.buf:sub() == "moved bytes", "the Buffer holds %q",
               c.buf:sub())
    end
  end,
}

cases[#cases + 1] = {
  name = "port",
  setup = function()
    local ch = mc.MessageChannel()
    ch.port2:postMessage("queued")
    return { p1 = ch.port1, p2 = ch.port2, v = { p = ch.port1 },
             opts = { transfer = { ch.port1 } } }
  end,
  action = function(c)
    return mc.structuredClone(c.v, c.opts)
  end,
  check = function(c, ok, r)
    local p = c.p1
    if ok then
      H.dead(c.p1, "the moved port")
      p = r.p
      H.expect(p ~= nil and p ~= c.p1, "the clone has no new port")
    end
    local got = H.drain(p, "the port's queue")
    H.expect(#got == 1 and got[1] == "queued", "the port's queue holds %s",
             H.show(got))
    H.delivers(p, c.p2, "port -> partner")
    H.delivers(c.p2, p, "partner -> port")
  end,
}

-- A registered metatable travels by name.
cases[#cases + 1] = {
  name = "register",
  setup = function()
    local mt = { __index = {} }
    mc.register("oom.Point", mt)
    return { mt = mt, v = { setmetatable({ x = 1 }, mt),
                            setmetatable({ x = 2 }, mt) } }
  end,
  action = function(c)
    return mc.structuredClone(c.v)
  end,
  check = function(c, ok, r)
    if ok then
      H.expect(getmetatable(r[1]) == c.mt and getmetatable(r[2]) == c.mt
               and r[2].x == 2, "the clone lost its metatables")
    end
    local again = mc.structuredClone(c.v)
    H.expect(getmetatable(again[1]) == c.mt, "a later clone lost its "
             .. "metatable")
  end,
}

-- A chain deeper than the copy goes depth first (64, codec.c's
-- COPY_DEPTH) more than twice: the deeper tables wait in its queue and
-- are copied from depth 0 again, twice. (Each level past that repeats
-- the same allocations.)
cases[#cases + 1] = {
  name = "deep",
  setup = function()
    local v = {}
    local t = v
    for i = 1, 140 do
      t[1] = { i }
      t = t[1]
    end
    return { v = v }
  end,
  action = function(c)
    return mc.structuredClone(c.v)
  end,
  check = function(c, ok, r)
    if ok then H.expect(H.same(r, c.v), "the clone differs") end
  end,
}

-- An uncloneable value: the DataCloneError names where it is, and
-- building that message allocates.
cases[#cases + 1] = {
  name = "error",
  raises = "DataCloneError:",
  setup = function()
    return { v = { a = { b = { print } } } }
  end,
  action = function(c)
    return mc.structuredClone(c.v)
  end,
  check = function(_, ok, r)
    H.expect(not ok, "cloning a function completed")
    H.expect(r:find("DataCloneError:", 1, true) or r:find("not enough memory",
             1, true), "the error is %s", r)
  end,
}

return cases
