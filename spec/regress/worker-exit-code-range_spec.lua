-- A worker's exit code was kept in a C int: os.exit(2^40) in a worker
-- gave its exit event code 0, a normal end, and os.exit(2^31) a negative
-- code. API.md 7: the exit event has the number os.exit was given.

local helper = require "spec.helper"

describe("regress: a worker's exit code is the number os.exit got #threads", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)

  local cases = { { "2^31", 2 ^ 31 }, { "2^32 + 5", 2 ^ 32 + 5 },
                  { "2^40", 2 ^ 40 }, { "-2^31 - 1", -2 ^ 31 - 1 },
                  { "2^53", 2 ^ 53 } }
  for _, c in ipairs(cases) do
    it("os.exit(" .. c[1] .. ")", function()
      local w = start("os.exit(" .. c[1] .. ")")
      local code
      w.onexit = function(e) code = e.code end
      helper.run()
      assert.equal(c[2], code)
      assert.same({}, errors)
    end)
  end

  -- os.exit takes a string that converts to an integer, as
  -- luaL_optinteger does: `lua5.4 -e 'os.exit("3")'` ends with status 3.
  -- A worker's raised "number expected, got string" instead.
  it('os.exit("3") and os.exit(" 0x10 ")', function()
    local codes = {}
    for _, c in ipairs { '"3"', '" 0x10 "' } do
      local w = start("os.exit(" .. c .. ")")
      w.onexit = function(e) codes[#codes + 1] = e.code end
    end
    helper.run()
    table.sort(codes)
    assert.same({ 3, 16 }, codes)
    assert.same({}, errors)
  end)

  it('os.exit("x") and os.exit("2.5") raise as os.exit does', function()
    local got = {}
    for _, c in ipairs { '"x"', '"2.5"' } do
      local w = start("local ok, err = pcall(os.exit, " .. c .. ")\n"
                      .. "require('messagechannel').parentPort:postMessage(err)")
      w.onmessage = function(e) got[#got + 1] = e.data end
    end
    helper.run()
    table.sort(got)
    assert.same({ "bad argument #1 to 'exit' (number expected, got string)",
                  "bad argument #1 to 'exit' (number has no integer representation)" },
                got)
  end)

  local mtype = rawget(math, "type")
  if mtype then
    it("os.exit(math.maxinteger) and os.exit(math.mininteger)", function()
      local codes = {}
      for _, c in ipairs { "math.maxinteger", "math.mininteger" } do
        local w = start("os.exit(" .. c .. ")")
        w.onexit = function(e) codes[#codes + 1] = e.code end
      end
      helper.run()
      table.sort(codes)
      assert.same({ rawget(math, "mininteger"), rawget(math, "maxinteger") }, codes)
      assert.equal("integer", mtype(codes[1]))
    end)
  end
end)
