-- getmetatable(obj).__gc(obj) is the base library's: any code can call a
-- finalizer by hand. Called on a Buffer or a port that a postMessage
-- waiting for room had borrowed (its transfer list), it freed what the
-- waiting message still pointed to: the message later sent freed bytes
-- (a Buffer read another's bytes, then a double free aborted the
-- process) or a port without its pair (a crash). No input crashes the
-- process (API.md 9): a lent Buffer keeps its bytes until its own
-- finalizer; a lent port is let go and its pair closed, as its collection
-- would, and the message moves it closed.

local mc = require "messagechannel"
local helper = require "spec.helper"

local park, park_done = helper.park, helper.park_done

describe("regress: a finalizer called by hand", function()
  -- what each spec made is collected after it: nothing may be freed twice
  after_each(function()
    collectgarbage()
    collectgarbage()
    mc.run()
  end)

  -- A channel whose port1 cannot post until port2 takes its first message.
  local function full()
    local ch = mc.MessageChannel({ capacity = 1 })
    assert.is_true(ch.port1:postMessage("first"))
    return ch
  end

  -- Spawns a task whose post of value (transfer list {obj}) waits for
  -- room, calls obj's __gc by hand, makes room; returns the message that
  -- then arrives and what the post returned.
  local function post_after_hand_gc(ch, value, obj)
    local posted
    mc.spawn(function() posted = ch.port1:postMessage(value, { obj }) end)
    mc.step()
    assert.is_nil(posted, "the post did not wait")
    getmetatable(obj).__gc(obj)
    assert.equal("first", ch.port2:receive(0).data)
    mc.run()
    return ch.port2:receive(0), posted
  end

  it("on a Buffer a waiting post borrows: the message gets its bytes", function()
    local ch = full()
    local bytes = string.rep("buffer bytes ", 400)
    local b = mc.Buffer(bytes)
    local e, posted = post_after_hand_gc(ch, b, b)
    assert.is_true(posted)
    assert.is_true(b.detached)
    assert.equal(bytes, e.data:sub())
    -- more Buffers, and everything collected: nothing is freed twice
    for _ = 1, 10 do mc.Buffer(string.rep("z", #bytes)) end
    assert.equal(bytes, e.data:sub())
  end)

  it("on a port a waiting post borrows: the message moves it, closed as its finalizer left it",
     function()
    local ch, o = full(), mc.MessageChannel()
    local closed = false
    o.port1.onclose = function() closed = true end
    local e, posted = post_after_hand_gc(ch, "port", o.port2)
    assert.is_true(posted)
    assert.equal(1, #e.ports)
    assert.same({ false, "closed" }, { e.ports[1]:postMessage("nobody") })
    assert.is_true(closed)  -- its partner heard the close
  end)

  it("on a Buffer or a port whose waiting post is given up: the Buffer is whole, the port closed",
     function()
    local ch, o = full(), mc.MessageChannel()
    local b = mc.Buffer("kept")
    local posted
    local co = mc.spawn(function()
      posted = { ch.port1:postMessage("x", { transfer = { b, o.port2 }, timeout = 0.01 }) }
    end)
    mc.step()
    getmetatable(b).__gc(b)
    getmetatable(o.port2).__gc(o.port2)
    mc.run()
    assert.equal("dead", coroutine.status(co))
    assert.same({ false, "timeout" }, posted)
    assert.equal("kept", b:sub())
    assert.is_true(b:write(1, "K") == b)
    assert.same({ false, "closed" }, { o.port2:postMessage("nobody") })
    ch.port1:close()
  end)

  -- A task waiting in receive holds the port: only a call by hand gets
  -- here. The tasks were never resumed (the port's id was given back, and
  -- the close it had for them went nowhere).
  it("on a port with tasks waiting in receive: they get nil, \"closed\", as after close()",
     function()
    local ch = mc.MessageChannel()
    local got = {}
    mc.spawn(function() got[1] = { ch.port2:receive() } end)
    mc.spawn(function() got[2] = { mc.receive({ ch.port2 }) } end)
    mc.step()
    assert.same({}, got)
    getmetatable(ch.port2).__gc(ch.port2)
    mc.run()
    assert.same({ { nil, "closed" }, { nil, "closed" } }, got)
    assert.same({ false, "closed" }, { ch.port1:postMessage("nobody") })
  end)

  -- Its __gc by hand with no task waiting gives the port's id back: no
  -- close was left to wait for. receive() waited for ever in a task (and
  -- raised "would wait forever" outside one): a port let go is closed.
  it("on a port, then receive: nil, \"closed\" at once, in a task or not", function()
    local ch = mc.MessageChannel()
    getmetatable(ch.port2).__gc(ch.port2)
    assert.same({ nil, "closed" }, { ch.port2:receive() })
    assert.same({ nil, "closed" }, { ch.port2:receive(0) })
    assert.same({ nil, "closed" }, { ch.port2:receive(10) })
    local got
    mc.spawn(function() got = { ch.port2:receive() } end)
    assert.is_true(mc.run(60), "mc.run() did not end")
    assert.same({ nil, "closed" }, got)
  end)

  -- The same from a finalizer that the read of the port's own message
  -- runs (the decode allocates): the read frees the message and delivers
  -- nothing, and the receive that made it is over (on Lua 5.4 the read
  -- runs the finalizer; elsewhere it runs wherever the collector calls it:
  -- see helper.park).
  it("on a port whose receive is reading its message: that receive gets nil, \"closed\"",
     function()
    local value = {}
    for i = 1, 5000 do value[i] = "string " .. i end
    local ch = mc.MessageChannel()
    assert.is_true(ch.port1:postMessage(value))
    local action
    local function fin()
      local a = action
      if a then action = nil; a() end
    end
    local got
    mc.spawn(function()
      park(fin)
      action = function() getmetatable(ch.port2).__gc(ch.port2) end
      got = { ch.port2:receive() }
    end)
    local ok = mc.run(60)
    park_done()
    assert.is_true(ok, "mc.run() did not end")
    assert.is_table(got, "the task ended with an error")
    if got[1] ~= nil then  -- the finalizer ran once the message was taken
      assert.equal(5000, #got[1].data)
      assert.same({ nil, "closed" }, { ch.port2:receive() })
    else
      assert.same({ nil, "closed" }, got)
    end
  end)

  -- A Worker's handle, the scheduler's watch on its thread, is reachable
  -- with next() on the Worker. Its __gc by hand let the thread go, and
  -- the scheduler waited for an end it could no longer see: mc.run()
  -- never returned.
  it("on a Worker's handle: the worker is stopped, as by terminate() #threads",
     function()
    local w = mc.Worker("require('messagechannel').sleep(60)", { eval = true })
    local codes = {}
    w.onexit = function(e) codes[#codes + 1] = e.code end
    local handle = select(2, next(w)).handle  -- the Worker's fields
    assert.equal("userdata", type(handle))
    getmetatable(handle).__gc(handle)
    assert.is_true(mc.run(60), "mc.run() did not end")
    assert.same({ 1 }, codes)
  end)

  -- worker_result, the scheduler's look at a Worker that ended, made the
  -- handle unwatched before it pushed the end's fields: a finalizer run
  -- by those pushes could call the handle's __gc by hand, which freed the
  -- thread's record, and the pushes read the freed record (seen with the
  -- AddressSanitizer run, make check). It is unwatched once they are
  -- made. On Lua 5.4 the collector is parked in its finalizer phase, so
  -- the pushes run finalizers; each one calls the handle's __gc.
  it("on a Worker's handle as the scheduler reads the worker's end #threads", function()
    local core = require "messagechannel.core"
    local w = mc.Worker("error(string.rep('boom ', 20))", { eval = true })
    local handle = select(2, next(w)).handle
    local gc = getmetatable(handle).__gc
    local inside, calls = false, 0
    local function fin()
      if inside then calls = calls + 1; gc(handle) end
    end
    local heard, codes = {}, {}
    w.onerror = function(e) heard[#heard + 1] = tostring(e.error) end
    w.onexit = function(e) codes[#codes + 1] = e.code end
    local real = core.worker_result
    core.worker_result = function(h)
      park(fin)
      inside = true
      -- no finalizer runs while the worker has not ended: false is pushed
      -- without an allocation
      local done, code, err, tb, text
      repeat done, code, err, tb, text = real(h) until done
      inside = false
      core.worker_result = real
      return done, code, err, tb, text
    end
    local ok = pcall(mc.run, 60)
    core.worker_result = real
    inside = false
    park_done()
    assert.is_true(ok)
    assert.same({ 1 }, codes)
    assert.equal(1, #heard)
    assert.matches("boom boom", heard[1], 1, true)
    if _VERSION == "Lua 5.4" then assert.is_true(calls > 0) end
  end)
end)
