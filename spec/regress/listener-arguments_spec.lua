-- port:addEventListener("message") without a listener raised TypeError:,
-- and port:removeEventListener("message") without one raised nothing. A
-- missing argument is a wrong argument type (API.md section 9): both raise
-- `bad argument #2`, numbered as Lua numbers the arguments of a method call
-- (type #1, listener #2, options #3). The other argument rules stay.

local mc = require "messagechannel"
local helper = require "spec.helper"

local noop = helper.noop

-- The errors of p:addEventListener(...) and p:removeEventListener(...),
-- called with method syntax so that the arguments are numbered as for a
-- method call. Neither call is a tail call, so its name stays known on
-- every Lua version.
local function add_error(p, ...)
  local args = helper.pack(...)
  return helper.error_of(function()
    p:addEventListener(helper.unpack(args, 1, args.n))
  end)
end

local function remove_error(p, ...)
  local args = helper.pack(...)
  return helper.error_of(function()
    p:removeEventListener(helper.unpack(args, 1, args.n))
  end)
end

-- Asserts that s contains needle, plainly.
local function assert_has(s, needle)
  assert.truthy(s:find(needle, 1, true) ~= nil, ("expected %q in %q"):format(needle, s))
end

-- A listener that appends tag to log.
local function logger(log, tag)
  return function() log[#log + 1] = tag end
end

describe("regress: arguments of port:addEventListener and port:removeEventListener",
  function()
    local errors, catch, release = helper.error_hooks(2)
    before_each(catch)
    after_each(release)

    -- Asserts that port p has no message listener: a dispatch calls nothing
    -- and reports nothing, and a message posted at p (started) is held for
    -- receive instead of being delivered. `from` is p's partner.
    local function has_no_message_listener(p, from)
      assert.is_true(p:dispatchEvent({ type = "message" }))
      p:start()
      assert.is_true(from:postMessage("held"))
      helper.run()
      assert.same({}, errors)
      local ev = p:receive(0)
      assert.is_table(ev)
      assert.equal("held", ev.data)
    end

    describe("port:addEventListener", function()
      it("raises bad argument #2 for a missing listener, and adds nothing", function()
        local ch = mc.MessageChannel()
        local p = ch.port2
        assert_has(add_error(p, "message"), "bad argument #2 to 'addEventListener'")
        assert_has(add_error(p, "message", nil), "bad argument #2 to 'addEventListener'")
        has_no_message_listener(p, ch.port1)
      end)

      it("raises bad argument #2 for a missing listener given options, and adds nothing",
        function()
          local ch = mc.MessageChannel()
          local p = ch.port2
          assert_has(add_error(p, "message", nil, { once = true }),
                     "bad argument #2 to 'addEventListener'")
          has_no_message_listener(p, ch.port1)
        end)

      it("still raises bad argument #1 for a type that is not a string", function()
        local p = mc.MessageChannel().port1
        assert_has(add_error(p, 1, noop), "bad argument #1 to 'addEventListener'")
        assert_has(add_error(p, nil, noop), "bad argument #1 to 'addEventListener'")
      end)

      it("still raises bad argument #3 for options not a table, a boolean or nil", function()
        local ch = mc.MessageChannel()
        local p = ch.port2
        local got = {}
        for _, options in ipairs({ 42, "once", noop }) do
          assert_has(add_error(p, "message", logger(got, "f"), options),
                     "bad argument #3 to 'addEventListener'")
        end
        has_no_message_listener(p, ch.port1)
        assert.same({}, got)
      end)

      it("still raises TypeError: for a listener neither callable nor with handleEvent",
        function()
          local ch = mc.MessageChannel()
          local p = ch.port2
          for _, listener in ipairs({ 42, "f", true, {} }) do
            assert_has(add_error(p, "message", listener), "TypeError:")
          end
          has_no_message_listener(p, ch.port1)
        end)
    end)

    describe("port:removeEventListener", function()
      it("raises bad argument #2 for a missing listener, and removes nothing", function()
        local p = mc.MessageChannel().port1
        local got = {}
        p:addEventListener("message", logger(got, "kept"))
        assert_has(remove_error(p, "message"), "bad argument #2 to 'removeEventListener'")
        assert_has(remove_error(p, "message", nil), "bad argument #2 to 'removeEventListener'")
        p:dispatchEvent({ type = "message" })
        assert.same({ "kept" }, got)
      end)

      it("still raises bad argument #1 for a type that is not a string", function()
        local p = mc.MessageChannel().port1
        assert_has(remove_error(p, 1, noop), "bad argument #1 to 'removeEventListener'")
        assert_has(remove_error(p, nil, noop), "bad argument #1 to 'removeEventListener'")
      end)

      it("still does nothing and raises nothing for a listener never added", function()
        local p = mc.MessageChannel().port1
        local got = {}
        p:addEventListener("message", logger(got, "kept"))
        p:removeEventListener("message", noop)
        p:removeEventListener("message", { handleEvent = noop })
        p:removeEventListener("close", noop)
        p:dispatchEvent({ type = "message" })
        assert.same({ "kept" }, got)
      end)
    end)
  end)
