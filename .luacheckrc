std = "min"
max_line_length = 100
files["spec/"] = { std = "+busted" }
-- docs/meta.lua is LuaLS definitions: empty functions, unused arguments.
exclude_files = { "build/", "docs/meta.lua" }
