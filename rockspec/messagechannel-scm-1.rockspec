rockspec_format = "3.0"
package = "messagechannel"
version = "scm-1"
source = {
  url = "git+file:///messagechannel",
}
description = {
  summary = "MessageChannel and MessagePort for Lua, with structured clone",
  detailed = [[
    Web-standard MessageChannel / MessagePort for Lua, written in C:
    postMessage deep-copies Lua values by a structured-clone algorithm
    (cycles, shared references, integers and floats kept apart), with
    a versioned binary format and a hardened decoder. Messages are
    delivered by a coroutine scheduler, so listeners and port:receive()
    may block without blocking the program.
  ]],
  license = "MIT",
}
-- pthreads, poll(2) and dladdr: Linux (eventfd) and other Unix systems (a
-- pipe); not Windows.
supported_platforms = { "unix" }
-- LPeg is optional: only mc.install needs it (Debian lua-lpeg, or
-- `luarocks install lpeg`).
dependencies = {
  "lua >= 5.1, < 5.5",
}
build = {
  type = "builtin",
  modules = {
    ["messagechannel"] = "lua/messagechannel/init.lua",
    ["messagechannel.eventtarget"] = "lua/messagechannel/eventtarget.lua",
    ["messagechannel.scheduler"] = "lua/messagechannel/scheduler.lua",
    ["messagechannel.port"] = "lua/messagechannel/port.lua",
    ["messagechannel.receiver"] = "lua/messagechannel/receiver.lua",
    ["messagechannel.broadcast"] = "lua/messagechannel/broadcast.lua",
    ["messagechannel.remote"] = "lua/messagechannel/remote.lua",
    ["messagechannel.install"] = "lua/messagechannel/install.lua",
    ["messagechannel.worker"] = "lua/messagechannel/worker.lua",
    ["messagechannel.luv"] = "lua/messagechannel/luv.lua",
    ["messagechannel.cqueues"] = "lua/messagechannel/cqueues.lua",
    ["messagechannel.core"] = {
      sources = {
        "src/bytes.c",
        "src/hub.c",
        "src/msg.c",
        "src/queue.c",
        "src/group.c",
        "src/wire.c",
        "src/net.c",
        "src/nats.c",
        "src/ctx.c",
        "src/codec.c",
        "src/message.c",
        "src/sched.c",
        "src/timers.c",
        "src/buffer.c",
        "src/port.c",
        "src/broadcast.c",
        "src/remote.c",
        "src/worker.c",
        "src/core.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "pthread", "dl" },
      incdirs = { "src" },
    },
  },
}
