-- For the child processes of the specs that raise an error from a hook at
-- one chosen moment: a hook that raises "INT" at the k-th of its events
-- that `counts` accepts (given debug.getinfo(fn, what) of the function
-- the hook runs in), once armed with k. Every coroutine made after new()
-- gets the hook too (hooks are per coroutine on Lua's own VM). Required
-- first: LuaJIT's compiler goes off (hooks run in interpreted code only).

local jit = rawget(_G, "jit")
if jit then jit.off() end

local M = {}

function M.new(what, counts, mask)
  local h = { k = 0, seen = 0, fired = true }
  local getinfo = debug.getinfo
  function h.hook()
    if h.fired then return end
    local info = getinfo(2, what)
    if info and counts(info) then
      h.seen = h.seen + 1
      if h.seen == h.k then
        h.fired = true
        error("INT", 0)
      end
    end
  end
  -- Raises at the k-th event from now on.
  function h.arm(k)
    h.k, h.seen, h.fired = k, 0, false
  end
  local create = coroutine.create
  coroutine.create = function(fn)  -- luacheck: ignore 122
    local co = create(fn)
    debug.sethook(co, h.hook, mask)
    return co
  end
  return h
end

return M
