-- messagechannel.scheduler: the coroutine scheduler of one Lua state:
-- tasks, timers, waiting (receive, sleep), the loop (run, step), and the
-- dispatch of what reaches a receiver (a MessagePort) as events. The C
-- half (src/sched.c) keeps the run queue filled with a token for every
-- message that can be dispatched; listeners and events are the
-- EventTarget model's (messagechannel.eventtarget).
--
-- Listeners run in coroutines from a pool. A listener that raises kills
-- its coroutine; the scheduler then goes on with the next listener of the
-- same event in a fresh coroutine. So no listener is called under pcall,
-- and any listener may block (receive, sleep) on every Lua version.
--
-- Out of memory, no table or counter here is left half-changed: what can
-- allocate (a new table, a new key) comes first, and a counter moves after
-- the store it counts.

local core = require "messagechannel.core"
local ET = require "messagechannel.eventtarget"

local M = {}

local create, resume, yield, running, status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running,
  coroutine.status
local error, rawequal, rawget, select, setmetatable, tostring, type, xpcall,
  pcall = error, rawequal, rawget, select, setmetatable, tostring, type,
  xpcall, pcall
local next, pairs = next, pairs
local traceback, getinfo = debug.traceback, debug.getinfo
local format = string.format
local huge = math.huge
local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

local function pack(...)
  return { n = select("#", ...), ... }
end

local abroad = core.abroad
local take, deliver, room, changed, now, poll, busy, enqueue, looping =
  core.take, core.deliver, core.room, core.changed, core.now, core.poll,
  core.busy, core.enqueue, core.looping
-- Stores t[k] = v for each triple in one call, nothing or all (src/sched.c)
local commit = core.commit
-- Runs a scheduler loop: marks it running, in protected mode (src/sched.c)
local enter = core.enter
local net_watch = core.net_watch
-- Calls a receiver's one plain listener for its head and for the messages
-- after it, each listener call yieldable (Lua 5.3 and later; else nil, and
-- the runner calls the listener itself, one message per deliver).
local dispatch_on = core.dispatch_on
local arrival = core.arrival
local raise_at, raise_undo, pending_news, wake_host, hosted =
  core.raise_at, core.raise_undo, core.news, core.wake, core.hosted
local new_event, listeners, call, walk =
  ET.new_event, ET.listeners, ET.call, ET.walk
local uservalue = core.uservalue
local runq = core.runq_reset(true)
-- The run queue C holds: runq_reset may make a new one, which reaches
-- runq by the store after its call. An error a hook raises before that
-- store (a return hook's, an instruction count's) leaves the old table
-- here while C queues into the new one: exclusive takes the table from C
-- before each loop and once it ended.

-- A dispatch that removed a `once` listener tells the C side to reread
-- the target's listeners; a target made in Lua (a Worker, a Listener)
-- has nothing there to reread.
local function relisten(obj)
  if type(obj) == "userdata" then return changed(obj) end
end

-- What a task yields to the scheduler, compared with what a coroutine
-- yielded by rawequal: == may call a metamethod (LuaJIT calls a cdata's
-- __eq even against a function).
local IDLE = {}    -- a pool coroutine finished its job
local WAIT = {}    -- suspended until something wakes it

-- M.facade is the module table users see; mc.onerror is read from it.
M.facade = M

---------------------------------------------------------------------------
-- Reporting errors nobody takes
---------------------------------------------------------------------------

-- The text of an error value, as the standalone interpreter gives it;
-- a __tostring that raises or returns no string is not the error's.
local function text_of(err)
  if type(err) == "string" then return err end  -- no call: near the C
  local ok, text = pcall(tostring, err)          -- stack's limit, it fails
  if ok and type(text) == "string" then return text end
  return format("(error object is a %s value)", type(err))
end
M.text_of = text_of

local function default_onerror(err, tb)
  io.stderr:write("messagechannel: uncaught error: ", text_of(err), "\n",
                  tostring(tb), "\n")
end
M.default_onerror = default_onerror

---------------------------------------------------------------------------
-- Timers: a binary heap ordered by (time, sequence)
---------------------------------------------------------------------------

-- The heap is changed only by C functions (src/timers.c), each whole: a
-- hook that raises between two moves of a sift written in Lua would leave
-- one entry twice in the heap and another lost. timers[0] counts them.
local timers, timer_seq = { [0] = 0 }, 0
local heap_push, heap_pop, heap_compact =
  core.timers_push, core.timers_pop, core.timers_compact

-- A cancelled timer (its `dead` set here or by src/sched.c) leaves the
-- heap when it reaches the top. So that a loop of waits with long
-- timeouts that end early does not pile them up, the heap is rebuilt
-- without them each time it has grown to compact_at entries.
local COMPACT_MIN = 1024
local compact_at = COMPACT_MIN

local function compact_timers()
  local n = heap_compact(timers)
  compact_at = 2 * n > COMPACT_MIN and 2 * n or COMPACT_MIN
end

-- A turn ends early once cut_at (mc.now() time) has passed: when a timer
-- falls due (not a sleep(0)'s), or when the deadline of the mc.run(),
-- mc.sleep() or receive() that runs it passes. What is left of the turn
-- stays queued for the next turn, which fires the timers that fell due
-- first, before the news, and moves their tasks ahead of that rest (cut;
-- set too when a timer fell due after the runner last looked). So a
-- flood from another thread that outpaces its listener, which makes each
-- turn longer than the one before (it takes what arrived during that
-- one), cannot keep sleeping tasks, timers or a deadline waiting behind
-- it (API.md 3.1). The runner looks at the clock once it has taken CHECK
-- tokens since it last did (runq[-1] reaches check_at; dispatch_on every
-- 16 messages, and it stops then), and a receive in a task before it
-- takes a message (pause_now). An adapter's step ends once it has run for
-- HOST_SLICE seconds (see M.host_step).
local CHECK = 16
local HOST_SLICE = 0.05
local cut_at, cut, check_at = huge, false, 0

-- A timer for task co (and waiter w) at time t, not in the heap yet. Its
-- slot is made now, past the heap's end where nothing reads it, so that
-- push_timer stores only into slots that exist.
-- zero: a sleep(0)'s, due at once.
local function new_timer(t, co, w, zero)
  if timers[0] >= compact_at then compact_timers() end
  local e = { t = t, seq = timer_seq + 1, co = co, w = w, dead = false,
              zero = zero or false, fired = false }
  timers[timers[0] + 1] = e
  timer_seq = e.seq
  return e
end

-- Puts timer e, just made by new_timer, in the heap. Allocates nothing.
-- A sleep(0)'s does not end the turn early: it means "after what is ready
-- now", as a bare yield does (nor does it go first after a cut: see
-- fire_timers).
local function push_timer(e)
  heap_push(timers, e)
  if e.t < cut_at and not e.zero then cut_at = e.t end  -- one begun now
end

local function cancel_timer(e)
  if e then e.dead = true end
end

local function pop_timer() return heap_pop(timers) end



---------------------------------------------------------------------------
-- Tasks
--
-- A turn is run by a runner: a pool coroutine that takes the turn's tokens
-- one after the other and calls the listeners itself, so a message costs
-- no coroutine switch. Its job table says which event and listener it is
-- at. When a listener blocks (receive, sleep), the runner stays with that
-- listener, and a new runner takes over the turn; woken later, it finishes
-- its job and goes back to the pool. When a listener raises, the runner
-- dies, and a new coroutine finishes the job from the next listener.
---------------------------------------------------------------------------

local tasks = setmetatable({}, { __mode = "k" })   -- coroutines we own
-- Workers and their ends (see reserve_worker); a task running an
-- on_exit -> its watch.
local live_workers, nlive, nworkers, nidle = {}, 0, 0, 0
local recount = false  -- see recount_workers
local end_of = setmetatable({}, { __mode = "k" })
local drop_watch
-- A listener dispatchEvent runs inside a task gets a coroutine of its own,
-- whose yields it passes on: such a coroutine -> the task.
-- These tables, and `posting` below, are weak in their values too: a
-- value reaches its key (the task's stack holds the listener's
-- coroutine, a post's wait names its task), and on Lua 5.1 and LuaJIT,
-- which have no ephemerons, a strong value would keep its key, and both,
-- for good. Each value lives as long as its entry matters: the task that
-- runs the coroutine, the wait that a port's queue holds.
local outer_of = setmetatable({}, { __mode = "kv" })
-- Such a coroutine -> the one that passes its yields on (the task, or the
-- listener's coroutine that dispatched, when listeners dispatch in turn).
local passer_of = setmetatable({}, { __mode = "kv" })
-- While such a coroutine's yield is passed on: the task -> that coroutine
-- (the innermost one, when listeners dispatch in turn). A passing on
-- that failed (the task could not yield) leaves it set: it counts only
-- while its task is suspended in call_reporting (passed_on, passes_to).
local deepest = setmetatable({}, { __mode = "kv" })

-- The task running now (the one to suspend and wake), or nil.
local function current_task()
  local co = running()
  if co == nil then return nil end
  return outer_of[co] or (tasks[co] and co) or nil
end
-- A runner -> its job, for the runner's life. On Lua 5.1 and LuaJIT,
-- which have no ephemerons, the table is weak in its values too (job.co
-- is the runner: a strong value would keep both for good), and the job
-- lives on its runner's stack (runner_main), or in `unstarted` until the
-- runner first runs. So a runner whose listener waits for good at ports
-- nothing reaches goes with them.
local job_of = setmetatable({}, {
  __mode = _VERSION == "Lua 5.1" and "kv" or "k" })
local unstarted = setmetatable({}, { __mode = "k" })  -- runner -> job

-- A task closed (Lua 5.4: coroutine.close) while it waited is gone: its
-- dead coroutine (status) is no runner (job_of). Its wait ends with
-- nothing handed to it, and it is not resumed. A runner so closed (the
-- scheduler's own coroutine, inside a listener) has its wait ended the
-- same way, but is resumed once, which fails (cannot resume dead
-- coroutine) and ends that listener as an error does, so that its
-- dispatch goes on. This is checked inline, with no Lua function called:
-- where nothing may allocate, such a call could need a CallInfo that
-- room() did not make.
local pool, npool = {}, 0
local runner = nil       -- the coroutine running the current turn's tokens
local stop = 0  -- the last token of this turn; runq[-1] is the last taken

-- mc.onerror raised inside a task: the error to raise from run/step once
-- the sentinel FATAL has unwound the task.
local FATAL = {}
local fatal_err

-- Whether err is Lua's out-of-memory error.
local function no_memory(err)
  return type(err) == "string" and err:find("not enough memory", 1, true)
    and true or false
end

-- Ctrl-C under the standalone interpreter: its own message, with or
-- without its place. Like FATAL, it ends the loop, not a listener.
local function interrupted(err)
  return type(err) == "string"
    and (err == "interrupted!" or err:find("^[^\n]*:%d+: interrupted!$"))
    and true or false
end

-- Outside any task, an error mc.onerror raises for a listener's error
-- (one of dispatchEvent's listeners) leaves through the listeners that
-- dispatched, none of which reports it again: escaping holds it
-- (escaping_set) until the outermost listener call is over. plain_depth
-- counts those calls under way.
local escaping, escaping_set, plain_depth = nil, false, 0

-- mc.onerror set to a value that cannot be called: the error goes out of
-- the loop as a TypeError that tells so and carries the error's text (a
-- plain field of the module table: checked when used).
local function bad_onerror(h, err, tb)
  error(format("TypeError: mc.onerror must be a function, a callable "
               .. "value or nil (got %s); the error it was given: %s\n%s",
               ET.typename(h, true), text_of(err), tostring(tb or "")), 0)
end

-- ev's key once the error it carries went to mc.onerror or out of the
-- loop (see run_receiver).
local REPORTED = {}

-- t[k] = true and f(...) in one C call: no hook's error between the two.
local mark_call = core.mark_call

-- Reports err to mc.onerror; with ev, the event (or the record) that
-- carries it, only once: ev is marked in the call that calls mc.onerror,
-- so that an error (a hook's) before the call leaves the report to be
-- made again, and one after it finds it made.
local function report(err, tb, ev)
  if ev and rawget(ev, REPORTED) then return end
  local h = M.facade.onerror
  if h == nil then
    h = M.default_onerror
  elseif not ET.is_callable(h) then
    local bad = h
    h = function(e, t) return bad_onerror(bad, e, t) end
  end
  local task = current_task()
  if not task then
    if plain_depth == 0 then
      if ev then return mark_call(ev, REPORTED, h, err, tb) end
      return h(err, tb)
    end
    local ok, e
    if ev then ok, e = pcall(mark_call, ev, REPORTED, h, err, tb)
    else ok, e = pcall(h, err, tb) end
    if ok then return end
    escaping, escaping_set = e, true
    error(e, 0)
  end
  local ok, e
  if ev then ok, e = pcall(mark_call, ev, REPORTED, h, err, tb)
  else ok, e = pcall(h, err, tb) end
  if not ok then
    fatal_err = e
    error(FATAL, 0)
  end
end

M.report = report

-- Wakes task co with the given values at the next turn.
local function wake(co, ...)
  enqueue({ co, select("#", ...), ... })
end


-- Ends a job: a messageerror event for each message listener that
-- raised, before the port's next message: job.errs holds their
-- {error, traceback}. job.ek is the next one to make, or -k while the
-- walk of number k's listeners is under way: each step below is one
-- store, so that an interrupt (a hook may raise at any instruction)
-- leaves a state the next turn goes on from, none made twice or lost
-- (see runner_main). The job's other fields are let go when its
-- coroutine goes back to the pool.
local function finish_job(job)
  local errs = job.errs
  if errs and job.ek < 0 then  -- a walk an error or an interrupt stopped
    walk(job, call, relisten)
    job.ek = 1 - job.ek
  end
  while errs and job.ek <= #errs do
    local k = job.ek
    local ev = new_event("messageerror", job.target, job.data,
                         job.ports or nil)
    ev.error = errs[k][1]
    local list = listeners(job.U, "messageerror")
    if list[1] then
      job.ev = ev  -- first: until ek is -k, the next turn makes k again
      job.list = list
      job.i = 1
      job.ek = -k
      walk(job, call, relisten)
      job.ek = k + 1
    else
      job.list = false  -- walked: if report raises, nothing to walk again
      report(errs[k][1], errs[k][2], errs[k])  -- once (its mark)
      job.ek = k + 1
    end
  end
  job.errs = false  -- first: a job without errs walks again only its own event
  job.ev = false
end

local step_task, resumed
local writer_done, retry_writers

-- The post wait (waitroom's w) each task is suspended in. On Lua 5.1 and
-- LuaJIT a postMessage that other code resumed returns while its post
-- still waits (it has no continuation to look again): the end of that
-- post then wakes the task only if it waits for nothing else since, or
-- the wake would end the task's next wait with this post's results.
local posting = setmetatable({}, { __mode = "kv" })  -- see outer_of

-- Whether a task can be closed while it waits (Lua 5.4: coroutine.close),
-- so that its dead coroutine tells that its waiting post is given up.
-- Elsewhere a task that other code resumed may end while a post it made
-- waits on (see posting), and that post is still to be sent.
local can_close = rawget(coroutine, "close") ~= nil
-- A dispatchEvent listener's coroutine that waits -> its wait (Lua 5.4,
-- see wake_closed_nested).
local nested_waits = setmetatable({}, { __mode = "k" })
-- Set when one of posting, held_jobs and nested_waits gains an entry, and
-- cleared by end_closed_waits once all three are empty: a turn then skips
-- looking at them.
local closable = false

-- A wait in a task registers itself (a waiter, a timer, a held post),
-- then yields WAIT. A yield can fail (inside table.sort's comparator or
-- string.gsub's function; on Lua 5.1 inside pcall too), and the task may
-- catch the error: the wait must not stay registered, or a waiter nobody
-- waits for takes a message, a timer wakes the task early, a held post is
-- sent. Where Lua tells (coroutine.isyieldable: 5.3, 5.4, LuaJIT) and
-- the task itself waits, the wait raises that error before it registers
-- anything. Still, a hook may raise (an instruction limit) between the
-- wait's registration and its yield, anywhere: so the wait the
-- running task registered, and that task, are noted here until the
-- scheduler sees its yield (one task runs at a time); one whose yield
-- failed is undone (abandon) before the task waits again and before the
-- scheduler goes on: when the task yields or ends, or when the runner it
-- ran in takes its next token. A task that code resumed from elsewhere
-- (see waited) yields to that code, not to the scheduler: its wait
-- stands when the coroutine that waits (unconfirmed.in_co: the task, or its
-- dispatchEvent listener's) is suspended in that wait's own yield.
local isyieldable = rawget(coroutine, "isyieldable")
-- The noted wait (w), its task (co) and the coroutine that waits (in_co),
-- or false. Fields, not upvalues: under Lua 5.4's generational collector
-- a young object stored in an old closure's upvalue turns old at once,
-- and so, soon, does the waiting task with all it reaches, which then
-- only a major collection frees (a loop whose tasks wait for good at
-- channels it drops grew by about 1 KB a task).
local unconfirmed = { w = false, co = false, in_co = false }
local abandon, waited, call_reporting

-- Whether coroutine c is suspended in a yield of function fn, or of fn2.
local function suspended_in(c, fn, fn2)
  if status(c) ~= "suspended" then return false end
  local f = getinfo(c, 1, "f")
  return f ~= nil and (f.func == fn or f.func == fn2)
end

-- Whether coroutine c's yield is being passed on to coroutine to: c is
-- to, or a listener's coroutine to runs, directly or in turn, and each
-- coroutine on the way is suspended in that passing on (one whose
-- passing on failed went on, and waits or yields on its own).
local function passes_to(c, to)
  while c do
    if c == to then return true end
    c = passer_of[c]
    if not (c and suspended_in(c, call_reporting)) then return false end
  end
  return false
end

-- The listener's coroutine whose yield task co is suspended passing on
-- now, or nil (see deepest).
local function passed_on(co)
  return suspended_in(co, call_reporting) and deepest[co] or nil
end

-- Whether the yield task co is suspended in (or yielded just now) is
-- coroutine c's: c is co, or the listener whose yield co passes on.
local function yielded_by(co, c)
  return c == co or passed_on(co) == c
end

-- The noted wait is seen no more: undone unless its coroutine is
-- suspended in the yield of receive's or mc.receive's wait or of sleep,
-- or of postMessage's wait for room (on 5.1 a resume by other code
-- makes that postMessage return while its post waits on: see posting),
-- that yield being the one its task passes on, and
-- each coroutine that passes its yields on (dispatchEvent listeners) in
-- that passing on: a yield that failed on the way leaves one running.
-- Decided before anything is cleared, so that an error (out of memory)
-- leaves it noted.
local waits_for_room = core.waits_for_room
local function settle_unconfirmed()
  local w, c = unconfirmed.w, unconfirmed.in_co
  local stands = (suspended_in(c, waited, M.sleep) or waits_for_room(c))
    and yielded_by(unconfirmed.co, c)
  c = passer_of[c]
  while stands and c do
    stands = suspended_in(c, call_reporting)
    c = passer_of[c]
  end
  unconfirmed.w = false  -- first: the others count only while it is set
  unconfirmed.co, unconfirmed.in_co = false, false
  if not stands then abandon(w) end
end

-- The tasks waiting at a receiver (U.waiters) and the posts waiting for
-- room at a port (U.writers) are queues, oldest first: q[q.h] ..
-- q[q.h + q.n - 1]. The oldest leaves in O(1), in C too (src/sched.c
-- takes from them without allocating: h and n always exist).
local function queue_of(U, name)
  local q = U[name]
  if not q then
    q = { h = 1, n = 0 }
    U[name] = q
  end
  return q
end

-- Queue q: push(q, v) adds v as the newest (out of memory: raises with
-- q as it was); take_out(q, v) takes v out (q may be nil), returning
-- whether it was there. In C, each change whole (see src/sched.c).
local push, take_out = core.q_push, core.q_take_out
local close_waiter = core.close_waiter

-- Resumes task co for its wake, and ends the wake in the same C call:
-- done is its token's index in the run queue, which the token leaves, or
-- the job that deliver or close_waiter noted co in (job.wake), which
-- forgets it. A runner that fails before (a hook's error) leaves the wake
-- to the next turn, or the job to resume co (runner_main): not lost, and
-- not resumed twice.
local resume_task = core.resume_task

-- Hands the close to each task waiting in receive, first come first:
-- nil, "closed". (deliver hands messages.) Each waiter is done and out of
-- the queue before its task is resumed, in one C call that notes the task
-- in job.wake (see close_waiter, fail). A waiter of mc.receive (w.many)
-- only leaves this port, until the last of its ports that were open
-- closes.
local function hand_close(job, obj)
  while true do
    local co = close_waiter(obj, job)
    if co == nil then return end
    if co then
      if status(co) == "dead" and not job_of[co] then  -- gone
        job.wake = false
      else
        resumed(co, resume_task(resume, co, job, nil, "closed"))
      end
    end
  end
end

-- A run queue token {EVENT, target, U, ev [, unheard]}: dispatch ev at
-- target, or call unheard(ev) when no listener takes it then. (The marker
-- is the events' metatable, which core.enqueue knows.)
local EVENT = ET.EVENT_MT

-- Dispatches ev at target after the tokens queued now (at the next turn
-- when a turn runs); unheard(ev), if given, is called instead when no
-- listener takes it then, and taken(job), if given, first, as the
-- event's turn comes, with the job set for it (it must not raise, and
-- may be called again: see runner_main). Queued whole, or raises with
-- nothing queued. With t, t[k] = v once it is queued, in the same call:
-- what notes it queued is never apart from it (see core.enqueue).
local function dispatch_later(target, U, ev, unheard, taken, t, k, v)
  enqueue({ EVENT, target, U, ev, unheard, taken }, t, k, v)
end
M.dispatch_later = dispatch_later

-- Sets job to dispatch the event of token tok, as deliver does for a
-- receiver's head: returns the one listener when it is a plain function,
-- and then nothing allocates until it is called at the caller's depth
-- (room checks the stack); else false. Then ev.
local function event_job(job, tok)
  local target, U, ev = tok[2], tok[3], tok[4]
  local list = listeners(U, ev.type)
  local rec = list[1]
  room()
  job.target, job.U, job.list, job.i = target, U, rec and list or false, 1
  job.ev = ev  -- last: a job with ev set is one to go on with (fail)
  if rec and not list[2] and not rec.removed and not rec.once
     and type(rec.fn) == "function" then
    return rec.fn, ev
  end
  return false, ev
end

-- Runs the event deliver made of a receiver's head (or event_job of an
-- event token), when it is not one for one plain function: job is set
-- for it. unheard(ev), when given, takes an event that finds no listener.
local function run_receiver(job, obj, ev, unheard)
  local typ = ev.type
  if typ == "close" then hand_close(job, obj) end
  if job.list then
    walk(job, call, relisten)
    return finish_job(job)
  end
  -- an error nobody listens to is not lost: it goes to mc.onerror; job.ev
  -- last, so that an error (a hook's) before the report comes makes it
  -- again (runner_main), and the report's mark on ev makes it once
  if unheard then
    unheard(ev)
  elseif typ == "messageerror" or typ == "error" then
    report(ev.error, ev.traceback or "", ev)
  end
  job.ev = false
end

-- Closes held back: a port's close is the last event it sees, so while a
-- listener of one of its earlier events is still running (it waits in
-- receive or sleep: its runner is suspended), the port's close event
-- waits in the port's U.held_close, and goes after the tokens queued when
-- the last such listener returns. (receive reports the port's state: its
-- tasks get "closed" at once.) holds_at[obj] counts what obj's close
-- waits behind, each until its job ends (job.at = obj): the runners
-- suspended inside a dispatch at obj, each counted when it first yields
-- as the turn's runner, and the events receive took off obj's queue and
-- queued again (dispatch_taken), each counted once queued. Weak in its
-- keys, and the held close is the port's own (its target is the port: a
-- table weak in its keys would keep it on Lua 5.1 and LuaJIT, which have
-- no ephemerons): a listener that waits for good at a port nothing
-- reaches any more does not keep that port, nor what the listener
-- reaches (API.md 3.6).
local holds_at = setmetatable({}, { __mode = "k" })
-- The jobs of those runners, until their job ends (see M.dispatching).
local held_jobs = setmetatable({}, { __mode = "k" })

-- The close event ev of receiver obj, which deliver set job for (or left
-- alone: one plain listener), while another runner dispatches at obj: the
-- tasks waiting in its receive get "closed" now, and its listeners, if
-- any, the event once that dispatch ends. Held before the waiters are
-- woken: one of them may be the listener that holds it back.
local function hold_close(job, obj, ev, listened)
  -- the close held and job.list off in one call (a failure between
  -- would leave the listeners without it), and ev last: a runner that
  -- fails before hands the close to the rest of the waiters, and no more
  if listened then
    commit(false, uservalue(obj), "held_close", ev, job, "list", false)
  else
    job.list = false
  end
  hand_close(job, obj)
  job.ev = false
end

-- A job counted in holds_at[job.at] has ended: when it was the last one
-- at its port, the port's held close is queued. Out of memory, the close
-- stays held and the count as it was, for the next try.
local function job_ended(job)
  local obj = job.at
  local n = (holds_at[obj] or 1) - 1  -- none: a memory error left it uncounted
  local U = uservalue(obj)  -- none: a Worker, which has no close
  if n == 0 and U and U.held_close then
    dispatch_later(obj, U, U.held_close, nil, nil, U, "held_close", nil)
  end
  held_jobs[job] = nil
  holds_at[obj] = n > 0 and n or nil
  job.at = false
end

-- Queues ev, an event receive took off receiver obj's queue and cannot
-- return, for obj's listeners, counted in holds_at until its job ends
-- (job_ended): a close that comes meanwhile is held, as while a listener
-- at obj is suspended. Its turn marks its job, allocating nothing.
local function dispatch_taken(obj, U, ev)
  local n = (holds_at[obj] or 0) + 1
  -- counted once queued (out of memory there, it goes uncounted)
  dispatch_later(obj, U, ev, nil, function(job) job.at = obj end,
                 holds_at, obj, n)
end

local function runner_main()
  local me = running()
  local job = job_of[me]  -- a runner's job is its own for good
  unstarted[me] = nil
  while true do
    if job.wake then  -- a task its runner was to resume, and died first:
      enqueue({ job.wake, 0 }, job, "wake", false)  -- woken once
    end
    local etok = job.tok  -- a Lua event's job handed over (see below)
    if etok and job.ev then
      local head = runq[-1] + 1  -- still queued, the token goes with the
      if rawequal(runq[head], etok) then  -- job, once the job began
        runq[-1] = head
        runq[head] = nil
      end
      if etok[6] then etok[6](job) end  -- taken: again, if it was already
    end
    if job.ev and not job.list and job.i == 1 and not job.errs
       and (not etok or rawequal(job.ev, etok[4])) then
      -- an event no listener takes, not yet reported (run_receiver)
      run_receiver(job, job.target, job.ev, etok and etok[5])
    end
    if job.ev then  -- a job handed over from a coroutine that died
      -- a close's waiters, unless its walk had begun (run_receiver); held
      -- while listeners at its port wait, as the loop below holds it
      if job.ev.type == "close" and job.i == 1 and not job.errs then
        if job.list and holds_at[job.target] then
          hold_close(job, job.target, job.ev, job.list)
        else
          hand_close(job, job.target)
        end
      end
      -- its own event's walk, unless finish_job's messageerrors had begun
      if job.list and not (job.errs and job.ev.type == "messageerror") then
        walk(job, call, relisten)
      end
      finish_job(job)
    end
    job.tok = false
    if job.at then job_ended(job) end  -- that job, or fail()'s, ended
    while runq[-1] < stop and runner == me do
      if runq[-1] >= check_at then
        check_at = runq[-1] + CHECK
        if now() >= cut_at then  -- the rest waits for the next turn
          stop, cut = runq[-1], true
          break
        end
      end
      if unconfirmed.w then settle_unconfirmed() end
      local head = runq[-1] + 1
      local tok = runq[head]
      local made = type(tok) ~= "userdata"  -- a task's or a Lua event's
      if made and tok[1] == false then
        -- a receiver's token that does not keep it alive (a
        -- BroadcastChannel with no listener): nil once it was collected
        tok, made = tok[2], false
      end
      if tok == nil then
        runq[-1] = head
        runq[head] = nil
      elseif made and tok[1] ~= EVENT then
        -- a task: its token leaves the queue once it was resumed (see
        -- resume_task)
        local co = tok[1]
        if status(co) ~= "dead" or job_of[co] then  -- not gone
          resumed(co, resume_task(resume, co, head,
                                  unpack(tok, 3, tok[2] + 2)))
        else
          runq[-1] = head
          runq[head] = nil
        end
      elseif made then
        -- an event made in Lua: as a receiver's, below; the job notes
        -- its token until it ended, so that a job the runner fails in (a
        -- hook's error) takes it along from the queue, not twice, and
        -- goes on with its callbacks
        job.tok = tok
        local fn, ev = event_job(job, tok)
        runq[-1] = head
        runq[head] = nil
        if tok[6] then tok[6](job) end
        if fn then
          job.i = -1
          fn(ev)
          job.i = 2
          job.ev = false
          job.i = 1
        else
          run_receiver(job, tok[2], ev, tok[5])
        end
        job.tok = false
        if job.at then job_ended(job) end
      else
        -- A receiver's token leaves the queue once deliver took its
        -- entry. One listener is called here, at deliver's depth, or by
        -- dispatch_on one level deeper (see deliver); a listener that
        -- raises ends this coroutine, and fail() goes on with the job.
        local fn, ev, co = deliver(tok, job, head)
        if fn == true then
          if co then resumed(co, resume_task(resume, co, job, ev)) end
        elseif ev and holds_at[tok] and ev.type == "close" then
          hold_close(job, tok, ev, fn or job.list)
        elseif fn then
          -- job.i as walk sets it: -1 during the call, 2 once it returned
          if dispatch_on then  -- and tok's next messages while it can
            dispatch_on(tok, job, fn, ev, stop, cut_at)
          else
            job.i = -1
            fn(ev)
            job.i = 2
          end
          job.ev = false  -- first: a job with ev set is one to go on with
          job.i = 1
        elseif ev then
          run_receiver(job, tok, ev)
        end
        if job.at then job_ended(job) end
      end
    end
    yield(IDLE)
  end
end

-- A job's fields all exist from the start (false: none), so that setting
-- them allocates nothing. co is the job's runner, w the last wait a
-- listener made in it (see wake_closed_runners).
local function new_job()
  return { target = false, U = false, ev = false, list = false, i = 1,
           errs = false, ek = 0, data = false,
           ports = false, at = false, co = false, w = false,
           wake = false, tok = false }
end

local function new_runner(job)
  local co = create(runner_main)
  tasks[co] = true
  unstarted[co] = job
  job_of[co] = job
  job.co = co
  return co
end

-- A runner that waits in the pool may have been closed (Lua 5.4: code
-- that kept coroutine.running() from a listener): it is dropped, not
-- resumed to fail with an error nothing raised.
local function pool_take()
  while npool > 0 do
    local co = pool[npool]
    npool = npool - 1  -- first: an interrupt here leaves no hole
    pool[npool + 1] = nil
    if not can_close or status(co) ~= "dead" then return co end
    job_of[co] = nil
  end
  return new_runner(new_job())
end

-- Coroutines that died and that fail() has not finished with (out of
-- memory, or an error a hook or mc.onerror raised), each with its error,
-- or DONE once a job's error is recorded: the next turn calls fail()
-- again for each. pend_rec holds the record of each one's error once
-- fail() made it, { error, traceback, closed, kept }: what was decided
-- and done with it, so that the next call goes on from there (report's
-- mark on it: reported once). A fail() may run inside another's (a
-- runner's task), so there are a few slots, made up front.
local DONE = {}
local pend_co, pend_err, pend_rec, npend = { false, false, false, false },
  { false, false, false, false }, { false, false, false, false }, 0

-- Forgets the pending coroutine in slot p. Allocates nothing. The last
-- one moves to p, then the count drops, then its old slot is cleared: an
-- error (a hook's) between leaves the last one twice at most, whose
-- second fail() finds its job gone on, or its record reported, and does
-- nothing more.
local function unpend(p)
  pend_err[p] = pend_err[npend]
  pend_rec[p] = pend_rec[npend]
  pend_co[p] = pend_co[npend]
  npend = npend - 1
  pend_co[npend + 1], pend_err[npend + 1], pend_rec[npend + 1] =
    false, false, false
end

-- Lua 5.4: closes the to-be-closed variables still open in co, which
-- died of err, as the error would have on its way out of a pcall (the
-- scheduler's coroutines die of the errors nothing in them caught).
-- Returns the error to report: one a __close raised replaces err, as it
-- would in Lua.
local coclose = rawget(coroutine, "close")
local function unwind(co, err)
  if not coclose then return err end
  local ok, e = coclose(co)
  if ok then return err end
  return e
end

-- A task's coroutine died of err: report it, or keep it for a
-- messageerror; a pool coroutine's job goes on in a new one. Each step
-- that may allocate comes before the store that marks it done, so that
-- out of memory the next turn's call does each step once.
local function fail(co, err)
  local p = 0
  for i = 1, npend do
    if pend_co[i] == co then p = i end
  end
  if p == 0 then
    p = npend + 1
    pend_co[p], pend_err[p], pend_rec[p] = co, err, false
    npend = p
  end
  -- made by an earlier call (see pend_rec): err is a listener's or the
  -- task's own, not the runner's, whatever job.i says by now
  local rec = pend_rec[p]
  local interrupt = interrupted(err)
  local watch = end_of[co]
  if watch and watch.task == co then
    -- its end goes on in a new task, which does each step once: out of
    -- memory, raised out of the loop on purpose, or an error of a hook's
    -- (on_exit raises no other), which then leaves the loop too
    if not (rawequal(err, FATAL) or no_memory(err)) then interrupt = true end
    recount = true
    watch.task = false
    nidle = nidle + 1
  end
  local job = job_of[co]
  if job and not interrupt and not rec and job.i >= 0
     and not rawequal(err, DONE)
     and not rawequal(err, FATAL) and not no_memory(err) then
    -- a runner's own code raised, not a listener's: a hook did (an
    -- instruction limit), as nothing else raises there but running out
    -- of memory. As Ctrl-C's, it leaves the loop, and the job goes on at
    -- the next turn; what the runner was doing is noted in its job
    -- (deliver and dispatch_on set it with each take, job.wake, job.tok)
    interrupt = true
  end
  if rawequal(err, FATAL) or interrupt then
    -- mc.onerror raised, or Ctrl-C under the standalone interpreter (on
    -- LuaJIT its hook may fire in any task), or another hook's error in a
    -- runner's own code: out of the scheduler. The
    -- rest of a runner's job (the listeners after the one running, the
    -- messageerrors still due, the end of a dispatch a listener waited
    -- in, which lets its port's close go) stays pending, DONE: the next
    -- turn goes on with it first, as this turn's runner would have.
    unwind(co, err)
    if interrupt then fatal_err = err end
    if job and (job.ev or job.at or job.wake or job.tok) then
      if job.i < 0 then job.i = 1 - job.i end
      pend_err[p] = DONE
    else
      unpend(p)
    end
    error(FATAL, 0)
  end
  if rawequal(err, DONE) then  -- a runner's: its job goes on (job.ev may be false
    if not job then    -- when only the end of its dispatch is left)
      unpend(p)
      return
    end
  end
  -- The error's record: made and noted first, then closed (Lua 5.4:
  -- unwind), kept or reported, each step once, so that an error (a
  -- hook's, or mc.onerror's) at any point leaves the rest to the next
  -- call; the coroutine is forgotten only after its error was reported.
  -- kept: a message listener's, for its messageerror (finish_job).
  if not rec and not rawequal(err, DONE) then
    rec = { err, traceback(co), false,
            job and job.ev and job.i < 0 and job.ev.type == "message"
              or false }
    pend_rec[p] = rec
  end
  if rec and not rec[3] then
    rec[1] = unwind(co, err)  -- again after an error: err, already closed
    rec[3] = true
  end
  if not rawequal(err, DONE) and not (job and job.ev) then  -- a task's own
    report(rec[1], rec[2], rec)
    unpend(p)
    return
  end
  if job.ev and not job.list then  -- one plain listener (deliver): none
    job.U = uservalue(job.target)   -- after it
  end
  if not rawequal(err, DONE) then
    if rec[4] then
      local errs = job.errs
      if not errs then
        errs = {}
        job.ek = 1
        job.data = job.ev.data
        job.ports = rawget(job.ev, "ports") or false  -- the same ones
        job.errs = errs  -- last: ek and data are read only when errs is set
      end
      if not rawequal(errs[#errs], rec) then
        errs[#errs + 1] = rec  -- stored whole or not at all
      end
    end
    -- a listener of another event, or the runner itself between
    -- listeners out of memory: that is reported, and then the job goes
    -- on after the listener, or where it was when memory ran out (any
    -- other error of the runner's own left the loop, above)
    if job.i < 0 then job.i = 1 - job.i end
    if not rec[4] then report(rec[1], rec[2], rec) end
    pend_err[p] = DONE
  end
  local co2 = new_runner(job)
  job_of[co] = nil
  unpend(p)
  -- the turn's runner, also at the start of a turn (turn), so that it
  -- goes on with the tokens its turn had left
  if runner == co or runner == nil then runner = co2 end
  return step_task(co2)
end

-- What task co did once resumed to raise err in target (co, or the
-- coroutine of a dispatchEvent listener inside it). On LuaJIT a coroutine
-- may end without running the instruction that raises: then it failed
-- with err.
local function raised(co, target, err, ok, ...)
  if raise_undo(target) and status(target) == "dead" then
    if target == co and ok then return fail(co, err) end
    if target ~= co then report(err, "") end
  end
  return resumed(co, ok, ...)
end

-- A task yielded values that are not the scheduler's own. An adapter
-- (M.foreign, set by messagechannel.cqueues) may take the yield: it then
-- wakes co with the values its loop resumes it with. Else co is resumed
-- at once, and the yield raises an error there.
local function foreign(co, ...)
  local adapter = M.foreign
  if adapter and adapter(co, ...) then return end
  local target = passed_on(co) or co  -- a dispatchEvent listener's own
  local info = getinfo(target, 1, "Sl")
  local where = info and info.currentline and info.currentline > 0
    and info.short_src .. ":" .. info.currentline .. ": " or ""
  local err = where .. "coroutine.yield with values inside a messagechannel "
    .. "task, and no adapter takes it (a task waits with receive or sleep; "
    .. "a bare coroutine.yield() acts as sleep(0))"
  raise_at(target, err)
  return raised(co, target, err, resume(co))
end

-- What a task's resume gave: ok, then what it yielded or returned.
function resumed(co, ok, ...)
  local a = ...
  if unconfirmed.w and unconfirmed.co == co then
    local w, w_in = unconfirmed.w, unconfirmed.in_co
    unconfirmed.w = false  -- first: the others count only while it is set
    unconfirmed.co, unconfirmed.in_co = false, false
    if not (ok and rawequal(a, WAIT) and yielded_by(co, w_in)) then abandon(w) end
  end
  if not ok then return fail(co, a) end
  if rawequal(a, IDLE) then
    local job = job_of[co]
    job.target, job.U, job.list, job.data = false, false, false, false
    job.ports, job.w = false, false
    pool[npool + 1] = co  -- counted once stored: pool_take never finds a hole
    npool = npool + 1
    return
  end
  if status(co) == "dead" then return end
  if runner == co then
    runner = nil
    local job = job_of[co]
    if job and job.ev and not held_jobs[job] then  -- suspended inside a
      if not job.at then  -- dispatch (see hold_close), counted once, unless
        local obj = job.target  -- counted as queued (dispatch_taken)
        -- both or neither (the count may allocate: it goes first)
        commit(false, holds_at, obj, (holds_at[obj] or 0) + 1, job, "at", obj)
      end
      held_jobs[job] = true
      closable = true
    end
  end
  if rawequal(a, WAIT) then return end
  if select("#", ...) == 0 then return wake(co) end  -- acts as sleep(0)
  return foreign(co, ...)
end

-- Resumes task co and deals with what it did. A task that is dead
-- while it waits (Lua 5.4: closed by coroutine.close) is not: its wait
-- ends with nothing to tell.
function step_task(co, ...)
  if status(co) == "dead" and not job_of[co] then return end  -- gone
  return resumed(co, resume(co, ...))
end

local function remove_waiter(obj, U, w)
  local many = w.many
  if many then  -- mc.receive's: from each of its ports (again, after an
    for i = 1, #many do  -- error: taking out twice does nothing, and each
      local p = many[i]  -- port is told again)
      take_out(uservalue(p).waiters, w)
      changed(p)
    end
    w.many = false
    return
  end
  if U then
    take_out(U.waiters, w)
    changed(obj)
  end
end

-- Undoes a wait its task did not yield for (see unconfirmed): w is a
-- waiter of receive or mc.receive, a post waiting for room, or the timer
-- of a sleep. Doing it twice does nothing.
function abandon(w)
  if w.held ~= nil then  -- a post waiting for room: not sent after all
    if not w.done then
      cancel_timer(w.timer)
      writer_done(w)
    end
  elseif w.dead ~= nil then  -- a sleep's timer
    cancel_timer(w)
  elseif not w.done then
    w.done = true
    cancel_timer(w.timer)
    remove_waiter(w.obj, w.U, w)
  end
end

-- Whether timer e is void: cancelled, or its coroutine dead (see job_of),
-- whose wait, a receive's or a post's, ends with it (a runner is resumed
-- once).
local function void(e)
  if e.dead then return true end
  local co = e.co
  if not (co and status(co) == "dead") then return false end
  if e.w then abandon(e.w) end
  if job_of[co] then wake(co) end
  return true
end

-- The time of the next timer that is not void, or nil.
local function next_timer()
  while timers[0] > 0 and void(timers[1]) do pop_timer() end
  return timers[0] > 0 and timers[1].t or nil
end

-- Called in task co before a wait registers itself, marked w (a waiter,
-- or a sleep's timer): a wait registered before whose yield failed is
-- undone (settle_unconfirmed); where the running coroutine is the task
-- and Lua tells that it cannot yield, raises the error a yield would
-- (yieldable: what postMessage found, as Lua's own check is not the
-- caller's there); then notes w.
local function will_wait(co, w, yieldable)
  local job = job_of[co]
  if job then job.w = w end  -- a listener's wait: an existing field
  if unconfirmed.w then settle_unconfirmed() end
  local nested = running() ~= co  -- a dispatchEvent listener's
  if not nested and isyieldable then
    if yieldable == nil then yieldable = isyieldable() end
    if not yieldable then
      error("attempt to yield across a C-call boundary", 0)
    end
  end
  -- noted where Lua tells that the yield will happen too: a hook may
  -- raise before it does
  unconfirmed.co, unconfirmed.in_co = co, running()
  unconfirmed.w = w  -- the others count only while it is set
  -- after it: a wait noted here is one that unconfirmed ends, should a
  -- hook raise before the yield (else the coroutine, dead of that error,
  -- would look closed while it waits, and its task be woken)
  if nested and can_close then
    nested_waits[running()] = w
    closable = true
  end
end

-- Posts waiting for room at a bounded partner (postMessage): each port's
-- writers wait in U.writers, oldest first, as { co, port, held, timer,
-- done, r, why }; core.writing tells C how many, so that news for the
-- port comes here (poll returns it) and keeps the loop going.
local post_held, post_cancel, writing =
  core.post_held, core.post_cancel, core.writing

-- w leaves its port's writers; its held post is given up unless sent.
function writer_done(w)
  local port = w.port
  local ws = uservalue(port).writers
  take_out(ws, w)  -- first: no retry_writers posts it after this
  writing(port, ws.n)
  post_cancel(w.held)
  w.done = true  -- last: an error before leaves steps that can be redone
end

-- Tries the port's waiting posts again, oldest first, until one finds
-- the partner still full (C then tells this state again when there is
-- room). A done post wakes its task with postMessage's results. One that
-- is sent or closed is done, out of the writers and its task's wake
-- queued when post_held returns: no Lua code comes between (a call could
-- need a CallInfo and fail, a hook raise, and leave a post sent but still
-- waiting, ahead of every later one, or its task never woken).
function retry_writers(port)
  local ws = uservalue(port).writers
  while ws and ws.n > 0 do
    local w = ws[ws.h]
    if w.co and can_close and status(w.co) == "dead" then
      -- closed while it waited: not sent
      w.why = "closed"
      cancel_timer(w.timer)
      writer_done(w)
    else
      -- the wake, made first: post_held queues it as it ends the wait
      local co = w.co
      local tok = co and posting[co] == w and { co, 0, false, false }
      if post_held(port, w.held, w, tok) == nil then return end
      if tok then posting[co] = nil end
    end
  end
end

-- Moves the timers due at time t to the run queue. A timer leaves the
-- heap once its task's wake is queued and its wait is done: an error at
-- any point (out of memory, a hook's) leaves it to fire again at the
-- next turn, and each step before is one that can be done again (a task
-- woken twice waits again: each wait loops until it is done).
-- With `defer` (the timers that go first after a cut: see cut_at), a
-- sleep(0)'s task is put in `deferred` instead, to be woken where the
-- other timers' are (wake_deferred), after what was ready before it, in
-- the order they fell due. An entry leaves once its wake is queued: an
-- error in wake (out of memory, an interrupt) leaves it for the next
-- turn (a task woken twice waits again: see M.sleep).
-- A queue (push, take_out: each change whole).
local deferred = { h = 1, n = 0 }

local function wake_deferred()
  while deferred.n > 0 do
    local h, n = deferred.h, deferred.n
    -- woken and out of the queue in one call: once, whatever the error
    enqueue({ deferred[h], 0 }, deferred, h, nil, deferred, "h", h + 1,
            deferred, "n", n - 1)
  end
end

local function fire_timers(t, defer)
  while timers[0] > 0 and timers[1].t <= t do
    local e = timers[1]
    local w = e.w
    if e.dead or (w and w.done) then
      pop_timer()
    -- Each wake is queued in the same call as the mark that it was: a
    -- second wake would resume a listener's runner once its listener
    -- returned (in the pool, or the turn's runner itself).
    elseif not w then  -- a sleep's: dead once fired (see M.sleep)
      if defer and e.zero then
        local h, n = deferred.h, deferred.n  -- the new slot first
        commit(false, deferred, h + n, e.co, deferred, "n", n + 1,
               e, "dead", true)
      else
        enqueue({ e.co, 0 }, e, "dead", true)
      end
      pop_timer()
    elseif w.held then  -- a post waiting for room
      if posting[e.co] == w then
        enqueue({ e.co, 2, false, "timeout" }, posting, e.co, nil)
      end
      writer_done(w)
      pop_timer()
    else
      if not e.fired then
        enqueue({ e.co, 2, nil, "timeout" }, e, "fired", true)
      end
      remove_waiter(w.obj, w.U, w)  -- first: until it is out of every
      w.why = "timeout"  -- queue, a message handed to it is its result
      w.done = true
      pop_timer()
    end
  end
end

---------------------------------------------------------------------------
-- The loop
---------------------------------------------------------------------------

-- (live_workers, nlive, nworkers, nidle and end_of are declared above,
-- with the tasks.)
-- Workers this state started and whose end is not dispatched yet, as
-- watches { handle, on_exit, unref, result, task }: on_exit dispatches the
-- end. A watch is made before its thread starts (mc.Worker may raise
-- until then, never after), when the handle does not exist yet: so an
-- array, which news looks through, rather than a table keyed by handle,
-- whose new key could fail to be stored once the thread runs. handle is
-- false until the start and once the end is seen; then result is
-- {code, err, tb, text}, and task the task that runs on_exit (false when none
-- runs: not started yet, or it died, out of memory; on_exit may run again
-- and does each of its steps once). nworkers counts the started watches
-- that are ref'd, nidle the ends seen that no task runs. Each change of
-- a watch sets `recount` first, and the next turn counts them again: an
-- error (a hook's) between a change and its count would else leave a
-- count wrong for good (run never idle, or an end never dispatched).

local function recount_workers()
  local nw, ni = 0, 0
  for j = 1, nlive do
    local watch = live_workers[j]
    if watch.handle and not watch.unref then nw = nw + 1 end
    if watch.result and not watch.task then ni = ni + 1 end
  end
  nworkers, nidle = nw, ni
  recount = false
end

-- A watch for a worker about to start; on_exit(code, err, tb, text) will
-- dispatch its end. core.worker_start sets its handle, and the next turn
-- counts it (recount), unless worker_started did first.
function M.reserve_worker(on_exit)
  recount = true
  local watch = { handle = false, on_exit = on_exit, unref = false,
                  result = false, task = false }
  live_workers[nlive + 1] = watch
  nlive = nlive + 1
  return watch
end

function drop_watch(watch)
  for i = nlive, 1, -1 do
    if live_workers[i] == watch then
      recount = true
      live_workers[i] = live_workers[nlive]
      nlive = nlive - 1  -- before the slot goes: an error leaves no hole
      live_workers[nlive + 1] = nil
      return
    end
  end
end

-- The worker's start failed: forget its watch.
M.unreserve_worker = drop_watch

-- The worker of a reserved watch runs (core.worker_start set
-- watch.handle): from now on its end is dispatched, and it keeps the
-- scheduler going. Allocates nothing.
function M.worker_started()
  recount = true
  nworkers = nworkers + 1
end

-- w:ref() / w:unref(): whether a live worker keeps the scheduler going.
function M.ref_worker(watch, on)
  if not watch.handle or on == not watch.unref then return end
  recount = true
  watch.unref = not on
  nworkers = nworkers + (on and 1 or -1)
  wake_host()
end

-- Raises err out of the scheduler loop that runs the current task, as an
-- error of mc.onerror is (a worker's error that nobody takes).
function M.raise_out(err, ev)
  if ev and rawget(ev, REPORTED) then return end
  fatal_err = err
  if ev then mark_call(ev, REPORTED, error, FATAL, 0) end  -- marked as raised
  error(FATAL, 0)
end

-- Looks whether the worker of watch ended; the result is stored whole
-- before anything counts it.
local function look(watch)
  local done, code, err, tb, text = core.worker_result(watch.handle)
  if not done then return end
  watch.result = { code, err, tb, text }
  recount = true
  watch.handle = false
  if not watch.unref then nworkers = nworkers - 1 end
  nidle = nidle + 1
end

-- True from a poll until news() has taken what it returned: an error (a
-- hook's) in between leaves handles unseen, so the next turn looks at
-- every worker, and its poll at every port (core.relook).
local recheck = false

-- What core.poll returns: the list of the handles of workers with news
-- and of ports whose posts wait for room, or nothing.
local function news(list)
  for i = 1, list and #list or 0 do
    local h = list[i]
    if uservalue(h) then retry_writers(h) end  -- a port: room may be made
    for j = 1, nlive do
      local watch = live_workers[j]
      if rawequal(watch.handle, h) then
        look(watch)
        break
      end
    end
  end
  recheck = false
end

-- poll(timeout) and its news.
local function poll_news(timeout)
  recheck = true
  return news(poll(timeout))
end

local function news_all()
  recheck = true
  for j = nlive, 1, -1 do
    local watch = live_workers[j]
    if watch.handle then look(watch) end
  end
  recheck = false
end

local function end_task(watch)
  local r = watch.result
  watch.on_exit(r[1], r[2], r[3], r[4])
  end_of[running()] = nil
  drop_watch(watch)
end

-- Starts a task for each end seen that none runs.
local function start_ends()
  for j = 1, nlive do
    local watch = live_workers[j]
    if watch.result and not watch.task then
      local co = create(end_task)
      tasks[co] = true
      end_of[co] = watch
      recount = true  -- nidle, should an error come before it is counted
      enqueue({ co, 1, watch }, watch, "task", co)  -- one task per end
      nidle = nidle - 1
    end
  end
end

-- Whether another thread can still wake this state with work.
local function waited_for()
  return nworkers > 0 or busy()
end

local function ready()
  return runq[-1] < runq[0] or nidle > 0 or npend > 0 or deferred.n > 0
end

-- Posts whose task was closed (Lua 5.4: coroutine.close) while they
-- waited for room: given up at the next turn, as retry_writers gives
-- them up, rather than when room comes (their transfer lists lent until
-- then, their place ahead of later posts kept). A runner so closed is
-- woken, to end its listener (see job_of). Only where coroutine.close
-- exists (can_close).
local function drop_closed_posts()
  for co, w in pairs(posting) do
    if status(co) == "dead" then
      posting[co] = nil  -- an existing field, while traversing: allowed
      w.r, w.why = false, "closed"
      if not w.done then
        cancel_timer(w.timer)
        writer_done(w)
      end
      wake(co, false, "closed")
    end
  end
end

-- Runners closed (Lua 5.4: coroutine.close) while a listener in them
-- waited: the dispatch they were in holds its port's close (holds_at),
-- and a wait with no timer, at a port nothing posts to, would never wake
-- them. Each such wait ends at the next turn, and the runner is woken
-- once, which fails and ends that listener as an error (see job_of), so
-- that its messageerror and the port's close come. A post waiting for
-- room is drop_closed_posts'.
local function wake_closed_runners()
  for job in pairs(held_jobs) do
    local co, w = job.co, job.w
    if w and w.held == nil and status(co) == "dead" and job_of[co] == job then
      job.w = false  -- an existing field: allocates nothing
      abandon(w)
      wake(co)
    end
  end
end

-- The same for a dispatchEvent listener's own coroutine closed while it
-- waited (its wait is its task's, w.co): the wait ends, and the task is
-- woken, to resume that coroutine, which fails and ends the listener as
-- an error (call_reporting). A wait that ended before is let go.
local function wake_closed_nested()
  for inner, w in pairs(nested_waits) do
    if status(inner) == "dead" then
      nested_waits[inner] = nil  -- an existing field, while traversing
      if w.dead == false or (w.dead == nil and not w.done) then
        abandon(w)
        if posting[w.co] == w then posting[w.co] = nil end
        wake(w.co)
      end
    end
  end
end

-- Waits of closed coroutines, ended at each turn's start and end: closed
-- in a task, the loop then does not sleep on them.
local function end_closed_waits()
  if next(posting) ~= nil then drop_closed_posts() end
  if next(held_jobs) ~= nil then wake_closed_runners() end
  if next(nested_waits) ~= nil then wake_closed_nested() end
  closable = next(posting) ~= nil or next(held_jobs) ~= nil
             or next(nested_waits) ~= nil
end

-- One turn: news from other threads and the due timers, then the tokens
-- that were queued when the turn began. Later tokens wait for the next
-- turn, and so do these once cut_at has passed. `polled`: the caller has
-- just taken the news (loop's wait); `deadline`: the loop's.
local function turn(polled, deadline)
  -- what is left of a turn an error stopped, unless the queue was emptied
  -- since (core.enter)
  if stop > runq[0] then stop = runq[0] end
  while npend > 0 do fail(pend_co[npend], pend_err[npend]) end
  runner = nil
  if recheck then  -- news() was cut short: what poll returned, looked
    core.relook()  -- at again
    news_all()
  end
  if closable and can_close then end_closed_waits() end
  if cut and timers[0] > 0 then  -- see cut_at: before the news, and before
    local from = runq[0]       -- what the last turn left
    fire_timers(now(), true)
    core.runq_front(from)
  end
  if not polled then poll_news(0) end
  if recount then recount_workers() end
  if nidle > 0 then start_ends() end
  if deferred.n > 0 then wake_deferred() end
  if timers[0] > 0 then fire_timers(now()) end
  cut, check_at = false, runq[-1] + CHECK
  cut_at = timers[0] > 0 and next_timer() or huge
  if deadline and deadline < cut_at then cut_at = deadline end
  stop = runq[0]
  while runq[-1] < stop do
    runner = pool_take()  -- never dead: resumed as step_task would
    resumed(runner, resume(runner))
  end
  runner = nil
  -- a timer fell due after the runner last looked: its task goes first
  -- next turn all the same
  if not cut and cut_at < huge and now() >= cut_at then cut = true end
  if closable and can_close then end_closed_waits() end
  if runq[-1] == runq[0] then
    runq = core.runq_reset()
    stop = 0
  end
end

-- Runs f(...) as the one scheduler loop of this state.
local function exclusive(name, f, ...)
  if current_task() then
    error(name .. " cannot be called from a task (a listener or a spawned "
          .. "function)", 3)
  end
  if looping() then
    error(name .. " cannot be called while the scheduler is running", 3)
  end
  runq = core.runq()
  local ok, r = enter(f, ...)
  runq = core.runq()
  -- A blocking call made from a host loop's callback may leave work, or
  -- timers or workers the host does not know of: wake it to step
  -- (mc.step's caller asks mc.timeout() itself).
  if name ~= "mc.step" and hosted()
     and (ready() or next_timer() or waited_for()) then
    wake_host()
  end
  if not ok then
    if rawequal(r, FATAL) then
      r, fatal_err = fatal_err, nil
    end
    error(r, 0)
  end
  return r
end

-- Runs turns until done() is true (true), the deadline passes (false), or
-- nothing is left that could make progress (nil). With `full`, an idle
-- scheduler still waits for the deadline (sleep, receive with a timeout).
-- keep(), if given, tells whether another thread may still end the wait
-- (a blocking call's own port, ref'd or not).
-- Between turns it sleeps in core.poll until the next timer, or until
-- another thread has news.
local function loop(done, deadline, full, keep)
  local polled = false
  while true do
    if done and done() then return true end
    turn(polled, deadline)
    polled = false
    if done and done() then return true end
    -- waited_for() also queues what reached ports before its news did
    -- (so ready() is asked again after it); news already told (room at a
    -- partner this state read from) is work. News is asked for last: a
    -- partner that posted and closed since waited_for() looked is not
    -- abroad for keep(), and what it posted is news by then
    local idle = not ready()
    local waiting = idle
                    and (waited_for() or keep and keep() or pending_news())
    if idle and not ready() then
      local t = next_timer()
      if deadline and (t == nil or t > deadline) then
        if t == nil and not full and not waiting then return nil end
        if deadline - now() <= 0 then return false end
        t = deadline
      elseif t == nil and not waiting then
        return nil
      end
      if t then
        local d = t - now()
        poll_news(d > 0 and d or 0)
      else
        poll_news(-1)
      end
      polled = true
    elseif deadline and now() >= deadline then
      return false
    end
  end
end

-- level: where the error points, as for error(); 3 is the caller of the
-- function that checks. missing: the argument was not given at all.
local function check_seconds(s, name, n, optional, level, missing)
  if s == nil and optional then return end
  if type(s) ~= "number" or s ~= s or s < 0 then
    local got = missing and "no value"
                or type(s) ~= "number" and ET.typename(s, true)
                or s ~= s and "nan"
                or tostring(s)  -- the number itself: its type is right
    error(format("bad argument #%d to '%s' (non-negative number expected, "
                 .. "got %s)", n, name, got), level or 3)
  end
end

-- How long mc.run's drain waits at a time: 0.1 s, or what is left
-- before the deadline (the network thread's answer is waited for a little
-- longer: src/net.c, TURN_WAIT).
local function drain_for(deadline)
  local left = deadline and deadline - now()
  if not left or left > 0.1 then return 0.1 end
  return left > 0 and left or 0
end

function M.run(timeout)
  check_seconds(timeout, "run", 1, true)
  return (exclusive("mc.run", function()
    local deadline = timeout and now() + timeout
    local r = loop(nil, deadline)
    -- Idle: first remote ports write what they had queued, the peers of
    -- those closed here read the close, and connects under way come up
    -- or are refused (a link whose peer takes nothing for three
    -- heartbeats is not waited for); what comes meanwhile is dispatched.
    -- The deadline holds here too.
    while r == nil and core.net_drain(drain_for(deadline)) > 0 do
      if deadline and now() >= deadline then return false end
      r = loop(nil, deadline)
    end
    if r == nil then
      -- what came during the last drain, and then what its listeners
      -- posted is written too; what comes after that is not dispatched
      -- (an unref'd port that a peer keeps posting to would keep run
      -- going for ever)
      r = loop(nil, deadline)
      while r == nil and core.net_drain(drain_for(deadline), true) > 0 do
        if deadline and now() >= deadline then return false end
      end
    end
    return r == nil
  end))  -- not a tail call: exclusive's errors name the caller's line
end

local function step(slice)
  turn(false, slice and now() + slice)
  -- waited_for() first: it queues what reached ports before their news
  local waiting = waited_for()
  -- last, as mc.run(): remote ports posted to or closed here write what
  -- they had queued (the descriptor is readable once they have)
  return waiting or ready() or next_timer() ~= nil or pending_news()
    or net_watch()
end

function M.step()
  return (exclusive("mc.step", step))
end

-- mc.step() for the event-loop adapters (messagechannel.luv, .cqueues):
-- its turn also ends once it has run for HOST_SLICE seconds, so that the
-- host loop's own timers and I/O do not wait behind a flood (see cut_at).
function M.host_step()
  return (exclusive("mc.step", step, HOST_SLICE))
end

---------------------------------------------------------------------------
-- What a host event loop needs (API.md 10): the descriptor to wait on,
-- how long it may wait, whether to step again at once. Arguments are
-- ignored, so that the module table is a pollable object (mc:timeout()).
---------------------------------------------------------------------------

-- Asked for the first time, the descriptor is made readable if work,
-- timers or workers wait: what came before (a task spawned, a post, a
-- worker started outside any loop, or what a blocking call left) woke
-- only a host that had asked already (mc_ctx_wake, exclusive).
local asked = false
function M.pollfd()
  local fd = core.pollfd()
  if not asked then
    asked = true
    if not looping() and (ready() or next_timer() or waited_for()) then
      wake_host()
    end
  end
  return fd
end

-- A wait longer than MAX_WAIT seconds is given as MAX_WAIT: poll() takes
-- an int of milliseconds, and select() refuses 1e300. The host steps when
-- it ends and asks again. A timer at math.huge never comes: no wait.
local MAX_WAIT = (2 ^ 31 - 1) / 1000

function M.timeout()
  if ready() or pending_news() then return 0 end
  local t = next_timer()
  if t == nil or t == huge then return nil end
  t = t - now()
  return t > MAX_WAIT and MAX_WAIT or t > 0 and t or 0
end

-- A task is ready now: queued, or its timer is due.
function M.dirty()
  return M.timeout() == 0
end

-- Wakes task co at the next turn with the given values (for adapters).
M.wake = wake

-- Whether mc.step() would raise now: a scheduler loop or a task runs (an
-- adapter's callback run by a listener that runs the host loop itself).
function M.busy()
  return looping() or current_task() ~= nil
end

function M.spawn(...)
  local fn = ...
  if not ET.is_callable(fn) then
    error(format("bad argument #1 to 'spawn' (function expected, got %s)",
                 ET.typename(fn, select("#", ...) >= 1)), 2)
  end
  local co = create(function(...) return fn(...) end)
  tasks[co] = true
  wake(co, select(2, ...))
  return co
end

function M.sleep(...)
  local seconds = ...
  check_seconds(seconds, "sleep", 1, false, 3, select("#", ...) == 0)
  local co = current_task()
  if co then
    local e = new_timer(now() + seconds, co, nil, seconds == 0)
    will_wait(co, e)
    push_timer(e)
    repeat yield(WAIT) until e.dead  -- see waited
    return
  end
  exclusive("mc.sleep", loop, nil, now() + seconds, true)
end

M.now = now

---------------------------------------------------------------------------
-- What a receiver's methods need of the scheduler
---------------------------------------------------------------------------

local function protected_handler(err)
  -- a string message: 5.1 and LuaJIT give no traceback for nil
  return { err = err, tb = traceback("", 2):sub(2) }
end

-- How deep dispatchEvent calls may nest. Inside a task each level is a
-- coroutine: LuaJIT sets no limit on nested resumes, and overflows the C
-- stack. Lua 5.1 to 5.4 stop at about 200 C levels: one per level in a
-- task, two outside one (xpcall and the listener), so about 98 levels
-- there. The limit, the same in and out of tasks, leaves room for
-- the caller's own levels and for mc.onerror to run when it is reached.
local NEST_LIMIT = 64
local nesting = setmetatable({}, { __mode = "k" })  -- task: depth

local function too_deep()
  return format("stack overflow: dispatchEvent nested more than %d deep",
                NEST_LIMIT)
end

-- Reports err from a task; returns what report raised (FATAL: mc.onerror
-- raised; out of memory), or nil.
local function escape(err, tb)
  local ok, e = pcall(report, err, tb)
  if not ok then return e end
end

-- Calls a listener for dispatchEvent and reports its error. Inside a task
-- the listener runs in a coroutine of its own whose yields are passed on,
-- so it may block there too, even on Lua 5.1 (no yield across pcall).
-- Nested more than NEST_LIMIT deep, it reports that error instead. What
-- mc.onerror raises for a listener's error, and Ctrl-C, are not the
-- listener's errors: they go on out, through every level. Outside a task
-- they are raised here; inside one they are returned, for dispatch_now to
-- raise once its dispatch is over (its event no longer being dispatched).
function call_reporting(task, rec, ev)
  if not task then
    if plain_depth >= NEST_LIMIT then
      report(too_deep(), traceback("", 2):sub(2))
      return
    end
    plain_depth = plain_depth + 1
    local ok, e = xpcall(function() return call(rec, ev) end,
                         protected_handler)
    plain_depth = plain_depth - 1
    -- no record: out of memory (no handler runs for it), or the handler
    -- failed; that is the dispatch's error, not the listener's
    local raw = not ok and type(e) ~= "table"
    local passing = not ok and not raw and escaping_set
                    and rawequal(e.err, escaping)
    if plain_depth == 0 then escaping, escaping_set = nil, false end
    if ok then return end
    if raw then error(e, 0) end
    if passing or interrupted(e.err) then error(e.err, 0) end
    report(e.err, e.tb)
    return
  end
  local depth = (nesting[task] or 0) + 1
  if depth > NEST_LIMIT then
    return escape(too_deep(), traceback("", 2):sub(2))
  end
  -- the yields stay in this function: suspended_in looks for it; a task
  -- closed in one leaves its depth to the collector, with the task
  nesting[task] = depth
  local co = create(call)
  outer_of[co] = task
  passer_of[co] = running()
  local r = pack(resume(co, rec, ev))
  while r[1] and status(co) ~= "dead" do
    if not passes_to(deepest[task], co) then deepest[task] = co end
    local back = pack(yield(unpack(r, 2, r.n)))
    deepest[task] = nil
    r = pack(resume(co, unpack(back, 1, back.n)))
  end
  nesting[task] = depth > 1 and depth - 1 or nil
  if not r[1] then
    -- mc.onerror raised for a listener nested deeper (FATAL), or Ctrl-C:
    -- on out of the task and the loop, not to mc.onerror again
    if rawequal(r[2], FATAL) or interrupted(r[2]) then
      unwind(co, r[2])
      return r[2]
    end
    local tb = traceback(co)
    return escape(unwind(co, r[2]), tb)
  end
end

-- Whether the scheduler is dispatching ev, an event it made, now: a
-- job's event, from the first listener's call until the last one's (and
-- its messageerrors) returned, also while a listener waits in receive or
-- sleep.
function M.dispatching(ev)
  local co = current_task()
  local job = co and job_of[co]
  if job and rawequal(job.ev, ev) then return true end
  job = runner and job_of[runner]
  if job and rawequal(job.ev, ev) then return true end
  for held in pairs(held_jobs) do
    if rawequal(held.ev, ev) then return true end
  end
  return false
end

-- dispatchEvent: ev's listeners at target, now; errors go to mc.onerror.
-- done(ev), if given, runs after it, also when an error (one mc.onerror
-- raises) comes out of it outside any task.
function M.dispatch_now(target, U, ev, done)
  local task = current_task()
  local d = { target = target, U = U, ev = ev, list = listeners(U, ev.type),
              i = 1 }
  local escaping_err
  local function invoke(rec, e)
    escaping_err = call_reporting(task, rec, e)
    if escaping_err ~= nil then ET.halt(e) end
  end
  if task or not done then  -- no pcall: its listeners may block (5.1)
    walk(d, invoke, relisten)
    if done then done(ev) end
    if escaping_err ~= nil then error(escaping_err, 0) end
    return
  end
  local ok, err = pcall(walk, d, invoke, relisten)
  done(ev)
  if not ok then error(err, 0) end
end

-- Pushes the timer e of a waiter w (nothing when e is false).
local function arm(w, e)
  if e then
    w.timer = e
    push_timer(e)
  end
end

local function add_and_arm(add, w, q, e)
  if add(w, q) == false then return false end
  arm(w, e)
  return true
end

local function add_and_loop(name, add, w, q, timeout, keep)
  if add(w, q) == false then return false end
  return true, exclusive(name, loop, function() return w.done end,
                         timeout and now() + timeout, true, keep)
end

-- The wait of receive, mc.receive and postMessage: add(w, q) queues the
-- waiter w (false: there is nothing to wait for). Then, in a task, its
-- timer e is armed and wait returns "yield" (the caller yields); outside
-- any task the loop runs as `name` until w is done or `timeout` seconds
-- pass, and wait returns "ran" and the loop's result; the loop waits, not
-- ending idle, while keep() says another thread may still end the wait
-- (an unref'd port is waited for when a call blocks on it). All of it
-- runs in one protected call: an error (out of memory) at any step takes
-- w out again with undo(w) and goes on, so that no waiter is left queued
-- that nobody waits for (it would take a message and lose it). (A
-- message the loop handed to w stays in U.kept until returned: see
-- M.receive.) Returns "none" when add found nothing to wait for.
-- add(w, q), undo(w) and the waits that call wait make no closure over
-- a local of theirs: Lua 5.3 keeps for one more cycle what the captured
-- locals of an unreachable coroutine hold (lgc.c's remarkupvals), and
-- marks a captured local's value when its closure's function returns
-- while the collector marks (luaC_upvalbarrier); either kept the waiter,
-- its task and its ports a cycle longer, on top of the cycle the ports'
-- finalizers keep them, and the automatic collector fell further behind
-- each cycle. (keep and add_and_loop's closure run outside any task.)
local function wait(name, w, timeout, add, undo, e, keep, q)
  local ok, added, r
  if w.co then
    ok, added = pcall(add_and_arm, add, w, q, e)
  else
    ok, added, r = pcall(add_and_loop, name, add, w, q, timeout, keep)
  end
  if not ok or not added or not w.co and not w.done then undo(w) end
  if not ok then
    cancel_timer(e)
    error(added, 0)
  end
  if not added then return "none" end
  return w.co and "yield" or "ran", r
end

-- A task's wait w (receive's, mc.receive's) ends when the scheduler ends
-- it: w is done, with its results in w, before the task is resumed. Lua
-- lets any code resume any coroutine, and a loop's callback may resume
-- one it yielded from before: such a resume of a task that waits finds
-- w not done, and the task yields again at once (the resume returns true
-- and an internal value), so that the wait neither returns what that
-- code passed nor leaves its waiter or timer behind to take a later
-- message or cut a later wait short. mc.sleep does the same with its
-- timer.
function waited(w)
  repeat yield(WAIT) until w.done
end

-- Whether a receive in a task should wait although a message is queued:
-- once the turn's cut_at has passed, as the runner ends the turn there. A
-- task that takes messages in a loop from a flood from another thread,
-- which never lets the queue empty, would else never yield (see cut_at).
-- It waits as a waiter, so listeners still come after it (API.md 6.3).
-- Only where Lua tells that the task itself can yield (isyieldable: 5.3,
-- 5.4, LuaJIT; not in a dispatchEvent listener's own coroutine, whose
-- yield is passed on): elsewhere receive goes on as it would have.
local function pause_now()
  if not isyieldable or now() < cut_at then return false end
  local co = current_task()
  return co ~= nil and running() == co and isyieldable()
end

-- A message a receive outside any task was handed, taken off the
-- queue, stays in U.kept (core.deliver) until that receive returns it:
-- the method's last step, core.received, lets it go. So an error that
-- comes out of the loop in between (a hook's: an instruction limit,
-- Ctrl-C) leaves it to the port's next receive, which returns it before
-- anything queued. M.kept(U): that message, or false; the key is made
-- here, before any wait, so that storing it allocates nothing.
function M.kept(U)
  local ev = U.kept
  if ev == nil then U.kept = false end
  return ev or false
end

-- The adds and undos the waits hand to wait (fields, as this chunk has
-- nearly as many locals as Lua allows). receive's: w at ws, its
-- receiver's waiters.
local waits = {}

function waits.add_receiver(w, ws)
  push(ws, w)
  changed(w.obj)
end

function waits.undo_receiver(w)
  remove_waiter(w.obj, w.U, w)
end

-- receive(obj, U [, timeout]) for the receiver obj: its next message
-- event, or nil, "closed" | "timeout". name is the method's, for errors,
-- which point at the method's caller.
function M.receive(obj, U, timeout, name)
  check_seconds(timeout, name, 1, true, 4)
  if timeout == huge then timeout = nil end  -- the same as none
  local kept = M.kept(U)
  if kept then return kept end
  local pause = timeout ~= 0 and pause_now()
  local ev = not pause and take(obj)
  if ev then
    local typ = ev.type
    if typ == "message" then return ev end
    if typ == "close" then return nil, "closed" end
    dispatch_taken(obj, U, ev)
    return M.receive(obj, U, timeout, name)
  end
  if U.held_close then return nil, "closed" end  -- see hold_close
  -- No message can come (detached, let go, its partner gone): closed, as
  -- a wait would end; its __gc called by hand left no close to wait for.
  if arrival(obj) == "closed" then return nil, "closed" end
  if timeout == 0 then return nil, "timeout" end
  local co = current_task()
  -- The waiter has every field that hand and fire_timers set, and its
  -- timer its slot, before the waiter is queued: from then on nothing
  -- allocates.
  local w = { co = co, obj = obj, U = U, timer = false, done = false,
              ev = false, why = false, runner = job_of[co] ~= nil }
  local ws = queue_of(U, "waiters")
  local e = co and timeout and new_timer(now() + timeout, co, w)
  if co then will_wait(co, w) end
  local how, r = wait(name, w, timeout, waits.add_receiver,
                      waits.undo_receiver, e,
                      not co and function() return abroad(obj) end, ws)
  if how == "yield" then waited(w) end
  if pause and w.why == "timeout" then  -- what was queued may be still
    return M.receive(obj, U, 0, name)
  end
  if w.done then return w.ev or nil, w.why or nil end
  if r == nil then
    error(name .. "() would wait forever: no task, timer or other thread "
          .. "can post to this port", 3)
  end
  return nil, "timeout"
end

-- postMessage's results once its wait for room w is over: true, or
-- false and "closed" or "timeout".
local function room_results(w)
  if w.r then return true end
  return false, w.why or "timeout"
end

-- postMessage's add for wait: w at ws, its port's writers.
function waits.add_writer(w, ws)
  push(ws, w)
  writing(w.port, ws.n)
end

-- postMessage at a full bounded partner (src/port.c): held is the post,
-- already registered in C to hear of room. Inside a task, returns true,
-- w and WAIT for postMessage to yield: the task is woken with its
-- results, which postMessage takes from w (done, r, why) where Lua has
-- continuations (see waited). Outside, runs the loop until the post is
-- done and returns false and its results. yieldable is whether
-- postMessage can yield (nil: Lua does not tell).
local function waitroom(port, held, timeout, yieldable)
  local co = current_task()
  local w = { co = co or false, port = port, held = held, timer = false,
              done = false, r = false, why = false }
  local ws = queue_of(uservalue(port), "writers")
  local e = co and timeout and new_timer(now() + timeout, co, w)
  if co then will_wait(co, w, yieldable) end
  local how, r = wait("postMessage", w, timeout, waits.add_writer,
                      writer_done, e,
                      not co and function() return abroad(port) end, ws)
  if how == "yield" then
    posting[co] = w
    closable = true
    return true, w, WAIT
  end
  if not (w.r or w.why) and r == nil then
    error("postMessage() would wait forever: no task, timer or other "
          .. "thread can take from the partner port", 3)
  end
  return false, room_results(w)
end
core.waitroom(waitroom)

-- Queues mc.receive's waiter w at each of its ports that can still
-- deliver, counting them in w.open (each one's close counts it down).
local function add_waiter(objs, Us, w)
  for i = 1, #objs do
    if arrival(objs[i]) ~= "closed" then
      local ws = queue_of(Us[i], "waiters")
      push(ws, w)
      w.open = w.open + 1
    end
  end
  for i = 1, #objs do changed(objs[i]) end
end

-- receive_many's add for wait.
function waits.add_many(w, Us)
  add_waiter(w.many, Us, w)
  return w.open > 0  -- else every port closed meanwhile (another thread)
end

-- receive_many(objs, Us, timeout) for mc.receive: objs an array of
-- receivers (no two the same), Us their U. Returns the first message
-- event to arrive at any of them and its receiver, the oldest by arrival
-- in this state when several wait; or nil, "closed" once every one is
-- closed with nothing left; or nil, "timeout".
function M.receive_many(objs, Us, timeout)
  check_seconds(timeout, "receive", 2, true, 4)
  if timeout == huge then timeout = nil end  -- the same as none
  for i = 1, #objs do  -- each one's key made (see M.kept)
    local kept = M.kept(Us[i])
    if kept then return kept, objs[i] end
  end
  -- see pause_now; a waiter at several ports would be handed the message
  -- of the port whose token comes first, not the oldest: it sleeps(0)
  -- instead, and then takes the oldest
  if timeout ~= 0 and pause_now() then M.sleep(0) end
  local open
  repeat
    local best, at = nil, nil
    open = 0
    for i = 1, #objs do
      local kind, n = arrival(objs[i])
      if kind == "message" then
        if not at or n < at then best, at = i, n end
      elseif kind ~= "closed" then
        open = open + 1
      end
    end
    if best then
      local obj = objs[best]
      local ev = take(obj)
      if ev and ev.type == "message" then return ev, obj end
      if ev and ev.type ~= "close" then dispatch_taken(obj, Us[best], ev) end
    end
  until not best
  if open == 0 then return nil, "closed" end
  if timeout == 0 then return nil, "timeout" end
  local co = current_task()
  -- As receive's, one waiter at each port still open; the port that hands
  -- it a message takes it out of the others' waiters (core.deliver).
  local w = { co = co, obj = false, U = false, timer = false, done = false,
              ev = false, why = false, many = objs, from = false, open = 0,
              runner = job_of[co] ~= nil }
  local e = co and timeout and new_timer(now() + timeout, co, w)
  if co then will_wait(co, w) end
  local how, r = wait("receive", w, timeout, waits.add_many,
                      waits.undo_receiver, e,
                      not co and function()
    for i = 1, #objs do
      if abroad(objs[i]) then return true end
    end
    return false
  end, Us)
  if how == "none" then return nil, "closed" end
  if how == "yield" then waited(w) end
  if w.done then
    if w.ev then return w.ev, w.from end
    return nil, w.why
  end
  if r == nil then
    error("receive() would wait forever: no task, timer or other thread "
          .. "can post to these ports", 3)
  end
  return nil, "timeout"
end

return M
