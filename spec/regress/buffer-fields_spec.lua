-- Assigning a field of a Buffer raised "cannot assign field 'number' of
-- a Buffer": no TypeError: prefix, and the key's type instead of the key,
-- where a port or a channel raises "TypeError: cannot set field '1' of
-- MessagePort" (API.md 2, 9). tostring read "Buffer (1 bytes)", and cut a
-- length of 2^31 bytes or more to an int.

local mc = require "messagechannel"

describe("regress: a Buffer's fields and tostring", function()
  it("assigning any field raises TypeError naming the key", function()
    local buf = mc.Buffer("ab")
    for _, c in ipairs { { 1, "1" }, { "x", "x" }, { true, "true" },
                         { 2.5, "2.5" } } do
      local ok, err = pcall(function() buf[c[1]] = 1 end)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find(
        "TypeError: cannot set field '" .. c[2] .. "' of Buffer", 1, true), err)
    end
    local ok, err = pcall(function() buf[{}] = 1 end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("TypeError: cannot set field 'table: ", 1, true), err)
    assert.equal("ab", buf:sub())
  end)

  it("tostring counts bytes in the singular and the plural", function()
    assert.equal("Buffer (0 bytes)", tostring(mc.Buffer(0)))
    assert.equal("Buffer (1 byte)", tostring(mc.Buffer("x")))
    assert.equal("Buffer (5 bytes)", tostring(mc.Buffer("hello")))
  end)
end)
