-- A Worker's state looks for its modules with the parent's package.path
-- and package.cpath at the time of the call (API.md 7). A parent that
-- changed them after it loaded this module (to its own directories, or
-- to nothing) could start no worker: the worker could not find
-- messagechannel itself, and failed with "module 'messagechannel.worker'
-- not found". The worker now finds the module's own files where the
-- parent found them, and everything else by the parent's paths.

local helper = require "spec.helper"

describe("regress: a worker finds the module after the parent's paths change #threads", function()
  local errors, start = helper.worker_specs(5, before_each, after_each)
  -- The specs' own path templates are prefix .. "?.lua": a file name with
  -- a unique start, so that no directory is made (no os.execute, which
  -- fails under ThreadSanitizer's preload).
  local path, cpath, base, prefix

  before_each(function()
    path, cpath = package.path, package.cpath
    base = os.tmpname()
    prefix = base .. "_"
    local f = assert(io.open(prefix .. "worker_module_path_mine.lua", "w"))
    f:write("return { answer = 42 }\n")
    f:close()
  end)

  after_each(function()
    package.path, package.cpath = path, cpath
    os.remove(prefix .. "worker_module_path_mine.lua")
    os.remove(base)
  end)

  -- Runs source in a worker and returns what it posted, and its exit code.
  local function run(source)
    local w = start(source)
    local got, code = {}, nil
    w.onmessage = function(e) got[#got + 1] = e.data end
    w.onerror = function(e) got[#got + 1] = "error " .. tostring(e.error) end
    w.onexit = function(e) code = e.code end
    helper.run()
    return got, code
  end

  it("when package.path and package.cpath no longer find it", function()
    package.path = prefix .. "?.lua"
    package.cpath = prefix .. "?.so"
    local got, code = run [[
      local mc = require "messagechannel"
      mc.parentPort:postMessage({ package.path, package.cpath })]]
    assert.same({ { prefix .. "?.lua", prefix .. "?.so" } }, got)
    assert.equal(0, code)
    assert.same({}, errors)
  end)

  it("and finds the parent's own modules by the new package.path", function()
    package.path = prefix .. "?.lua"
    local got, code = run [[
      local mc = require "messagechannel"
      mc.parentPort:postMessage(require("worker_module_path_mine").answer)]]
    assert.same({ 42 }, got)
    assert.equal(0, code)
  end)

  it("and so does a worker that worker starts", function()
    package.path, package.cpath = "", ""
    local got, code = run [[
      local mc = require "messagechannel"
      local w = mc.Worker("require('messagechannel').parentPort:postMessage('inner')",
                          { eval = true })
      w.onmessage = function(e) mc.parentPort:postMessage(e.data) end
      w.onerror = function(e) mc.parentPort:postMessage("error " .. tostring(e.error)) end]]
    assert.same({ "inner" }, got)
    assert.equal(0, code)
  end)

  it("while a module of another name is still looked up only by package.path", function()
    -- a module that the path that found messagechannel finds (through its
    -- "./?.lua"), and the parent's new path does not
    local home = debug.getregistry()["messagechannel.home"]
    if not (home and home[1]:find("./?.lua", 1, true)) then
      return pending("the path that found messagechannel has no ./?.lua")
    end
    local file = "./worker_module_path_old.lua"
    local f = assert(io.open(file, "w"))
    f:write("return true\n")
    f:close()
    package.path = prefix .. "?.lua"
    local got = run [[
      local mc = require "messagechannel"
      mc.parentPort:postMessage((pcall(require, "worker_module_path_old")))
      mc.parentPort:postMessage((pcall(require, "messagechannel.not_a_module")))]]
    os.remove(file)
    assert.same({ false, false }, got)
  end)

  it("and a worker starts when the record of where was taken away", function()
    -- (the first version of this fix crashed: debug.getregistry() reaches it)
    local registry = debug.getregistry()
    local home = registry["messagechannel.home"]
    for _, v in ipairs { false, "a string" } do
      registry["messagechannel.home"] = v
      local got, code = run "require('messagechannel').parentPort:postMessage('up')"
      assert.same({ "up" }, got)
      assert.equal(0, code)
    end
    registry["messagechannel.home"] = home
  end)

  it("and the parent's own searchers and paths stay as they were", function()
    local searchers = rawget(package, "searchers") or rawget(package, "loaders")
    local before = { helper.unpack(searchers) }
    package.path = prefix .. "?.lua"
    run "require 'messagechannel'"
    assert.equal(prefix .. "?.lua", package.path)
    assert.same(before, { helper.unpack(searchers) })
  end)
end)
