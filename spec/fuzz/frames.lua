-- frames.lua: the check of the frames fuzz target (see harness.c). The
-- input is what a link reads from its socket; core.wire_scan frames it as
-- the network thread does (src/net.c's frames, src/wire.c), fed in pieces
-- of `split` bytes. The check holds it to a reading of the frame rules of
-- src/mc.h ("wire.c") written again here (ref_next, check_record):
--
--   * whatever the pieces (every size up to a bound, and some derived from
--     the input), the same records, the same bytes consumed, the same end;
--   * consumed never passes the input, and is where the rules say;
--   * a length over max (a body over max bytes) or an unknown type is
--     invalid once its head has arrived, before any of the body, and what
--     such a head makes wire_scan allocate does not grow with the length
--     it claims (Lua's count; C blocks over 2 GB are libFuzzer's malloc
--     limit); a frame cut short is "need more": no record, not invalid;
--   * each record is what its frame says: a HELLO's heartbeat and token or
--     bad, a CLOSE's reason, a MSG refused (bad) exactly when its lengths
--     do not add up or are over max, else its Buffers with the lengths and
--     bytes of the frame and, without Buffers, the value or the error
--     mc.deserialize gives for its bytes;
--   * wire_scan raises nothing.
--
-- max is the default (16 MiB) and smaller ones derived from the input, so
-- that the oversized paths are taken. Run as a script, it writes the seed
-- corpus (spec/fuzz/corpus/frames) instead; from the top of the tree,
-- after `make`:
--
--   LUA_PATH="spec/fuzz/?.lua;lua/?.lua;lua/?/init.lua" \
--   LUA_CPATH="build/5.4/?.so" lua5.4 spec/fuzz/frames.lua --seeds

local mc = require "messagechannel"
local core = require "messagechannel.core"
local same = require "same"

local collectgarbage, error, next, pcall, rawequal, select, tostring, type =
  collectgarbage, error, next, pcall, rawequal, select, tostring, type
local pack, unpack = string.pack, string.unpack
local getmetatable = debug.getmetatable

local DEFAULT_MAX = 16 << 20  -- src/remote.c's DEFAULT_MAXSIZE
local MAXTOKEN = 4096         -- src/wire.c's
local SPLITS = 24             -- every piece size up to this
local HEAD_BOUND = 4096       -- bytes a frame's head alone may cost

local buffer_mt = getmetatable(mc.Buffer(0))

local function fail(...)
  error(table.concat({ ... }, " "), 0)
end

local function count(t)
  local n = 0
  for _ in next, t do n = n + 1 end
  return n
end

-- The frame at byte pos (from 1) of s: its size and type, or "need" (more
-- bytes could make one) or "invalid" (none can).
local function ref_next(s, pos, max)
  local n = #s - pos + 1
  if n < 4 then return "need" end
  local len = unpack("<I4", s, pos)
  if len < 1 or len - 1 > max then return "invalid" end
  local t = s:sub(pos + 4, pos + 4)
  local known = t == "H" or t == "M" or t == "C" or t == "P"
  if n < len + 4 then
    return (n >= 5 and not known) and "invalid" or "need"
  end
  if not known or (t == "C" and len ~= 2) or (t == "P" and len ~= 1) then
    return "invalid"
  end
  return len + 4, t
end

-- The frames of s by the rules: {at, size, type} each, consumed, invalid.
local function expect(s, max)
  local frames, pos = {}, 1
  while true do
    local k, t = ref_next(s, pos, max)
    if type(k) ~= "number" then return frames, pos - 1, k == "invalid" end
    frames[#frames + 1] = { at = pos, size = k, type = t }
    pos = pos + k
  end
end

local FIELDS = {
  H = { heartbeat = true, token = true, bad = true },
  C = { reason = true },
  P = {},
  M = { value = true, buffers = true, error = true, bad = true },
}

local options = {
  userdata = function(x, y)
    if not rawequal(getmetatable(x), buffer_mt)
       or not rawequal(getmetatable(y), buffer_mt) then
      return nil, "a userdata that is not a Buffer"
    end
    if x.detached or y.detached then return nil, "a detached Buffer" end
    return x:sub() == y:sub() or nil, "a Buffer's bytes differ"
  end,
}

-- A MSG body's parts: the Buffers' lengths, the message's bytes and the
-- Buffers' bytes; nil when mc_wire_msg must refuse it.
local function msg_parts(body, max)
  if #body < 4 then return nil end
  local nx = unpack("<I4", body)
  if nx > (#body - 4) // 8 then return nil end
  local rest, lens = #body - 4 - 8 * nx, {}
  for i = 1, nx do
    local n = unpack("<i8", body, 5 + 8 * (i - 1))
    if n < 0 or n > rest then return nil end  -- n < 0: 2^63 or more
    rest = rest - n
    lens[i] = n
  end
  if rest == 0 or #body - 4 - 8 * nx > max then return nil end
  local at = 5 + 8 * nx
  local bytes, bufs = body:sub(at, at + rest - 1), {}
  at = at + rest
  for i = 1, nx do
    bufs[i] = body:sub(at, at + lens[i] - 1)
    at = at + lens[i]
  end
  return lens, bytes, bufs
end

local function check_msg(r, body, max, what)
  local lens, bytes, bufs = msg_parts(body, max)
  if lens == nil then
    if r.bad ~= true or r.value ~= nil or r.buffers ~= nil or r.error ~= nil then
      fail(what, "is a MSG that mc_wire_msg must refuse, not bad")
    end
    return
  end
  if r.bad ~= nil then fail(what, "is a good MSG marked bad") end
  if r.error ~= nil then
    if type(r.error) ~= "string" or not r.error:find("^DataCloneError: ")
       or r.value ~= nil or r.buffers ~= nil then
      fail(what, "has a bad error:", tostring(r.error))
    end
  else
    if type(r.buffers) ~= "table" or #r.buffers ~= #lens
       or count(r.buffers) ~= #lens then
      fail(what, "has not the", #lens, "Buffers of its frame")
    end
    for i, b in ipairs(r.buffers) do
      if not rawequal(getmetatable(b), buffer_mt) or b.detached
         or #b ~= lens[i] or b:sub() ~= bufs[i] then
        fail(what, "Buffer", i, "is not the frame's", lens[i], "bytes")
      end
    end
  end
  if #lens == 0 then  -- the port decodes as mc.deserialize does
    local ok, v = pcall(mc.deserialize, bytes)
    if ok ~= (r.error == nil) or (not ok and v ~= r.error) then
      fail(what, "decoded otherwise than mc.deserialize:",
           tostring(r.error), "vs", tostring(v))
    end
    if ok and same.same(v, r.value, options) == false then
      fail(what, "value is not mc.deserialize's")
    end
  end
end

-- What record r says of the frame fr of s.
local function check_record(s, fr, r, max, what)
  if type(r) ~= "table" or r.type ~= fr.type or r.size ~= fr.size then
    fail(what, "is not the", fr.type, "frame of", fr.size, "bytes at",
         fr.at)
  end
  for k in next, r do
    if k ~= "type" and k ~= "size" and not FIELDS[fr.type][k] then
      fail(what, "has a field", tostring(k))
    end
  end
  local body = s:sub(fr.at + 5, fr.at + fr.size - 1)
  if fr.type == "H" then
    local good = #body >= 8 and #body - 8 <= MAXTOKEN
      and body:sub(1, 4) == "mcl1" and unpack("<I4", body, 5) > 0
    if good then
      if r.bad ~= nil or r.heartbeat ~= unpack("<I4", body, 5)
         or r.token ~= body:sub(9) then
        fail(what, "is not its HELLO's heartbeat and token")
      end
    elseif r.bad ~= true or r.heartbeat ~= nil or r.token ~= nil then
      fail(what, "is a bad HELLO not marked bad")
    end
  elseif fr.type == "C" then
    if r.reason ~= body:byte(1) then fail(what, "has the wrong reason") end
  elseif fr.type == "M" then
    check_msg(r, body, max, what)
  end
end

local function scan(s, max, split)
  local ok, recs, consumed, invalid = pcall(core.wire_scan, s, max, split)
  if not ok then fail("wire_scan raised:", tostring(recs)) end
  return { recs = recs, consumed = consumed, invalid = invalid }
end

-- A scan of s, held to the rules.
local function checked(s, max, split)
  local what = ("wire_scan(#%d, max %d, split %s)"):format(#s, max,
                                                          tostring(split))
  local r = scan(s, max, split)
  local frames, consumed, invalid = expect(s, max)
  if math.type(r.consumed) ~= "integer" or r.consumed < 0
     or r.consumed > #s then
    fail(what, "consumed", tostring(r.consumed), "of", #s, "bytes")
  end
  if r.consumed ~= consumed or r.invalid ~= invalid then
    fail(what, "ended at", r.consumed, tostring(r.invalid), "not at",
         consumed, tostring(invalid))
  end
  if type(r.recs) ~= "table" or #r.recs ~= #frames
     or count(r.recs) ~= #frames then
    fail(what, "made", type(r.recs) == "table" and #r.recs or "no",
         "records, not", #frames)
  end
  for i, fr in ipairs(frames) do
    check_record(s, fr, r.recs[i], max, what .. " record " .. i)
  end
  return r, frames
end

-- Whether scan b made what scan a did. Equal encodings are equal records
-- (the usual case, and quick); else they are compared as graphs, since
-- pairs are encoded in `next` order, which two equal tables need not share.
local function same_scan(a, b, what)
  if a.consumed ~= b.consumed or a.invalid ~= b.invalid
     or #a.recs ~= #b.recs then
    fail(what, "ended otherwise than the whole")
  end
  if a.bytes == nil then a.bytes = select(2, pcall(mc.serialize, a.recs)) end
  local ok, bytes = pcall(mc.serialize, b.recs)
  if not (ok and bytes == a.bytes)
     and same.same(a.recs, b.recs, options) == false then
    fail(what, "made other records than the whole")
  end
end

-- What wire_scan allocates, with the collector stopped, in bytes.
local function cost(s, max)
  collectgarbage("stop")
  local before = collectgarbage("count")
  scan(s, max)
  local grew = (collectgarbage("count") - before) * 1024
  collectgarbage("restart")
  return grew
end

local function check(s, max, splits)
  local whole, frames = checked(s, max)
  for _, k in ipairs(splits) do  -- the same as the whole: as checked
    same_scan(whole, scan(s, max, k), "split " .. k)
  end
  -- Cut short: in the first frames and the last, and after them.
  local cuts = {}
  for i = 1, #frames do
    if i <= 3 or i == #frames then
      local fr = frames[i]
      for _, d in ipairs { 1, 3, 4, 5, fr.size - 1 } do
        if d < fr.size then cuts[#cuts + 1] = fr.at - 1 + d end
      end
    end
  end
  for d = 1, 6 do
    if whole.consumed + d < #s then cuts[#cuts + 1] = whole.consumed + d end
  end
  for _, c in ipairs(cuts) do  -- the whole's first records, then the end
    local cut = s:sub(1, c)
    local r = scan(cut, max)
    local fr, consumed, invalid = expect(cut, max)
    if #r.recs ~= #fr or r.consumed ~= consumed or r.invalid ~= invalid then
      fail("cut at", c, "ended at", r.consumed, tostring(r.invalid), "with",
           #r.recs, "records, not at", consumed, tostring(invalid), "with",
           #fr)
    end
    local i = #r.recs
    if i > 0 and same.same(whole.recs[i], r.recs[i], options) == false then
      fail("cut at", c, "record", i, "is not the whole's")
    end
  end
  -- The head after the last frame costs the same whatever it claims,
  -- within max (need more) or over it (invalid).
  if whole.consumed < #s then
    local head = s:sub(whole.consumed + 1, whole.consumed + 5)
    local grew = cost(head, max)
    if grew > HEAD_BOUND then
      fail("a head of", #head, "bytes made wire_scan allocate", grew, "bytes")
    end
  end
end

local function fuzz(s)
  local h = 0
  for i = 1, #s, 1 + #s // 64 do h = (h * 31 + s:byte(i)) % 1000003 end
  local splits = {}
  for k = 1, math.min(#s - 1, SPLITS) do splits[#splits + 1] = k end
  if #s > 1 then
    splits[#splits + 1] = h % #s + 1
    splits[#splits + 1] = (h * 7919) % #s + 1
  end
  check(s, DEFAULT_MAX, splits)
  local few = { 1, 2, 3, 5, splits[#splits] }
  check(s, #s > 0 and s:byte(#s) or 0, few)       -- 0 to 255
  check(s, h % (#s + 16), few)
  check(s, 0, { 1 })
end

if (...) ~= "--seeds" then return fuzz end

-- The seed corpus: valid streams, then what must wait or be refused.

local function frame(t, body) return pack("<I4", #body + 1) .. t .. body end
local function hello(ms, token) return frame("H", "mcl1" .. pack("<I4", ms) .. token) end
local PING = frame("P", "")
local function close(reason) return frame("C", string.char(reason)) end

-- A MSG frame of value v and Buffers bufs (strings): each "\0xfer<i>" in
-- v becomes TRANSFER i - 1, as a port writes a Buffer of its transfer list.
local function message(v, bufs)
  bufs = bufs or {}
  local bytes = mc.serialize(v)
  for i = 1, #bufs do
    local marker = "\0xfer" .. i
    local at = bytes:find(string.char(0x20 + #marker) .. marker, 1, true)
    assert(at, "no marker " .. i)
    repeat
      bytes = bytes:sub(1, at - 1) .. "\10" .. string.char(i - 1)
        .. bytes:sub(at + 1 + #marker)
      at = bytes:find(string.char(0x20 + #marker) .. marker, at, true)
    until not at
  end
  local lens = {}
  for i, b in ipairs(bufs) do lens[i] = pack("<I8", #b) end
  return frame("M", pack("<I4", #bufs) .. table.concat(lens) .. bytes
                    .. table.concat(bufs))
end

local plain = message { 1, "two", { three = 3.5 }, flag = true }
local buffers = message({ a = "\0xfer1", b = "\0xfer2", list = { "\0xfer1" },
                          copy = mc.Buffer("copied") },
                        { "transferred", "" })
local stream = hello(5000, "secret") .. PING .. plain .. buffers .. PING
  .. close(0)

local seeds = {
  hello = hello(5000, "secret"),
  ["hello-no-token"] = hello(1, ""),
  ping = PING,
  close = close(0),
  ["close-timeout"] = close(1),
  ["msg-plain"] = plain,
  ["msg-nil"] = message(nil),
  ["msg-buffers"] = buffers,
  ["msg-big-buffer"] = message("\0xfer1", { ("x"):rep(3000) }),
  stream = stream,
  ["stream-split-header"] = stream .. hello(1, "t"):sub(1, 2),
  ["stream-head-only"] = PING .. plain:sub(1, 5),
  ["truncated"] = PING .. buffers:sub(1, -4),
  ["oversized"] = "\255\255\255\255M" .. ("\0"):rep(16),
  ["oversized-after-ping"] = PING .. pack("<I4", DEFAULT_MAX + 2) .. "M",
  ["bad-type"] = PING .. frame("X", "abc"),
  ["bad-zero-length"] = PING .. "\0\0\0\0",
  ["bad-close-size"] = frame("C", "\0\0"),
  ["bad-ping-body"] = frame("P", "x"),
  ["bad-hello-magic"] = frame("H", "mcl2" .. pack("<I4", 5000)),
  ["bad-hello-heartbeat"] = hello(0, "t"),
  ["bad-hello-token"] = hello(1, ("t"):rep(MAXTOKEN + 1)),
  ["bad-msg-nbuf"] = frame("M", pack("<I4", 3) .. "\1\0"),
  ["bad-msg-lengths"] = frame("M", pack("<I4", 1) .. pack("<I8", 1 << 62)
                                   .. "\1\0"),
  ["bad-msg-empty"] = frame("M", pack("<I4", 1) .. pack("<I8", 2) .. "ab"),
  ["msg-not-clone"] = frame("M", pack("<I4", 0) .. "\3\0"),
  ["msg-transfer-outside"] = frame("M", pack("<I4", 0) .. "\1\10\0"),
  ["msg-trailing"] = frame("M", pack("<I4", 0) .. "\1\0\0"),
}

local dir, n = "spec/fuzz/corpus/frames/", 0
for name, s in pairs(seeds) do
  fuzz(s)  -- each seed passes the check
  local f = assert(io.open(dir .. name, "wb"))
  assert(f:write(s))
  assert(f:close())
  n = n + 1
end
print(("%d seeds written to %s"):format(n, dir))
