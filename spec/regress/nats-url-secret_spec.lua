-- The error of a NATS server that cannot be reached quoted its URL whole,
-- password or token included ("cannot connect to NATS at
-- nats://alice:s3cret@..."), where logs and error reports keep it. The
-- URL is now shown with the secret as "***" (user name, host and port
-- stay, to tell which server it was).

local mc = require "messagechannel"

-- The error of a channel on url (nothing listens at 127.0.0.1:1), or nil
-- and why the spec cannot run.
local function connect_error(url)
  local ok, err = pcall(mc.BroadcastChannel, "spec.nats.secret", { nats = url })
  if ok then
    err:close()
    return nil, "a server answered at " .. url
  end
  err = tostring(err)
  if err:find("libnats", 1, true) then return nil, err end
  return err
end

describe("regress: a NATS URL's secret stays out of error texts", function()
  it("user:password@", function()
    local err, why = connect_error("nats://alice:s3cret@127.0.0.1:1")
    if not err then return pending(why) end
    assert.truthy(err:find("cannot connect to NATS at nats://alice:***@127.0.0.1:1", 1, true), err)
    assert.falsy(err:find("s3cret", 1, true), err)
  end)

  it("token@", function()
    local err, why = connect_error("nats://t0ken-value@127.0.0.1:1")
    if not err then return pending(why) end
    assert.truthy(err:find("cannot connect to NATS at nats://***@127.0.0.1:1", 1, true), err)
    assert.falsy(err:find("t0ken", 1, true), err)
  end)

  -- libnats takes the URL whole, its user part up to the last '@'
  it("a password with '/', '@' or ',' in it", function()
    for _, pw in ipairs { "pa/ss3cret", "pa@ss3cret", "pa,ss3cret", "s,3,c,r,e,t" } do
      local err, why = connect_error("nats://alice:" .. pw .. "@127.0.0.1:1")
      if not err then return pending(why) end
      assert.truthy(err:find("at nats://alice:***@127.0.0.1:1:", 1, true), err)
      assert.falsy(err:find(pw:sub(4), 1, true), err)
    end
  end)

  it("a URL without one is shown as given", function()
    local err, why = connect_error("nats://127.0.0.1:1")
    if not err then return pending(why) end
    assert.truthy(err:find("cannot connect to NATS at nats://127.0.0.1:1:", 1, true), err)
  end)
end)
