---@meta messagechannel

-- LuaLS (lua-language-server) definitions for messagechannel: the module
-- table that `require "messagechannel"` returns, its classes, and the two
-- event-loop adapters. Nothing here runs; add this file (or docs/) to your
-- workspace's `workspace.library`. The adapters are separate modules:
-- annotate them with `---@type messagechannel.luv` and
-- `---@type messagechannel.cqueues`. README.md documents every name here,
-- and `make meta` checks that each one it documents is here.

---A value that a transfer list can move: a MessagePort or a Buffer.
---@alias messagechannel.Transferable MessagePort|Buffer

---A listener: a function or callable value, called as `listener(event)`, or
---a table with a `handleEvent` method, called as
---`listener:handleEvent(event)`.
---@alias messagechannel.Listener fun(event: MessageEvent)|{handleEvent: fun(self: table, event: MessageEvent)}|table

---A handler field's value: a function or callable value, or `nil`.
---@alias messagechannel.Handler fun(event: MessageEvent)|table|nil

------------------------------------------------------------------------------
-- Options tables
------------------------------------------------------------------------------

---The options form of `postMessage`'s second argument.
---@class messagechannel.PostMessageOptions
---@field transfer? messagechannel.Transferable[] the ports and Buffers moved with the message
---@field timeout? number seconds a post to a full bounded partner waits for room; `0` tries once

---Options of `mc.listen` and `mc.connect`; each side applies its own.
---@class messagechannel.RemoteOptions
---@field token? string a secret both sides must present (at most 4,096 bytes); a mismatch closes the pair with reason `"auth"`
---@field capacity? integer messages a remote port holds (default 1024); a full port stops reading, so the sender's `postMessage` waits
---@field heartbeat? number seconds (default 5, 0.001 to 86400); a link silent for three heartbeats closes with reason `"timeout"`
---@field maxMessageSize? integer bytes (default 16 MiB): a larger post raises `DataCloneError:`; a larger frame from the peer closes with reason `"protocol"`

---Options of `mc.BroadcastChannel`.
---@class messagechannel.BroadcastOptions
---@field nats? string a NATS server URL: the channel also publishes to and receives from the subject `name` there

---Options of `mc.MessageChannel`.
---@class messagechannel.ChannelOptions
---@field capacity? integer messages each port holds at most (>= 1); `postMessage` to a full partner waits for room

---Options of `mc.structuredClone`.
---@class messagechannel.CloneOptions
---@field transfer? messagechannel.Transferable[] the ports and Buffers moved into the copy (the originals are detached)

---Options of `addEventListener`; a boolean is accepted and ignored.
---@class messagechannel.ListenerOptions
---@field once? boolean remove the listener before its first call

---Options of `mc.Worker`.
---@class messagechannel.WorkerOptions
---@field eval? boolean `path` is Lua source (chunk name `worker`), not a file name
---@field data? any cloned into the worker as `mc.workerData`
---@field transfer? messagechannel.Transferable[] ports and Buffers moved into the worker with `data`
---@field jit? boolean LuaJIT: keep the compiler on in the worker; `terminate()` then stops it only where it leaves compiled code

---Options of `mc.install`, as the Workers compatibility date and flags.
---@class messagechannel.InstallOptions
---@field compatibility_date? string `"YYYY-MM-DD"`, a real calendar date
---@field compatibility_flags? string[]|string an array of flag names, or one string of names separated by commas and/or white space

------------------------------------------------------------------------------
-- The module
------------------------------------------------------------------------------

---The module table: `local mc = require "messagechannel"`. It is also a
---pollable object, in cqueues' protocol (`mc:pollfd()`, `mc:events()`,
---`mc:timeout()`) and in LuaSocket's (`mc:getfd()`, `mc:dirty()`).
---@class messagechannel
---@field version string the module's version string, e.g. `"0.1.0"`
---@field MessageChannel messagechannel.MessageChannelClass `mc.MessageChannel()` or `mc.MessageChannel.new()` returns a new channel
---@field MessagePort table the port class; calling it raises `TypeError: Illegal constructor`
---@field BroadcastChannel messagechannel.BroadcastChannelClass `mc.BroadcastChannel(name)` or `mc.BroadcastChannel.new(name)` opens a channel of that name
---@field onerror fun(err: any, traceback: string) called for errors that no listener takes; setting it to `nil` brings back the default (in the main thread: write both to `io.stderr`; in a worker: end the worker)
---@field isMainThread boolean `true` in the main thread, `false` in a worker
---@field parentPort MessagePort? in a worker, the port to the parent's Worker object; `nil` in the main thread
---@field threadId integer this thread's id: `0` in the main thread, its Worker's `threadId` in a worker
---@field workerData any in a worker, the clone of `options.data`, decoded at its first read; `nil` in the main thread
---@field pollfd fun(self?: messagechannel): integer a file descriptor that is readable while something waits for `mc.step()` (level-triggered); the same for the life of the Lua state; wait for it to be readable, never read from it or close it. Also `mc:pollfd()`
---@field timeout fun(self?: messagechannel): number? `0` when tasks are ready now, else the seconds until the earliest timer; `nil` when no task waits on the clock. Also `mc:timeout()`
---@field events fun(self?: messagechannel): "r" cqueues' pollable protocol: always `"r"`
---@field getfd fun(self?: messagechannel): integer LuaSocket's `select` protocol: the descriptor of `mc.pollfd()`
---@field dirty fun(self?: messagechannel): boolean LuaSocket's `select` protocol: `true` when tasks are ready now
local messagechannel = {}

---Returns a deep copy of `value` made by the clone rules; ports and Buffers
---in `options.transfer` are moved into the copy and the originals detached.
---Raises `DataCloneError:` for a value that cannot be cloned.
---@param value any
---@param options? messagechannel.CloneOptions
---@return any copy
function messagechannel.structuredClone(value, options) end

---Returns the clone of `value` as a string in the versioned binary format
---(docs/FORMAT.md). A port raises `DataCloneError:`; a Buffer is copied.
---@param value any
---@return string bytes
function messagechannel.serialize(value) end

---Turns a string made by `mc.serialize` back into a value. Raises
---`DataCloneError: <reason> at byte <offset>` for any other bytes.
---@param bytes string
---@return any value
function messagechannel.deserialize(bytes) end

---Names a metatable so that clones keep it: the copy gets the metatable
---registered under that name in the receiving Lua state. Returns
---`metatable`.
---@generic T: table
---@param name string
---@param metatable T
---@return T metatable
function messagechannel.register(name, metatable) end

---A byte buffer: `mc.Buffer(n)` holds `n` zero bytes, `mc.Buffer(s)` a copy
---of the string `s`.
---@param init integer|string `n` or a string
---@return Buffer
function messagechannel.Buffer(init) end

---Runs the scheduler until nothing is left that can make progress, or until
---`timeout` seconds pass. Returns `true` when idle, `false` on timeout.
---Raises when called from inside a task.
---@param timeout? number seconds
---@return boolean idle
function messagechannel.run(timeout) end

---Runs one turn, the tasks that are ready now, without blocking. Returns
---`true` while messagechannel has work that would keep `mc.run()` going,
---`false` when idle. Raises when called from inside a task.
---@return boolean pending
function messagechannel.step() end

---Runs `fn(...)` as a new task, starting at the next turn. Returns the
---task's coroutine.
---@param fn function
---@param ... any
---@return thread task
function messagechannel.spawn(fn, ...) end

---Suspends the current task for `seconds`; outside any task it runs the
---scheduler until the time has passed.
---@param seconds number
function messagechannel.sleep(seconds) end

---Monotonic time in seconds, a float.
---@return number
function messagechannel.now() end

---How long, in microseconds (0 to 1000000), a scheduler waiting for
---another thread watches for its news before it sleeps, in every thread of
---the process; 0 turns the spin off. Default 50. Returns the previous
---value; with no argument only reads it.
---@param microseconds? number
---@return number
function messagechannel.spin(microseconds) end

---Sets `env.MessageChannel` and `env.MessagePort` and returns `true`, or
---sets nothing and returns `false`, as the Workers compatibility date and
---flags decide. Needs LPeg (loaded at the first call).
---@param env table
---@param options? messagechannel.InstallOptions
---@return boolean exposed
function messagechannel.install(env, options) end

---Waits on several ports at once and takes the first message to arrive,
---the oldest by arrival in this state when several wait; same blocking
---rules as `port:receive`. `nil, "timeout"` when `timeout` seconds pass
---(`0` polls); `nil, "closed"` once every port is closed and drained.
---@param ports MessagePort[]
---@param timeout? number seconds
---@return MessageEvent? event
---@return MessagePort|"timeout"|"closed" port the port it came from, or the reason
function messagechannel.receive(ports, timeout) end

---Starts an OS thread with a new Lua state that runs the Lua file `path`
---(with `options.eval`, the Lua source `path`), and returns its Worker
---object at once.
---@param path string
---@param options? messagechannel.WorkerOptions
---@return Worker
function messagechannel.Worker(path, options) end

---Binds and listens at `address` (`"unix:/path"` or `"tcp:host:port"`, port
---0 for one the system picks) and returns a Listener, whose `connect`
---events bring a port for each peer that connects with the same token.
---Raises `bad argument` for a malformed address or option, and
---`listen: address in use: <address>`.
---@param address string
---@param options? messagechannel.RemoteOptions
---@return Listener
function messagechannel.listen(address, options) end

---Returns at once a port whose partner is the port a listener at `address`
---makes for this connection. Posts wait in its queue until the link is up;
---a lost link closes it with `event.reason` (`"refused"` when nobody
---listens).
---@param address string
---@param options? messagechannel.RemoteOptions
---@return MessagePort
function messagechannel.connect(address, options) end

------------------------------------------------------------------------------
-- MessageChannel
------------------------------------------------------------------------------

---`mc.MessageChannel`: call it, or its `new`, for a new channel.
---@class messagechannel.MessageChannelClass
---@overload fun(options?: messagechannel.ChannelOptions): MessageChannel
local MessageChannelClass = {}

---Returns a new channel, as `mc.MessageChannel()` does.
---@param options? messagechannel.ChannelOptions
---@return MessageChannel
function MessageChannelClass.new(options) end

---A channel: two entangled ports. Assigning any field raises `TypeError:`.
---@class MessageChannel
---@field port1 MessagePort the same port object on every read
---@field port2 MessagePort the same port object on every read

------------------------------------------------------------------------------
-- MessagePort
------------------------------------------------------------------------------

---One end of a channel. Assigning a field other than the three handlers
---raises `TypeError:`. `tostring(port)` is `MessagePort (0x...)`, or
---`MessagePort (closed)`. On Lua 5.4, `local p <close> = ...` closes it.
---@class MessagePort
---@field onmessage messagechannel.Handler setting it to a function starts the port
---@field onmessageerror messagechannel.Handler a listener that raised, or a message that could not be decoded
---@field onclose messagechannel.Handler the pair was closed; the last event a port sees
local MessagePort = {}

---Clones `message` now and queues the copy at the entangled port. Returns
---`true` when queued, `false, "closed"` when dropped because the pair is
---closed or this port was detached. Clone and transfer errors
---(`DataCloneError:`) are raised here, and then nothing is sent or detached.
---On a bounded channel, a post to a full partner waits for room (up to
---`timeout` seconds: then `false, "timeout"`).
---@param message any
---@param transfer? messagechannel.Transferable[]|messagechannel.PostMessageOptions
---@return boolean queued
---@return "closed"|"timeout"|nil reason
function MessagePort:postMessage(message, transfer) end

---Enables dispatch of the port's queue. Idempotent; never discards messages.
function MessagePort:start() end

---Disentangles the pair: both ports get a `close` event. Idempotent; never
---raises.
function MessagePort:close() end

---Adds a listener for the event type `type`. Adding the same
---`(type, listener)` twice has no effect. Does not start the port.
---@param type "message"|"messageerror"|"close"|string
---@param listener messagechannel.Listener
---@param options? messagechannel.ListenerOptions|boolean
function MessagePort:addEventListener(type, listener, options) end

---Removes that listener; an unknown one is ignored.
---@param type string
---@param listener messagechannel.Listener
function MessagePort:removeEventListener(type, listener) end

---Dispatches the table `event` (it needs a string `event.type`) to this
---port's listeners of that type, synchronously, and returns
---`not event.defaultPrevented`.
---@param event table
---@return boolean
function MessagePort:dispatchEvent(event) end

---Takes the next queued message of the port, started or not, and returns
---its event. Inside a task it suspends the task; outside any task it runs
---the scheduler meanwhile. `nil, "timeout"` when `timeout` seconds pass
---(`receive(0)` polls); `nil, "closed"` once the pair is closed and the
---queue is empty.
---@param timeout? number seconds
---@return MessageEvent? event
---@return "timeout"|"closed"|nil reason
function MessagePort:receive(timeout) end

---The number of messages queued at this port and not yet taken.
---@return integer
function MessagePort:pending() end

---A port waiting for messages from another thread keeps `mc.run()` going
---again (the default).
function MessagePort:ref() end

---Lets `mc.run()` return even though this port waits for another thread.
function MessagePort:unref() end

---`true` by default, `false` after `unref()`.
---@return boolean
function MessagePort:hasRef() end

------------------------------------------------------------------------------
-- Events
------------------------------------------------------------------------------

---The event a listener gets: a Lua table. `origin`, `lastEventId`,
---`defaultPrevented` and the methods come from its metatable, and `ports`
---is made on first read.
---@class MessageEvent
---@field type "message"|"messageerror"|"close"|"error"|"exit"|"connect"|string
---@field data any the copy; `nil` for `close` and for a message that could not be decoded
---@field error any on `messageerror`: the error raised, or the `DataCloneError:`; on a Worker's `error`: a clone of the worker's uncaught error
---@field ports MessagePort[] the ports transferred with the message, in transfer-list order; `{}` when none
---@field target MessagePort|Worker the receiving port, or the Worker
---@field currentTarget MessagePort|Worker the receiving port, or the Worker
---@field origin string `""`
---@field lastEventId string `""`
---@field source nil always `nil`
---@field defaultPrevented boolean `true` after `event:preventDefault()`
---@field traceback? string on a Worker's `error` event: the worker's traceback
---@field code? integer on a Worker's `exit` event: `0` for a normal end, non-zero after an uncaught error or `terminate()`
---@field reason? "disconnected"|"timeout"|"protocol"|"auth"|"refused" on the `close` of a remote port whose link was lost; `nil` for a normal close
---@field port? MessagePort on a Listener's `connect` event: the new port, entangled with the connecting side's
local MessageEvent = {}

---Sets `defaultPrevented`.
function MessageEvent:preventDefault() end

---The listeners after the current one are skipped.
function MessageEvent:stopImmediatePropagation() end

------------------------------------------------------------------------------
-- Buffer
------------------------------------------------------------------------------

---A transferable byte buffer. `#buf` is its length (0 once detached); any
---read or write on a detached buffer raises `InvalidStateError:`.
---`tostring(buf)` is `Buffer (5 bytes)` or `Buffer (detached)`.
---@class Buffer
---@operator len: integer
---@field detached boolean `true` once a transfer has moved its bytes away
local Buffer = {}

---Reads as `string.sub` reads a string of the same bytes.
---@param i? integer
---@param j? integer
---@return string
function Buffer:sub(i, j) end

---Reads as `string.byte` reads a string of the same bytes.
---@param i? integer
---@param j? integer
---@return integer ...
function Buffer:byte(i, j) end

---Writes `s` over the bytes from position `pos` (1-based; negative counts
---from the end) and returns the buffer; raises when `s` would not fit.
---@param pos integer
---@param s string
---@return Buffer
function Buffer:write(pos, s) end

------------------------------------------------------------------------------
-- BroadcastChannel
------------------------------------------------------------------------------

---`mc.BroadcastChannel`: call it, or its `new`, with a name.
---@class messagechannel.BroadcastChannelClass
---@overload fun(name: string, options?: messagechannel.BroadcastOptions): BroadcastChannel
local BroadcastChannelClass = {}

---Opens a channel of that name, as `mc.BroadcastChannel(name)` does.
---@param name string
---@param options? messagechannel.BroadcastOptions
---@return BroadcastChannel
function BroadcastChannelClass.new(name, options) end

---A channel that reaches every other open channel of the same name in any
---thread of the process. `tostring(bc)` is `BroadcastChannel (name)`, then
---`BroadcastChannel (name, closed)`.
---@class BroadcastChannel
---@field name string the name it was opened with
---@field onmessage messagechannel.Handler another channel of the name posted
---@field onmessageerror messagechannel.Handler a message that could not be decoded here
---@field onerror messagechannel.Handler with `{nats = url}`: a NATS problem (`event.error`, a string): the connection lost or given up, messages dropped for a slow consumer, a post lost
local BroadcastChannel = {}

---Clones `message` to every other open channel of the same name, in any
---thread, in post order per sender. Raises `InvalidStateError:` after
---`close()`, and `DataCloneError:` when the value cannot be cloned.
---@param message any
function BroadcastChannel:postMessage(message) end

---Leaves the name: undispatched messages are dropped, later posts raise.
function BroadcastChannel:close() end

---@param type "message"|"messageerror"
---@param listener function|table
---@param options? messagechannel.ListenerOptions
function BroadcastChannel:addEventListener(type, listener, options) end

---@param type "message"|"messageerror"
---@param listener function|table
function BroadcastChannel:removeEventListener(type, listener) end

---@param event table
---@return boolean notCanceled
function BroadcastChannel:dispatchEvent(event) end

---With a `message` listener, the channel keeps `mc.run()` going (the default).
function BroadcastChannel:ref() end

---Lets `mc.run()` return even though the channel listens.
function BroadcastChannel:unref() end

---@return boolean
function BroadcastChannel:hasRef() end

------------------------------------------------------------------------------
-- Worker
------------------------------------------------------------------------------

---The parent's handle on a worker thread. Its events have the Worker as
---`target`. `tostring(w)` is `Worker (running)`, then `Worker (exited)`.
---Assigning any other field raises `TypeError:`.
---A listening socket (`mc.listen`).
---@class Listener
---@field address string the address bound, with the port chosen filled in
---@field onconnect fun(event: MessageEvent)|table|nil `event.port` is the new port
local Listener = {}

---No new connections; those made stay open.
function Listener:close() end

---An open, ref'd listener keeps `mc.run()` going (the default).
function Listener:ref() end

---The listener no longer keeps `mc.run()` going.
function Listener:unref() end

---@return boolean
function Listener:hasRef() end

---@param type "connect"|string
---@param listener messagechannel.Listener
---@param options? messagechannel.ListenerOptions|boolean
function Listener:addEventListener(type, listener, options) end

---@param type string
---@param listener messagechannel.Listener
function Listener:removeEventListener(type, listener) end

---@param event table
---@return boolean
function Listener:dispatchEvent(event) end

---@class Worker
---@field onmessage messagechannel.Handler what the worker posts on `mc.parentPort`; setting it starts delivery
---@field onmessageerror messagechannel.Handler
---@field onerror messagechannel.Handler the uncaught error that ended the worker: `e.error`, `e.traceback`
---@field onexit messagechannel.Handler the worker has ended: `e.code`; the last event a Worker sees
---@field threadId integer an integer never reused in the process, kept after exit
local Worker = {}

---Posts to the worker's `mc.parentPort`, as `port:postMessage`; `false`
---once the worker has ended.
---@param message any
---@param transfer? messagechannel.Transferable[]|messagechannel.PostMessageOptions
---@return boolean queued
---@return "closed"? reason
function Worker:postMessage(message, transfer) end

---Stops the worker, even in a busy Lua loop (not inside a C call). Its exit
---code is then 1. Idempotent.
function Worker:terminate() end

---Adds a listener for `message`, `messageerror`, `error` or `exit`; a
---`message` listener receives without `start()`.
---@param type "message"|"messageerror"|"error"|"exit"
---@param listener messagechannel.Listener
---@param options? messagechannel.ListenerOptions|boolean
function Worker:addEventListener(type, listener, options) end

---Removes that listener; an unknown one is ignored.
---@param type "message"|"messageerror"|"error"|"exit"
---@param listener messagechannel.Listener
function Worker:removeEventListener(type, listener) end

---The live worker keeps the parent's `mc.run()` going again (the default).
function Worker:ref() end

---An unref'd worker, and the port its messages come through, do not keep
---the parent's `mc.run()` going.
function Worker:unref() end

---`true` by default, `false` after `unref()`.
---@return boolean
function Worker:hasRef() end

------------------------------------------------------------------------------
-- Event-loop adapters, each loaded only when required
------------------------------------------------------------------------------

---`require "messagechannel.luv"`: run the scheduler inside luv's default
---loop.
---@class messagechannel.luv
local luv = {}

---Runs the scheduler inside luv's default loop: messages, timers, `receive`
---and `sleep` inside tasks work as under `mc.run()`, and the loop stays alive
---exactly while messagechannel has work, so `uv.run()` returns when both are
---idle.
function luv.start() end

---Detaches the scheduler from luv's loop; what arrives then waits for a
---later `mc.run()`, `mc.step()` or `.start()`.
function luv.stop() end

---`require "messagechannel.cqueues"`: run the scheduler as a task of a
---cqueues controller.
---@class messagechannel.cqueues
local cqueues = {}

---Runs the scheduler as a task of the cqueues controller `cq` and returns
---`cq`. The task ends when messagechannel is idle, so `cq:loop()` returns
---when both are, and starts again by itself when work comes later; attaching
---to another controller moves it there. A listener may call
---cqueues' own blocking functions (`cqueues.sleep`, socket reads): the yield
---reaches cqueues, and the other tasks keep running.
---@param cq userdata a cqueues controller (`cqueues.new()`)
---@return userdata cq
function cqueues.attach(cq) end

return messagechannel
