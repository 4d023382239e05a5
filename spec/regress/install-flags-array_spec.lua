-- mc.install read only 1..#flags of a compatibility_flags table: a set
-- ({no_expose_global_message_channel = true}) was taken as no flags, so
-- it did the opposite of what was meant, and a table with a hole dropped
-- flags (API.md 8: "A malformed date or flag list raises an error naming
-- it").

local mc = require "messagechannel"
local helper = require "spec.helper"

describe("regress: mc.install's flags must be an array", function()
  it("raises for a set of flag names, naming the key", function()
    local env = {}
    local err = helper.error_of(mc.install, env,
      { compatibility_flags = { no_expose_global_message_channel = true } })
    assert.truthy(helper.has(err, "compatibility_flags must be an array of flag names"),
                  err)
    assert.truthy(helper.has(err, '"no_expose_global_message_channel"'), err)
    assert.is_nil(env.MessageChannel)
  end)

  it("raises for an array with a hole, or a key that is not a position", function()
    for _, flags in ipairs {
      { [2] = "expose_global_message_channel" },
      { "expose_global_message_channel", nil, "expose_global_message_channel" },
      { [1.5] = "expose_global_message_channel" },
      { [0] = "expose_global_message_channel" },
    } do
      local env = {}
      local err = helper.error_of(mc.install, env,
        { compatibility_date = "2020-01-01", compatibility_flags = flags })
      assert.truthy(helper.has(err, "compatibility_flags must be an array of flag names"),
                    err)
      assert.is_nil(env.MessageChannel)
    end
  end)

  it("still takes an array, an empty table and a string", function()
    assert.is_true(mc.install({}, { compatibility_date = "2020-01-01",
                                    compatibility_flags = { "expose_global_message_channel" } }))
    assert.is_false(mc.install({}, { compatibility_date = "2020-01-01",
                                     compatibility_flags = {} }))
    assert.is_false(mc.install({}, { compatibility_flags = "no_expose_global_message_channel" }))
  end)
end)
