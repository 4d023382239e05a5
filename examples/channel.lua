-- A tour of MessageChannel: the Workers documentation example done right,
-- pull-style receive, and close. Run it with `make demo`.

local mc = require "messagechannel"

local function say(...)
  print(string.format(...))
end

-- 1. The two ends of a channel talk to each other: what is posted on one
--    port arrives at the *other*. The Cloudflare Workers docs post on port2
--    and listen on port2, so the handler never fires:
do
  local ch = mc.MessageChannel()
  local fired = false
  ch.port2.onmessage = function() fired = true end
  ch.port2:postMessage("hello")  -- goes to port1, which has no listener
  mc.run()
  say("1. posted on port2, handler on port2: fired = %s", tostring(fired))
  local ev = ch.port1:receive(0)  -- the message waits at port1, not lost
  say("   the message waits at port1: %q", ev.data)
end

-- ... and the correct form: post on one port, listen on its partner.
do
  local ch = mc.MessageChannel()
  ch.port2.onmessage = function(e)
    say("   post on port1, listen on port2: port2 got %q", e.data.text)
  end
  local msg = { text = "hello" }
  ch.port1:postMessage(msg)
  msg.text = "changed after posting"  -- the message was cloned when posted
  say("   postMessage returned, nothing dispatched yet")
  mc.run()
end

-- 2. Pull style: a task waits in receive() without blocking the program.
do
  local ch = mc.MessageChannel()
  mc.spawn(function()
    for i = 1, 3 do
      local ev = ch.port2:receive()
      say("2. consumer task received %d: %s", i, ev.data)
    end
  end)
  mc.spawn(function()
    for _, word in ipairs({ "one", "two", "three" }) do
      ch.port1:postMessage(word)
      mc.sleep(0.01)
    end
  end)
  mc.run()
  -- Outside any task, receive() runs the scheduler until it has a message.
  ch.port1:postMessage("from the main chunk")
  say("   outside a task: %s", ch.port2:receive().data)
  say("   with nothing queued: %s", select(2, ch.port2:receive(0)))
end

-- 3. close: both ports get a close event, after the messages queued
--    before it; then postMessage returns false and receive says closed.
do
  local ch = mc.MessageChannel()
  ch.port2.onmessage = function(e) say("   port2 got %q", e.data) end
  ch.port1.onclose = function() say("   port1: close") end
  ch.port2.onclose = function() say("   port2: close (after its messages)") end
  ch.port1:postMessage("last words")
  ch.port1:close()
  say("3. postMessage after close returns %s", tostring(ch.port1:postMessage("x")))
  mc.run()
  say("   receive on a closed port: %s", select(2, ch.port2:receive()))
end

-- 4. A listener that raises does not stop delivery: messageerror gets it.
do
  local ch = mc.MessageChannel()
  ch.port2.onmessage = function(e)
    if e.data == 2 then error("cannot handle 2", 0) end
    say("4. handled %d", e.data)
  end
  ch.port2.onmessageerror = function(e)
    say("   messageerror for %d: %s", e.data, e.error)
  end
  for i = 1, 3 do ch.port1:postMessage(i) end
  mc.run()
end
