std = "min"
max_line_length = 100
files["spec/"] = { std = "+busted" }
-- The fuzz checks run in the fuzz targets' Lua 5.4 only.
files["spec/fuzz/"] = { std = "lua54" }
-- docs/meta.lua is LuaLS definitions: empty functions, unused arguments.
exclude_files = { "build/", "docs/meta.lua" }
