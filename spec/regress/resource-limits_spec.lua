-- Faults found with the operating system's limits:
-- * A Worker's id in its parent's state (what its end is reported to) was
--   never given back when the Worker was collected: every Worker ever
--   made kept a slot, which each scheduler turn walks (after 10,000
--   workers a turn took 98 us instead of 1 us). API.md 9: no leaks.
-- * When the network thread could not start (no descriptor left for its
--   hub, or no thread), mc.listen and mc.connect said "Cannot allocate
--   memory"; and mc.Worker under a thread limit said "cannot start a
--   thread" without the reason.

local helper = require "spec.helper"
local mc = require "messagechannel"

describe("regress: resources the operating system refuses or takes back #threads", function()
  local errors = helper.worker_specs(5, before_each, after_each)

  -- The ids the state has handed out (the context's table of pinned
  -- ids, src/mc.h MC_CTX_PINNED): one taken back keeps its entry, and is
  -- handed out again.
  local function ids()
    local n = 0
    for _ in pairs(debug.getregistry()["messagechannel.context"][3]) do n = n + 1 end
    return n
  end

  -- n Workers that end, each run to its end and then let go.
  local function workers(n)
    for i = 1, n do
      mc.Worker("", { eval = true })
      helper.run()
      if i % 10 == 0 then collectgarbage() end
    end
    for _ = 1, 5 do collectgarbage() end
  end

  it("a collected Worker's id is used again", function()
    workers(100)  -- the ids the most Workers alive at once need
    workers(100)
    local before = ids()
    workers(100)
    assert.is_true(ids() <= before + 5, ("%d ids, %d before"):format(ids(), before))
    assert.same({}, errors)
  end)

end)

-- Not a thread spec: a child process under a descriptor limit, which a
-- sanitizer's runtime preloaded into it may need for itself.
describe("regress: the network thread refused by a descriptor limit", function()
  it("mc.listen and mc.connect say which limit refused them", function()
    local interpreter = arg and arg[-1]
    if type(interpreter) ~= "string" then
      return pending(helper.skipped("resource-limits", "no interpreter to run"))
    end
    local file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write(("package.path = %q\npackage.cpath = %q\n"):format(package.path, package.cpath), [[
      local mc = require "messagechannel"
      local held = {}
      while true do
        local h = io.open("/dev/null")
        if not h then break end
        held[#held + 1] = h
      end
      table.remove(held):close()  -- one left: a socket, and no hub
      print(select(2, pcall(mc.listen, "tcp:127.0.0.1:0")))
      print(select(2, pcall(mc.connect, "tcp:127.0.0.1:1")))
    ]])
    f:close()
    local pipe = assert(io.popen("ulimit -n 40 && " .. interpreter .. " " .. file .. " 2>&1"))
    local out = pipe:read("*a")
    pipe:close()
    os.remove(file)
    assert.truthy(out:find("listen: tcp:127.0.0.1:0: Too many open files", 1, true), out)
    assert.truthy(out:find("connect: Too many open files", 1, true), out)
    assert.falsy(out:find("Cannot allocate memory", 1, true), out)
  end)
end)
