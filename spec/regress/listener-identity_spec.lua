-- Listener tables were compared with ==, so a class whose __eq compares
-- fields made two different listeners one: the second addEventListener
-- did nothing and removeEventListener of one removed the other. A value
-- whose metatable's __call is not a function (or is found only through
-- the metatable's own __index) passed as callable, and the error came
-- only at dispatch, or from mc.onerror's call instead of its TypeError.
-- API.md 2: adding the same (type, listener) twice has no effect (the
-- same: identity, as in the DOM); a handler or listener that cannot be
-- called raises TypeError: when it is set.

local helper = require "spec.helper"
local mc = require "messagechannel"

-- Instances that __eq calls equal whatever their fields.
local Same = { __eq = function() return true end }
local function instance(log, name)
  return setmetatable({ handleEvent = function(_, e)
    log[#log + 1] = name .. " " .. tostring(e.data)
  end }, Same)
end

describe("regress: listeners are told apart by identity, and callables by Lua's rule", function()
  local errors, catch, release = helper.error_hooks(5)
  before_each(catch)
  after_each(release)

  it("adds two listeners that __eq calls equal, and removes only the one named", function()
    local ch, log = mc.MessageChannel(), {}
    local a, b = instance(log, "a"), instance(log, "b")
    ch.port2:addEventListener("message", a)
    ch.port2:addEventListener("message", b)
    ch.port2:start()
    ch.port1:postMessage(1)
    mc.run()
    assert.are.same({ "a 1", "b 1" }, log)
    ch.port2:removeEventListener("message", b)
    ch.port1:postMessage(2)
    mc.run()
    assert.are.same({ "a 1", "b 1", "a 2" }, log)
    ch.port1:close()
    mc.run()
    assert.are.same({}, errors)
  end)

  it("does so on a Worker's and a BroadcastChannel's listeners #threads", function()
    local log = {}
    local a, b = instance(log, "a"), instance(log, "b")
    local w = mc.Worker([[
      local mc = require "messagechannel"
      mc.parentPort.onmessage = function(e) mc.parentPort:postMessage(e.data) end
    ]], { eval = true })
    w:addEventListener("message", a)
    w:addEventListener("message", b)
    w:removeEventListener("message", a)
    w.onmessage = function() w:terminate() end
    w:postMessage("w")
    local bc1, bc2 = mc.BroadcastChannel("listener-identity"),
                     mc.BroadcastChannel("listener-identity")
    bc2:addEventListener("message", a)
    bc2:addEventListener("message", b)
    bc2:removeEventListener("message", b)
    bc2.onmessage = function()  -- after a: the handler was set last
      bc1:close()
      bc2:close()
    end
    bc1:postMessage("bc")
    assert.is_true(mc.run(helper.WAIT))
    table.sort(log)
    assert.are.same({ "a bc", "b w" }, log)
    assert.are.same({}, errors)
  end)

  local not_function = setmetatable({}, { __call = 5 })
  local chained = setmetatable({}, { __call = setmetatable({}, {
    __call = function() end }) })
  local looping = setmetatable({}, {})
  getmetatable(looping).__call = looping  -- leads back to itself
  local mt_with_index = setmetatable({}, { __index = { __call = print } })
  local through_index = setmetatable({}, mt_with_index)

  for _, case in ipairs({
    { "whose __call is a number", not_function },
    { "whose __call is found only through an __index", through_index },
    { "whose __call leads back to itself", looping },
  }) do
    it("refuses a handler " .. case[1] .. " when it is set", function()
      local ch = mc.MessageChannel()
      local ok, err = pcall(function() ch.port2.onmessage = case[2] end)
      assert.is_false(ok)
      assert.truthy(err:find("TypeError: onmessage must be a function", 1, true), err)
      ok, err = pcall(ch.port2.addEventListener, ch.port2, "message", case[2])
      assert.is_false(ok)
      assert.truthy(err:find("TypeError: addEventListener: the listener must be", 1, true), err)
      ch.port1:close()
      -- mc.onerror is checked when an error comes (README mc.onerror)
      local saved = mc.onerror
      mc.onerror = case[2]
      mc.spawn(function() error("boom", 0) end)
      ok, err = pcall(mc.run)
      mc.onerror = saved
      assert.is_false(ok)
      assert.truthy(tostring(err):find("TypeError: mc.onerror must be a function", 1, true),
                    tostring(err))
    end)
  end

  it("takes a __call that is itself callable exactly where Lua calls it (5.4)", function()
    local ch = mc.MessageChannel()
    local set = pcall(function() ch.port2.onmessage = chained end)
    assert.equal(_VERSION == "Lua 5.4", set)
    assert.equal(set, pcall(chained))
    local deep = function() end
    for _ = 1, 50 do deep = setmetatable({}, { __call = deep }) end
    assert.equal(set, pcall(ch.port2.addEventListener, ch.port2, "close", deep))
    assert.equal(set, pcall(deep))
    if set then
      ch.port1:postMessage(1)
      mc.run()
    end
    ch.port1:close()
    mc.run()
    assert.are.same({}, errors)
  end)
end)
