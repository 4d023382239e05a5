-- Regressions of the addresses of mc.listen and mc.connect (API.md 12,
-- README "Addresses and options"):
-- - a port of more than five digits was refused even when its value is
--   in 0..65535 (leading zeros: "tcp:127.0.0.1:047124"), though
--   "tcp:127.0.0.1:0000" was taken;
-- - an empty host ("tcp::80", "tcp:[]:0") was blamed on the port ("with a
--   port up to 65535");
-- - an address with a zero byte was shown as '' in its error (now as %q
--   shows it).

local mc = require "messagechannel"
local helper = require "spec.helper"
local R = require "spec.remote.helper"

local has = helper.has

describe("regress: the port and host of a tcp address", function()
  local errors, made = R.specs(R.WAIT, before_each, after_each)
  after_each(function() assert.same({}, errors) end)

  local function listen(address)
    local l = mc.listen(address)
    made[#made + 1] = l
    return l
  end

  it("takes a port with leading zeros, of any length, by its value",
     function()
    local l = listen("tcp:127.0.0.1:0")
    local port = l.address:match(":(%d+)$")
    l:close()
    -- the same port written with six or more digits
    local l2 = listen("tcp:127.0.0.1:" .. string.rep("0", 6) .. port)
    assert.equal("tcp:127.0.0.1:" .. port, l2.address)
    local got
    l2.onconnect = function(ev)
      got = ev.port
      made[#made + 1] = got
      l2:close()
    end
    local p = mc.connect("tcp:127.0.0.1:000000000" .. port)
    made[#made + 1] = p
    assert.is_true(p:postMessage("over"))
    local deadline = mc.now() + 20
    while not got and mc.now() < deadline do mc.sleep(0.01) end
    assert.truthy(got, "no connect")
    local ev = assert(got:receive(20))
    assert.equal("over", ev.data)
    local l3 = listen("tcp:127.0.0.1:" .. string.rep("0", 30))
    assert.truthy(l3.address:match("^tcp:127%.0%.0%.1:%d+$"), l3.address)
  end)

  it("refuses a port over 65535 as such, however many digits", function()
    for _, a in ipairs { "tcp:127.0.0.1:65536", "tcp:127.0.0.1:0065536",
                         "tcp:127.0.0.1:" .. string.rep("9", 40) } do
      for _, f in ipairs { "listen", "connect" } do
        local err = helper.error_of(mc[f], a)
        assert.equal("bad argument #1 to '" .. f .. "' (a port of 0 to "
                     .. "65535 expected: '" .. a .. "')", err)
      end
    end
  end)

  it("says an empty host is the fault, not the port", function()
    for _, a in ipairs { "tcp::80", "tcp:[]:0" } do
      for _, f in ipairs { "listen", "connect" } do
        local err = helper.error_of(mc[f], a)
        assert.equal("bad argument #1 to '" .. f .. "' (a host of 1 to 255 "
                     .. "bytes expected: '" .. a .. "')", err)
      end
    end
    local long = "tcp:" .. string.rep("h", 256) .. ":80"
    assert.truthy(has(helper.error_of(mc.connect, long),
                      "a host of 1 to 255 bytes expected"))
  end)

  it("shows an address with zero bytes as %q shows them", function()
    for _, f in ipairs { "listen", "connect" } do
      local err = helper.error_of(mc[f], "unix:/tmp/a\0b\0")
      assert.equal("bad argument #1 to '" .. f .. "' (an address has no "
                   .. "zero bytes: 'unix:/tmp/a\\0b\\0')", err)
      -- before a digit: \000, so that the digit is not read as its part
      err = helper.error_of(mc[f], "tcp:127.0.0.1:8\0" .. "0")
      assert.equal("bad argument #1 to '" .. f .. "' (an address has no "
                   .. "zero bytes: 'tcp:127.0.0.1:8\\0000')", err)
    end
  end)
end)
