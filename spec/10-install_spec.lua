local mc = require "messagechannel"
local helper = require "spec.helper"
local install_module = require "messagechannel.install"

local error_of = helper.error_of
local format = string.format

local EXPOSE = "expose_global_message_channel"
local HIDE = "no_expose_global_message_channel"

-- Stand-ins for the two classes: install must store exactly what it was
-- made with, not copies or the module's own values.
local CHANNEL = { "MessageChannel stand-in" }
local PORT = { "MessagePort stand-in" }

-- Each way to reach install runs the same specs. The facade's is added once
-- init.lua wires it.
local ways = {
  {
    name = "messagechannel.install.new(MessageChannel, MessagePort)",
    install = install_module.new(CHANNEL, PORT),
    MessageChannel = CHANNEL,
    MessagePort = PORT,
  },
}
if mc.install ~= nil then
  ways[#ways + 1] = {
    name = "mc.install",
    install = mc.install,
    MessageChannel = mc.MessageChannel,
    MessagePort = mc.MessagePort,
    facade = true,
  }
end

-- A readable form of options, for failure messages.
local function show(v)
  if type(v) == "string" then return format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. " = " .. show(x) end
  table.sort(parts)
  return "{ " .. table.concat(parts, ", ") .. " }"
end

local count = helper.count

-- install exposes the globals for options: returns true, sets exactly the
-- two fields to the way's own values and leaves the other fields alone.
local function assert_exposed(way, options)
  local what = "install(env, " .. show(options) .. ")"
  local env = { other = "kept" }
  local result = way.install(env, options)
  assert.is_true(result, what .. " returned " .. tostring(result))
  assert.is_true(rawequal(way.MessageChannel, env.MessageChannel),
    what .. " set MessageChannel to " .. tostring(env.MessageChannel))
  assert.is_true(rawequal(way.MessagePort, env.MessagePort),
    what .. " set MessagePort to " .. tostring(env.MessagePort))
  assert.equal("kept", env.other, what)
  assert.equal(3, count(env), what .. " set other fields")
end

-- install does not expose them for options: returns false, sets nothing.
local function assert_hidden(way, options)
  local what = "install(env, " .. show(options) .. ")"
  local env = { other = "kept" }
  local result = way.install(env, options)
  assert.is_false(result, what .. " returned " .. tostring(result))
  assert.same({ other = "kept" }, env, what .. " changed env")
end

-- install raises for options, with a message holding every one of the
-- given strings, and leaves env exactly as it was.
local function assert_error(way, options, ...)
  local what = "install(env, " .. show(options) .. ")"
  for _, before in ipairs({ {}, { MessageChannel = "mine", other = "kept" } }) do
    local env = {}
    for k, v in pairs(before) do env[k] = v end
    local err = error_of(way.install, env, options)
    for i = 1, select("#", ...) do
      local part = select(i, ...)
      assert.truthy(err:find(part, 1, true),
        format("%s: the error should contain %s, got %s", what, part, err))
    end
    assert.same(before, env, what .. " changed env before raising")
  end
end

local function date_error(way, date)
  assert_error(way, { compatibility_date = date },
    format("compatibility_date %q is not a valid YYYY-MM-DD date", date))
end

describe("install", function()
  describe("messagechannel.install.new", function()
    it("returns an install function", function()
      assert.is_function(install_module.new(CHANNEL, PORT))
    end)

    it("refuses to make an install function without both values", function()
      assert.truthy(error_of(install_module.new):find("MessageChannel", 1, true))
      assert.truthy(error_of(install_module.new, CHANNEL):find("MessagePort", 1, true))
      assert.truthy(error_of(install_module.new, nil, PORT):find("MessagePort", 1, true))
    end)

    it("makes functions that each install their own values", function()
      local other_channel, other_port = {}, {}
      local other = install_module.new(other_channel, other_port)
      local env1, env2 = {}, {}
      install_module.new(CHANNEL, PORT)(env1)
      other(env2)
      assert.is_true(rawequal(CHANNEL, env1.MessageChannel))
      assert.is_true(rawequal(PORT, env1.MessagePort))
      assert.is_true(rawequal(other_channel, env2.MessageChannel))
      assert.is_true(rawequal(other_port, env2.MessagePort))
    end)
  end)

  if mc.install == nil then
    pending("mc.install: not in the facade yet, so only the module is tested")
  end

  for _, way in ipairs(ways) do
    describe(way.name, function()
      if way.facade then
        it("installs the module's own mc.MessageChannel and mc.MessagePort", function()
          assert.is_not_nil(mc.MessageChannel)
          assert.is_not_nil(mc.MessagePort)
          local env = {}
          assert.is_true(mc.install(env))
          assert.is_true(rawequal(mc.MessageChannel, env.MessageChannel))
          assert.is_true(rawequal(mc.MessagePort, env.MessagePort))
        end)
      end

      describe("arguments", function()
        it("raises bad argument #1 when env is not a table", function()
          local prefix = "bad argument #1 to 'install' (table expected, got "
          assert.truthy(error_of(way.install):find(prefix .. "no value)", 1, true))
          for _, env in ipairs({ "env", 1, true, print, io.stdout }) do
            local err = error_of(way.install, env)
            assert.truthy(err:find(prefix .. type(env) .. ")", 1, true), err)
          end
          local err = error_of(way.install, nil, {})
          assert.truthy(err:find(prefix .. "nil)", 1, true), err)
        end)

        it("raises bad argument #2 when options is neither nil nor a table", function()
          for _, options in ipairs({ "2025-08-15", 20250815, true, print }) do
            local env = {}
            local err = error_of(way.install, env, options)
            assert.truthy(err:find("bad argument #2 to 'install'", 1, true), err)
            assert.truthy(err:find(type(options), 1, true), err)
            assert.is_nil(next(env), "env changed")
          end
        end)

        it("takes options = nil as no options", function()
          assert_exposed(way, nil)
        end)
      end)

      describe("defaults", function()
        it("exposes the globals and returns true without options", function()
          local env = {}
          assert.is_true(way.install(env))
          assert.is_true(rawequal(way.MessageChannel, env.MessageChannel))
          assert.is_true(rawequal(way.MessagePort, env.MessagePort))
          assert.equal(2, count(env))
        end)

        it("exposes them with an empty options table", function()
          assert_exposed(way, {})
        end)

        it("replaces values env already holds", function()
          local env = { MessageChannel = "old", MessagePort = "old" }
          assert.is_true(way.install(env))
          assert.is_true(rawequal(way.MessageChannel, env.MessageChannel))
          assert.is_true(rawequal(way.MessagePort, env.MessagePort))
        end)

        it("sets the fields even when env's metatable refuses new fields", function()
          local env = setmetatable({}, {
            __newindex = function(_, k) error("assign to undeclared variable " .. k) end,
          })
          assert.is_true(way.install(env))
          assert.is_true(rawequal(way.MessageChannel, env.MessageChannel))
          assert.is_true(rawequal(way.MessagePort, env.MessagePort))
        end)

        it("ignores option keys it does not know, and leaves options unchanged", function()
          local options = { name = "worker", main = "index.lua" }
          assert_exposed(way, options)
          assert.same({ name = "worker", main = "index.lua" }, options)
        end)
      end)

      describe("compatibility_date", function()
        it("exposes the globals from 2025-08-15 on", function()
          for _, date in ipairs({ "2025-08-15", "2025-08-16", "2025-09-01",
                                  "2026-01-01", "9999-12-31" }) do
            assert_exposed(way, { compatibility_date = date })
          end
        end)

        it("does not expose them before 2025-08-15, and returns false", function()
          for _, date in ipairs({ "2025-08-14", "2025-07-31", "2025-01-15",
                                  "2024-12-31", "2021-11-03", "0000-01-01" }) do
            assert_hidden(way, { compatibility_date = date })
          end
        end)

        it("leaves values env already holds when it does not expose", function()
          local env = { MessageChannel = "mine", MessagePort = "mine" }
          assert.is_false(way.install(env, { compatibility_date = "2024-01-01" }))
          assert.same({ MessageChannel = "mine", MessagePort = "mine" }, env)
        end)

        it("accepts every calendar date, leap days included", function()
          for _, date in ipairs({ "2024-02-29", "2000-02-29", "1600-02-29",
                                  "2025-02-28", "2025-01-31", "2025-03-31",
                                  "2025-04-30", "2025-06-30", "2024-12-31",
                                  "2025-01-01" }) do
            assert_hidden(way, { compatibility_date = date })
          end
          assert_exposed(way, { compatibility_date = "2025-12-31" })
          assert_exposed(way, { compatibility_date = "2028-02-29" })
        end)

        it("rejects a date that is not on the calendar, naming it", function()
          for _, date in ipairs({ "2025-13-01", "2025-00-10", "2025-01-00",
                                  "2025-01-32", "2025-02-30", "2023-02-29",
                                  "2100-02-29", "1900-02-29", "2025-04-31",
                                  "2025-06-31", "2025-09-31", "2025-11-31",
                                  "2025-99-99" }) do
            date_error(way, date)
          end
        end)

        it("rejects a date not written YYYY-MM-DD, naming it", function()
          for _, date in ipairs({ "2025-8-15", "2025-08-5", "25-08-15",
                                  "02025-08-15", "2025-08-15x", " 2025-08-15",
                                  "2025-08-15 ", "2025-08-15\n", "2025/08/15",
                                  "20250815", "2025-08-15T00:00:00", "",
                                  "yyyy-mm-dd", "2025-0a-15", "+2025-08-15",
                                  "2025-08-\0015" }) do
            date_error(way, date)
          end
        end)

        it("rejects a date that is not a string, naming its type", function()
          for _, date in ipairs({ 20250815, true, { 2025, 8, 15 }, print }) do
            assert_error(way, { compatibility_date = date },
              "compatibility_date must be a string", "got " .. type(date))
          end
        end)
      end)

      describe("compatibility_flags", function()
        it("exposes the globals with " .. EXPOSE .. ", whatever the date", function()
          for _, flags in ipairs({ EXPOSE, { EXPOSE } }) do
            assert_exposed(way, { compatibility_flags = flags })
            assert_exposed(way, { compatibility_flags = flags,
                                  compatibility_date = "2021-11-03" })
            assert_exposed(way, { compatibility_flags = flags,
                                  compatibility_date = "2025-08-14" })
            assert_exposed(way, { compatibility_flags = flags,
                                  compatibility_date = "2026-01-01" })
          end
        end)

        it("does not expose them with " .. HIDE .. ", whatever the date", function()
          for _, flags in ipairs({ HIDE, { HIDE } }) do
            assert_hidden(way, { compatibility_flags = flags })
            assert_hidden(way, { compatibility_flags = flags,
                                 compatibility_date = "2025-08-15" })
            assert_hidden(way, { compatibility_flags = flags,
                                 compatibility_date = "2026-01-01" })
            assert_hidden(way, { compatibility_flags = flags,
                                 compatibility_date = "2021-11-03" })
          end
        end)

        it("raises when both flags are given, naming both", function()
          for _, flags in ipairs({ EXPOSE .. "," .. HIDE, HIDE .. " " .. EXPOSE,
                                   { EXPOSE, HIDE }, { HIDE, "other", EXPOSE } }) do
            assert_error(way, { compatibility_flags = flags }, EXPOSE, HIDE,
                         "mutually contradictory")
            assert_error(way, { compatibility_flags = flags,
                                compatibility_date = "2021-11-03" }, EXPOSE, HIDE,
                         "mutually contradictory")
          end
        end)

        it("ignores flags it does not know", function()
          for _, flags in ipairs({ "nodejs_compat", "nodejs_compat, streams_enable_constructors",
                                   { "nodejs_compat", "2024_flag" } }) do
            assert_hidden(way, { compatibility_flags = flags,
                                 compatibility_date = "2024-09-23" })
            assert_exposed(way, { compatibility_flags = flags,
                                  compatibility_date = "2025-09-01" })
            assert_exposed(way, { compatibility_flags = flags })
          end
        end)

        it("matches flag names exactly, case included", function()
          for _, flag in ipairs({ "Expose_global_message_channel",
                                  "EXPOSE_GLOBAL_MESSAGE_CHANNEL",
                                  EXPOSE .. "_x", "x" .. EXPOSE }) do
            assert_hidden(way, { compatibility_flags = flag,
                                 compatibility_date = "2021-11-03" })
          end
          for _, flag in ipairs({ HIDE .. "x", "NO_EXPOSE_GLOBAL_MESSAGE_CHANNEL" }) do
            assert_exposed(way, { compatibility_flags = flag,
                                  compatibility_date = "2026-01-01" })
          end
        end)

        it("separates the names of a string by commas", function()
          assert_exposed(way, { compatibility_flags = "nodejs_compat," .. EXPOSE,
                                compatibility_date = "2021-11-03" })
          assert_hidden(way, { compatibility_flags = HIDE .. ",nodejs_compat" })
        end)

        it("separates the names of a string by spaces", function()
          assert_exposed(way, { compatibility_flags = "nodejs_compat " .. EXPOSE,
                                compatibility_date = "2021-11-03" })
          assert_hidden(way, { compatibility_flags = "a  b\t" .. HIDE .. "\nc" })
        end)

        it("separates them by commas and spaces together", function()
          for _, flags in ipairs({ "a, " .. EXPOSE, "a ," .. EXPOSE, "a , b  ,  " .. EXPOSE,
                                   "  a, b " .. EXPOSE .. "  ", " " .. EXPOSE }) do
            assert_exposed(way, { compatibility_flags = flags,
                                  compatibility_date = "2021-11-03" })
          end
        end)

        it("takes an array of names", function()
          assert_exposed(way, { compatibility_flags = { "a", EXPOSE, "b" },
                                compatibility_date = "2021-11-03" })
          assert_hidden(way, { compatibility_flags = { "a", HIDE } })
        end)

        it("takes an empty string, a blank string or an empty array as no flags", function()
          for _, flags in ipairs({ "", "   ", "\t", {} }) do
            assert_hidden(way, { compatibility_flags = flags,
                                 compatibility_date = "2021-11-03" })
            assert_exposed(way, { compatibility_flags = flags })
          end
        end)

        it("rejects an empty name between commas, naming the list", function()
          for _, flags in ipairs({ "a,,b", ",a", "a,", ",", "a, ,b", " , ",
                                   EXPOSE .. ",," }) do
            assert_error(way, { compatibility_flags = flags },
              format("compatibility_flags %q has an empty flag name", flags))
          end
        end)

        it("rejects a name with other characters, naming it", function()
          local cases = {
            { "a-b", "a-b" }, { "a.b", "a.b" }, { EXPOSE .. ";", EXPOSE .. ";" },
            { "caf\195\169", "caf\195\169" }, { "a,b/c", "b/c" }, { "a\0b", "a\0b" },
            { "a;b " .. EXPOSE, "a;b" }, { "ok,\"x\"", "\"x\"" },
          }
          for _, case in ipairs(cases) do
            local flags, bad = case[1], case[2]
            assert_error(way, { compatibility_flags = flags },
              format("compatibility_flags %q has an invalid flag name %q", flags, bad))
          end
        end)

        it("rejects an array entry that is not a flag name, naming its index", function()
          assert_error(way, { compatibility_flags = { "a", 1 } },
            "compatibility_flags[2] must be a string, got number")
          assert_error(way, { compatibility_flags = { true } },
            "compatibility_flags[1] must be a string, got boolean")
          assert_error(way, { compatibility_flags = { EXPOSE, { "a" } } },
            "compatibility_flags[2] must be a string, got table")
          for _, case in ipairs({ { { "" }, 1, "" }, { { "a b" }, 1, "a b" },
                                  { { EXPOSE, "a,b" }, 2, "a,b" },
                                  { { "a", "b", "c-d" }, 3, "c-d" } }) do
            local flags, i, bad = case[1], case[2], case[3]
            assert_error(way, { compatibility_flags = flags },
              format("compatibility_flags[%d] %q is not a valid flag name", i, bad))
          end
        end)

        it("rejects flags that are neither a string nor a table, naming the type", function()
          for _, flags in ipairs({ 1, true, print }) do
            assert_error(way, { compatibility_flags = flags },
              "compatibility_flags must be", "got " .. type(flags))
          end
        end)
      end)

      describe("errors", function()
        it("leave env unchanged even when the rest of the options would expose", function()
          assert_error(way, { compatibility_flags = { EXPOSE },
                              compatibility_date = "2025-02-30" }, "2025-02-30")
          assert_error(way, { compatibility_flags = EXPOSE .. ",,",
                              compatibility_date = "2026-01-01" }, "empty flag name")
          assert_error(way, { compatibility_flags = { EXPOSE, 7 } },
            "compatibility_flags[2]")
          assert_error(way, { compatibility_flags = { "ok", "bad name" },
                              compatibility_date = "2025-08-15" }, "bad name")
        end)

        it("point at the caller of install", function()
          local cases = {
            { { "env" }, "bad argument #1" },
            { { {}, "options" }, "bad argument #2" },
            { { {}, { compatibility_date = "2025-13-01" } }, "compatibility_date" },
            { { {}, { compatibility_date = 20251301 } }, "compatibility_date" },
            { { {}, { compatibility_flags = "a,,b" } }, "compatibility_flags" },
            { { {}, { compatibility_flags = "a-b" } }, "compatibility_flags" },
            { { {}, { compatibility_flags = { 1 } } }, "compatibility_flags" },
            { { {}, { compatibility_flags = { "a-b" } } }, "compatibility_flags" },
            { { {}, { compatibility_flags = 1 } }, "compatibility_flags" },
            { { {}, { compatibility_flags = { EXPOSE, HIDE } } }, "compatibility_flags" },
          }
          for _, case in ipairs(cases) do
            local args, start = case[1], case[2]
            local ok, err = pcall(function()
              way.install(args[1], args[2])
            end)
            assert.is_false(ok)
            assert.truthy(err:find("10%-install_spec%.lua:%d+: " .. start), err)
          end
        end)
      end)
    end)
  end
end)
