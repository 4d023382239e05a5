local mc = require "messagechannel"

describe("module", function()
  describe("mc.version", function()
    it("is a version string such as 0.1.0", function()
      assert.is_string(mc.version)
      assert.truthy(mc.version:find("^%d+%.%d+%.%d+"),
        "mc.version is " .. tostring(mc.version))
    end)
  end)
end)
