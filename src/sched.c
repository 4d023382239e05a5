/*
** sched.c: the C half of the scheduler (lua/messagechannel/scheduler.lua).
**
** Receivers: objects that own an end of a group and dispatch what arrives
** there as events (a MessagePort). The scheduler runs a queue of tokens,
** the run queue (ctx.c); a receiver token means "dispatch the head of this
** receiver's queue". A receiver keeps as many tokens queued as it has
** entries that can be dispatched (kick), so tokens are queued in arrival
** order, which gives the global order across ports. A token that finds
** its message already taken (by receive) or its receiver no longer
** listening does nothing.
**
** A post from the same state kicks the receiving object at once; a post
** from another thread tells the state's hub, and poll kicks the object
** when the scheduler looks.
**
** Lifetime: a receiver that wants events (listeners or waiting tasks) is
** kept alive by its partner when the partner lives in the same state
** (U.keep in the partner's uservalue U), or else by the pinned table,
** since another thread may post to it at any time (unless it is stuck,
** see sched_busy).
*/
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "mc.h"

#define UNTIED_MT "messagechannel.untied"  /* see mc_recv_untie */

/* The event types a receiver dispatches, whose listeners make it want
** events; take pushes them from the context (MC_CTX_EVENTS + i). */
static const char *const events[] = {"message", "messageerror", "close",
                                     "error", NULL};
#define MESSAGE 0
#define MESSAGEERROR 1
#define CLOSE 2
#define ERROR 3  /* a note (mc_msg_note): a BroadcastChannel's problem */
#define NOTE -1  /* read_head's status for a note (pcall statuses are >= 0) */
#define GONE -2  /* read_head's status when r let go of its end meanwhile */

static void push_event (lua_State *L, int i) {
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_EVENTS + i);
}

/* The field names the dispatch path reads and sets, kept as strings in
** the context (MC_CTX_KEYS + k), so that no call hashes a C string. */
static const char *const keys[] = {
  "type", "data", "error", "target", "ports", "lists",
  "waiters", "removed", "once", "fn", "ev", "U", "list", "i", "done",
  "timer", "dead", "co", "many", "from", "on", "runner", "h", "n",
  "writers", "untied", "wake", "open", "why", "kept", NULL
};
enum { K_TYPE, K_DATA, K_ERROR, K_TARGET, K_PORTS, K_LISTS,
       K_WAITERS, K_REMOVED, K_ONCE, K_FN, K_EV, K_U, K_LIST, K_I, K_DONE,
       K_TIMER, K_DEAD, K_CO, K_MANY, K_FROM, K_ON, K_RUNNER,
       K_H, K_N, K_WRITERS, K_UNTIED, K_WAKE, K_OPEN, K_WHY, K_KEPT };

/* Pushes the field name k. */
static void pushk (lua_State *L, int k) {
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_KEYS + k);
}

/* Pushes t[k] of the table at idx, with no metamethod. */
static void getk (lua_State *L, int idx, int k) {
  idx = mc_absindex(L, idx);
  pushk(L, k);
  lua_rawget(L, idx);
}

/* t[k] = the value at the top (popped), for the table at idx, with no
** metamethod. */
static void setk (lua_State *L, int idx, int k) {
  idx = mc_absindex(L, idx);
  pushk(L, k);
  lua_insert(L, -2);
  lua_rawset(L, idx);
}

/* The receiver at idx, or NULL. */
static mc_Recv *test_recv (lua_State *L, int idx) {
  const mc_Type *t = mc_ctx_type(L, idx);
  return t != NULL && t->receiver ? (mc_Recv *)lua_touserdata(L, idx) : NULL;
}

static mc_Recv *check_recv (lua_State *L, int idx) {
  mc_Recv *r = test_recv(L, idx);
  if (r == NULL)
    luaL_argerror(L, idx, lua_pushfstring(L, "MessagePort or "
                                          "BroadcastChannel expected, got %s",
                                          mc_ctx_typename(L, idx)));
  return r;
}

mc_Recv *mc_recv_new (lua_State *L, const mc_Type *t, size_t size) {
  mc_Recv *r = (mc_Recv *)mc_newuserdata(L, size, 1);
  memset(r, 0, size);
  luaL_getmetatable(L, t->tname);
  lua_setmetatable(L, -2);
  lua_createtable(L, 0, 4);
  lua_pushboolean(L, 0);  /* U.keep always has a value, so that setting */
  lua_setfield(L, -2, "keep");  /* it later allocates nothing */
  mc_setuservalue(L, -2);
  r->id = mc_ctx_register(L, -1);
  return r;
}

void mc_recv_attach (lua_State *L, mc_Recv *r, mc_Group *g, size_t e) {
  r->group = g;
  r->end = e;
  mc_group_attach(g, e, mc_ctx_hub(L), r->id);
}

void mc_recv_release (lua_State *L, mc_Recv *r, int for_good) {
  mc_Group *g = r->group;
  mc_Msg *freed = NULL;
  r->group = NULL;
  if (for_good) {
    mc_group_release(g, r->end, &freed);
    if (r->lent == MC_LENT_READ)  /* a finalizer run by read_head: the */
      mc_msg_unlink(&freed, r->reading);  /* read frees it once done */
  }
  else {
    mc_group_detach(g, r->end, mc_ctx_hub(L));
    mc_group_decref(g);
  }
  mc_msg_free(freed);
}

void mc_recv_finalized (lua_State *L, int idx, mc_Recv *r) {
  int hand = 0;
  if (r->id != 0 && r->waiting) {  /* a collected object is no longer in */
    mc_ctx_push(L, r->id);  /* the weak table of objects: by hand, it is */
    hand = lua_rawequal(L, -1, idx);
    lua_pop(L, 1);
  }
  if (hand) {  /* its waiters hold it: they get the close (deliver) */
    mc_ctx_reserve(L, 1);
    mc_recv_kick_safe(L, idx, r);
    return;
  }
  mc_ctx_unregister(L, r->id);
  r->id = 0;
}

/* A BroadcastChannel (a group of one end) dispatches whatever listens,
** as HTML's: a message nobody listens to goes at its dispatch, and an
** error event nobody listens to is reported (mc.onerror). */
static int deliverable (const mc_Recv *r) {
  return r->waiting
         || (r->started && (r->listening
                            || (r->group != NULL && r->group->nends == 1)));
}

/* Whether the receiver can never dispatch again unless code that holds it
** starts it or waits on it: a message it cannot deliver is at the head,
** and whatever comes later queues behind it. */
static int stuck (const mc_Recv *r) {
  size_t count;
  int closing;
  return !deliverable(r)
         && mc_group_head(r->group, r->end, &count, &closing) == MC_MESSAGE;
}

/* Whether a receiver is stuck for good: nothing another thread does can
** make it dispatch, so that nothing need pin it (busy, collect). */
static int let_go (const mc_Recv *r) {
  return r->group != NULL && !r->writing && stuck(r);
}

mc_Recv *mc_recv_push (lua_State *L, uint32_t id) {
  mc_Recv *r;
  mc_ctx_push(L, id);
  r = test_recv(L, -1);
  return r != NULL && r->group != NULL ? r : NULL;
}

/*
** Global post order (API.md 3.1) for messages from other threads. Each
** message is stamped with its arrival in this state (mc_Slot). A
** receiver that can dispatch gets tokens only for its messages that
** arrived by the time the state last took its hub's ids (the hub's
** bound): the id of a receiver that a later message went to may still be
** on its way, and that message would be passed by a later one to this
** receiver. The later ones wait for the next poll (the receiver tells its
** hub again), which queues the tokens of every receiver it has news for
** in the order of arrival, not receiver after receiver (sched_poll's
** merge). A pair's port whose partner lives here has all its messages
** due at once, each posted here in order, except while a poll's cut
** leaves older messages waiting, or while a post of its waits for a
** merge (below). A BroadcastChannel hears
** any thread: its messages from elsewhere wait for a poll like a port's,
** so that one post reaches this state's channels in the order of the
** HTML standard's tasks (one channel after another, in the order they
** were made, for each message).
**
** A message posted here, to a BroadcastChannel or a pair's port of this
** state, arrived after everything else: it is due at once when nothing
** from another thread can be ahead of it (no news at the hub, nothing
** arrived since the ids were taken). Else a broadcast runs a poll's
** merge itself, without a wait, with the channels it reached
** (mc_recv_kick_posted_here), and a post to a port is left for the next
** poll's merge (mc_recv_kick_posted_port): that takes no run-queue slot
** (a post the scheduler sends once room was made has one reserved for
** the wake of its task) and no merge per message (a listener that
** forwards each message of a worker's). So it never passes an older
** message, at the receivers it reached or elsewhere. What waits for a
** merge has no token yet: a port is pinned meanwhile (defer).
**
** A backlog is taken a part at a time: a kick queues tokens for
** MC_TAKE_MAX of a receiver's messages at most, and a poll for
** MC_TAKE_MAX messages at most, the oldest by arrival of all its
** receivers': it lowers the bound to the arrival of the last it takes,
** and the receivers with messages left tell the hub again (while the
** bound is lowered, below the hub's `taken`, a broadcast made here waits
** for the merge too, behind what the cut left, and so does a pair's
** port whose partner lives here). A poll takes fewer while the
** run queue still holds the tokens the last merges queued (a turn that
** ended early), none from MC_TAKE_MAX on. So the time a poll or a kick
** takes, and what it adds to a turn, do not grow with the backlog: a
** timer that falls due, or a task woken, waits for a bounded number of
** messages (the README's Fairness), and the backlog stays in the ends'
** queues, not in the run queue.
*/

/* What receiver r, which can dispatch, may have tokens for now: its
** messages up to the first one that arrived after the bound (*due, from
** the head), or all of them when its partner lives here or when `posted`
** (the last was posted here just now) and only that last one is past the
** bound and untokened, then its close (*close) once nothing is left
** after them; of those, `room` at most past the r->tokens-th, whose
** arrivals go to out (unless NULL). While a poll's cut left older
** messages waiting (the bound lowered), or while messages of r wait for
** a merge (deferred: a kick before it must not queue them ahead of what
** other threads posted before), its messages are due by the bound only.
** Returns 1 when later messages wait (defer). */
static int due_now (lua_State *L, mc_Recv *r, uint64_t *out, size_t room,
                    size_t *due, int *close, int posted) {
  mc_Hub *h = mc_ctx_hub(L);
  size_t count, have;
  int closing, by_bound = h->bound < h->taken  /* older messages wait */
                          || r->deferred;    /* or it waits for a merge */
  mc_group_head_upto(r->group, r->end, r->tokens, h->bound,
                     by_bound ? NULL : h, out, room, &count, due, &closing);
  have = *due > r->tokens ? *due : r->tokens;
  if (posted && !by_bound && count > 0 && count - 1 <= have)
    have = *due = count;
  *close = closing && count == have;
  return count > have;
}

/* Queues n tokens for receiver r at idx. A BroadcastChannel that no
** listener keeps alive gets tokens that do not keep it alive (see
** mc_recv_untie). */
static void add_tokens (lua_State *L, int idx, mc_Recv *r, size_t n) {
  if (r->group != NULL && r->group->nends == 1 && !r->wants) {
    int top = lua_gettop(L);
    idx = mc_absindex(L, idx);
    mc_getuservalue(L, idx);
    getk(L, -1, K_UNTIED);
    if (lua_istable(L, -1))
      idx = lua_gettop(L);
    r->tokens += mc_ctx_enqueue(L, idx, n);
    lua_settop(L, top);
  }
  else
    r->tokens += mc_ctx_enqueue(L, idx, n);
}

/* Receiver r at idx has messages that wait for a later poll's merge: its
** hub is told. A port is pinned until they have tokens (undefer): one
** whose partner lives here is kept alive by that partner and its tokens
** only, and one whose pair was closed by its tokens only, so two
** unreachable ports with a listener would be collected before their
** messages and close were dispatched (API.md 3.4, 3.6). */
static void defer (lua_State *L, int idx, mc_Recv *r) {
  mc_hub_notify(mc_ctx_hub(L), r->id);
  if (!r->deferred && r->group->nends == 2)
    mc_ctx_pin(L, idx, r->id, 1);
  r->deferred = 1;
}

/* Receiver r at idx has no messages left to wait for a merge: what keeps
** it alive is decided again (mc_recv_repin). */
static void undefer (lua_State *L, int idx, mc_Recv *r) {
  r->deferred = 0;
  mc_recv_repin(L, idx, r);
}

static void kick (lua_State *L, int idx, mc_Recv *r, int posted) {
  size_t count, want;
  int closing, head, later = 0;
  if (r->group == NULL)  /* gone: tasks waiting in receive learn it */
    want = r->waiting && r->id != 0;
  else if (deliverable(r)) {
    later = due_now(L, r, NULL, MC_TAKE_MAX, &count, &closing, posted);
    want = (count > r->tokens ? count : r->tokens) + (size_t)closing;
  }
  else {
    head = mc_group_head(r->group, r->end, &count, &closing);
    want = head == MC_CLOSED;
  }
  if (r->tokens < want)
    add_tokens(L, idx, r, want - r->tokens);
  if (later)
    defer(L, idx, r);
  else if (r->deferred && r->group != NULL && r->tokens >= want)
    undefer(L, idx, r);  /* its tokens keep it now (a kick that found no
                         ** slot left it pinned: the next poll looks) */
}

void mc_recv_kick (lua_State *L, int idx, mc_Recv *r) {
  kick(L, idx, r, 0);
}

void mc_recv_kick_safe (lua_State *L, int idx, mc_Recv *r) {
  mc_Ctx *c = mc_ctx(L);
  c->noalloc = 1;
  kick(L, idx, r, 0);
  c->noalloc = 0;
}

void mc_recv_kick_posted (lua_State *L, int idx, mc_Recv *r) {
  mc_Ctx *c = mc_ctx(L);
  c->noalloc = 1;
  kick(L, idx, r, 1);
  c->noalloc = 0;
}

void mc_recv_untie (lua_State *L, int idx) {
  idx = mc_absindex(L, idx);
  mc_getuservalue(L, idx);
  pushk(L, K_UNTIED);
  lua_createtable(L, 2, 0);
  lua_pushboolean(L, 0);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, 2);
  luaL_getmetatable(L, UNTIED_MT);
  lua_setmetatable(L, -2);
  lua_rawset(L, -3);  /* U.untied = {false, object}, weak */
  lua_pop(L, 1);
}

/* Sets U.keep of the receiver at idx to the value at the top (popped):
** a partner kept alive by it, or false. */
static void set_keep (lua_State *L, int idx) {
  idx = mc_absindex(L, idx);
  mc_getuservalue(L, idx);
  lua_insert(L, -2);
  lua_setfield(L, -2, "keep");
  lua_pop(L, 1);
}

void mc_recv_unkeep (lua_State *L, int idx) {
  mc_Recv *r;
  idx = mc_absindex(L, idx);
  lua_pushboolean(L, 0);
  set_keep(L, idx);
  r = (mc_Recv *)lua_touserdata(L, idx);  /* a message of a pair closed
                  ** here that waits for a merge (defer) has no token to
                  ** keep it yet: still pinned */
  mc_ctx_pin(L, idx, r->id, r->group != NULL && r->deferred != 0);
}

void mc_recv_repin (lua_State *L, int idx, mc_Recv *r) {
  uint32_t peer = r->group != NULL
                  ? mc_group_local_peer(r->group, r->end, mc_ctx_hub(L)) : 0;
  idx = mc_absindex(L, idx);
  if (peer != 0) {
    if (mc_recv_push(L, peer) != NULL) {
      if (r->wants)
        lua_pushvalue(L, idx);
      else
        lua_pushboolean(L, 0);
      set_keep(L, -2);
      lua_pop(L, 1);
      mc_ctx_pin(L, idx, r->id, r->deferred != 0);
      return;
    }
    lua_pop(L, 1);
  }
  mc_ctx_pin(L, idx, r->id, r->group != NULL
                            && (r->writing
                                || (r->wants
                                    && (r->group->nends != 1  /* a port */
                                        || r->listening || r->waiting)
                                    && !(r->unref && r->group->nends == 1)
                                    && !mc_group_ended(r->group, r->end)
                                    && !stuck(r))));
}

void mc_recv_repin_peer (lua_State *L, mc_Group *g, size_t e) {
  uint32_t peer = mc_group_local_peer(g, e, mc_ctx_hub(L));
  if (peer != 0) {
    mc_Recv *q = mc_recv_push(L, peer);
    if (q != NULL)
      mc_recv_repin(L, -1, q);
    lua_pop(L, 1);
  }
}

/* Pushes the objects of the array at objs that are receivers, as an
** array, or nil when objs is nil. */
static void push_ports (lua_State *L, int objs) {
  lua_Integer i, n;
  if (lua_isnil(L, objs)) {
    lua_pushnil(L);
    return;
  }
  n = (lua_Integer)mc_rawlen(L, objs);
  lua_createtable(L, (int)n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, objs, (int)i);
    if (test_recv(L, -1) != NULL)
      lua_rawseti(L, -2, (int)mc_rawlen(L, -2) + 1);
    else
      lua_pop(L, 1);
  }
}

/* Whether the error at idx says the message cannot be decoded, rather
** than that memory ran out (then the message stays to be read again). */
static int clone_error (lua_State *L, int idx) {
  const char *s = lua_tostring(L, idx);
  return s != NULL && strstr(s, "DataCloneError:") != NULL;
}

/*
** Taking an entry off a receiver's queue runs in two steps, so that out
** of memory no entry is lost: first everything that delivers it is made
** while the entry is still queued (the message read, its ports, the event,
** the stack the listener will need); then the entry is taken, which
** allocates nothing. An error in the first step leaves the entry queued
** and, for the scheduler, its token at the head of the run queue.
*/

/* Reads message m, the head of r's queue, leaving it queued: pushes its
** value (or its error) and the array of the ports it transferred (or
** nil); returns the read status. While it reads, r is lent, so that a
** finalizer that runs meanwhile can neither take from it nor move it. One
** that lets r's end go (a close of a BroadcastChannel, a __gc called by
** hand) leaves m to the read (mc_recv_release): it is freed here, nothing
** is pushed, and the status is GONE. */
static int read_head (lua_State *L, mc_Recv *r, mc_Msg *m) {
  int status, base = lua_gettop(L);
  if (mc_msg_is_note(m)) {  /* its text, as the error of an error event */
    size_t len;
    const unsigned char *p = mc_msg_data(m, &len);
    lua_pushlstring(L, (const char *)p, len);
    lua_pushnil(L);
    lua_pushnil(L);
    return NOTE;
  }
  r->lent = MC_LENT_READ;
  r->reading = m;
  status = mc_message_read(L, m);  /* value or error, objs or nil */
  r->lent = 0;
  r->reading = NULL;
  if (r->group == NULL) {
    mc_msg_free(m);
    lua_settop(L, base);
    return GONE;
  }
  if (status != 0 && !clone_error(L, base + 1)) {
    lua_settop(L, base + 1);
    lua_error(L);
  }
  push_ports(L, base + 2);  /* value, objs, ports */
  return status;
}

/* Frees the messages queued at r unread (mc_group_drop's `all`): every
** removal from r's queue counts in r->takes, which head_event checks. */
int mc_recv_drop (mc_Recv *r, int all) {
  if (r->group == NULL || !mc_group_drop(r->group, r->end, all))
    return 0;
  r->takes++;
  return 1;
}

/* Takes the message read by read_head (value, objs, ports at the top,
** popped but the value) and hands its payloads to its objects: allocates
** nothing. A message that could not be read is freed: the ports it
** brought close at their partners. */
static void take_head (lua_State *L, mc_Recv *r, int status) {
  mc_Msg *m;
  lua_pop(L, 1);
  mc_group_take(r->group, r->end, MC_TAKE_MESSAGE, &m);
  r->takes++;
  if (status != 0)
    mc_msg_free(m);
  else if (mc_message_fill(L, m) != 0)
    lua_error(L);
  lua_pop(L, 1);
}

/* Pushes a new event of type typ at the receiver at obj, with the value
** at data (0: none) as its data, or as its error for a messageerror, and
** the array at ports (0 or nil: none). Its constant fields, and
** currentTarget (its target), come from the event metatable of
** messagechannel.eventtarget. */
static void push_new_event (lua_State *L, int typ, int obj, int data,
                            int ports) {
  int has_ports = ports != 0 && !lua_isnil(L, ports);
  lua_createtable(L, 0, 2 + (data != 0) + has_ports);
  pushk(L, K_TYPE);  /* key first, then value: no stack rotation */
  push_event(L, typ);
  lua_rawset(L, -3);
  if (data != 0) {
    pushk(L, typ == MESSAGEERROR || typ == ERROR ? K_ERROR : K_DATA);
    lua_pushvalue(L, data);
    lua_rawset(L, -3);
  }
  pushk(L, K_TARGET);  /* currentTarget reads it (the metatable's) */
  lua_pushvalue(L, obj);
  lua_rawset(L, -3);
  if (has_ports) {
    pushk(L, K_PORTS);
    lua_pushvalue(L, ports);
    lua_rawset(L, -3);
  }
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_EVENT_MT);
  lua_setmetatable(L, -2);
}

#if MC_YIELDABLE_CALL
static int noop (lua_State *L) {
  (void)L;
  return 0;
}
#endif

/* Makes the call frame one level below the running C function, for
** dispatch_on's call of a listener after a take, while an error (out of
** memory) still leaves the entry queued. */
static void make_call_frame (lua_State *L) {
#if MC_YIELDABLE_CALL
  lua_pushcfunction(L, noop);
  lua_call(L, 0, 0);
#else
  (void)L;
#endif
}

/* What head_event finds at the head of r's queue: MC_MESSAGE (its
** arrival in *arrival), MC_CLOSED (a close to take with `token`; without,
** nothing left and nothing to come: mc_group_peek's done), or MC_EMPTY
** (also while r is lent). */
static int head_of (mc_Recv *r, int token, uint64_t *arrival, mc_Msg **m) {
  int h, done;
  if (r->group == NULL || r->lent)  /* lent: on its way to another state */
    return MC_EMPTY;
  h = mc_group_peek(r->group, r->end, m, arrival, &done);
  if (h == MC_MESSAGE)
    return deliverable(r) || !token ? MC_MESSAGE : MC_EMPTY;
  return (token ? h == MC_CLOSED : done) ? MC_CLOSED : MC_EMPTY;
}

/* The event of the head of r's queue (the receiver at 1), pushed, or
** nothing (returns 0). With `token`, a message is read only while r is
** deliverable, and a close is taken; without (receive), any message is,
** and only a close with nothing left entangled. `st` gets the read
** status of a message; its value, objs and ports stay below the event.
** With `token`, the call frame for dispatch_on's listener is made last
** (make_call_frame). A finalizer or a hook that runs meanwhile may take
** the head, move r away or change its listeners: then the head is looked
** at again. Only code of this state takes from r's queue (take_head,
** take_event, mc_recv_drop: r->takes), moves it (r->group, r->lent) or
** changes what it listens to (reread: r->gen); another thread only adds
** to the queue or closes the pair, which leaves a message at the head.
** So a message whose read none of those came after is still the head,
** and is not looked at again. */
static int head_event (lua_State *L, mc_Recv *r, int token, int *st) {
  int base = lua_gettop(L);
  for (;;) {
    mc_Msg *m, *again;
    mc_Group *g = r->group;
    uint64_t arrival, now;
    unsigned takes = r->takes, gen = r->gen;
    int h = head_of(r, token, &arrival, &m);
    *st = 0;
    if (h == MC_MESSAGE) {
      if ((*st = read_head(L, r, m)) == GONE)  /* value, objs, ports */
        continue;
      push_new_event(L, *st == NOTE ? ERROR : *st != 0 ? MESSAGEERROR
                                                      : MESSAGE,
                     1, base + 1, base + 3);
    }
    else if (h == MC_CLOSED) {
      const char *why = mc_group_reason(r->group);  /* a link's */
      push_new_event(L, CLOSE, 1, 0, 0);
      if (why != NULL) {
        lua_pushstring(L, why);
        lua_setfield(L, -2, "reason");
      }
    }
    if (token && h != MC_EMPTY)
      make_call_frame(L);
    if (h == MC_MESSAGE && r->takes == takes && r->gen == gen
        && r->group == g && !r->lent)
      return h;
    if (h == MC_EMPTY || (head_of(r, token, &now, &again) == h
                          && (h != MC_MESSAGE || now == arrival)))
      return h;
    lua_settop(L, base);
  }
}

/* Takes what head_event made the event at the top for (a close only with
** `token`): allocates nothing. */
static void take_event (lua_State *L, mc_Recv *r, int token, int h,
                        int status) {
  mc_Msg *m;
  if (h == MC_MESSAGE) {
    lua_insert(L, -4);  /* ev, value, objs, ports */
    take_head(L, r, status);
    lua_pop(L, 1);
    return;
  }
  if (token) {
    mc_group_take(r->group, r->end, MC_TAKE_CLOSE, &m);
    r->takes++;
  }
  mc_ctx_pin(L, 1, r->id, 0);
}

/*
** take(obj): for receive, the next entry of the receiver's queue as an
** event: a message or a messageerror, or a close when the object is
** closed and has no message left (the close itself stays queued for the
** listeners); or nothing.
*/
static int sched_take (lua_State *L) {
  mc_Recv *r = check_recv(L, 1);
  int h, status, drains = mc_ctx(L)->drains;
  lua_settop(L, 1);
  if (r->group == NULL || r->lent)
    return 0;
  mc_ctx_reserve(L, 1);  /* for the close that may come next */
  h = head_event(L, r, 0, &status);
  if (h == MC_EMPTY)
    return 0;
  take_event(L, r, 0, h, status);
  if (h == MC_MESSAGE)
    mc_recv_kick_safe(L, 1, r);  /* the close may be at the head now */
  if (drains != 2 && mc_ctx(L)->drains == 2)  /* a remote port came with
                                   ** output left: a host loop steps for
                                   ** it (port.c's port_fill) */
    mc_ctx_wake(L);
  return 1;
}

/*
** arrival(obj): what receive would find at the receiver's head: "message"
** and its arrival in this state (messages that came earlier have smaller
** ones), "closed" when it is closed with nothing left (or gone to another
** state), or nothing. Closed and empty are one look (mc_group_peek's
** done): a queue found empty, then the pair found closed, missed a message
** the partner's thread posted in between, just before its close, and
** receive returned nil, "closed" with that message still queued.
*/
static int sched_arrival (lua_State *L) {
  mc_Recv *r = check_recv(L, 1);
  uint64_t arrival;
  mc_Msg *m;
  int done;
  if (r->group == NULL) {
    lua_pushliteral(L, "closed");
    return 1;
  }
  if (r->lent)
    return 0;
  if (mc_group_peek(r->group, r->end, &m, &arrival, &done) == MC_MESSAGE) {
    lua_pushliteral(L, "message");
    lua_pushnumber(L, (lua_Number)arrival);
    return 2;
  }
  if (done) {
    lua_pushliteral(L, "closed");
    return 1;
  }
  return 0;
}

/* The stack a listener's call needs beyond a C function's frame at the
** same depth: the largest Lua frame and the caller's registers. */
#define CALL_ROOM (2 * 256 + LUA_MINSTACK)

static void reread (lua_State *L, int idx, mc_Recv *r, int safe);

/*
** The tasks waiting in a receiver's receive, U.waiters, and the posts
** waiting for room at a port, U.writers, are queues, oldest first:
** q[q.h] .. q[q.h + q.n - 1], with h and n always set (scheduler.lua
** makes and fills them). Taking from one allocates nothing.
*/

static lua_Integer queue_field (lua_State *L, int idx, int k) {
  lua_Integer v;
  getk(L, idx, k);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* How many wait in the queue at idx (0 when there is no table). */
static lua_Integer queue_len (lua_State *L, int idx) {
  return lua_istable(L, idx) ? queue_field(L, idx, K_N) : 0;
}

/* Pushes q[i] of the queue at idx. (No lua_rawgeti: i may pass an int.) */
static void queue_get (lua_State *L, int idx, lua_Integer i) {
  idx = mc_absindex(L, idx);
  lua_pushinteger(L, i);
  lua_rawget(L, idx);
}

/* q[i] = the value at the top (popped); key i exists, or the value is
** nil: allocates nothing. */
static void queue_set (lua_State *L, int idx, lua_Integer i) {
  idx = mc_absindex(L, idx);
  lua_pushinteger(L, i);
  lua_insert(L, -2);
  lua_rawset(L, idx);
}

/* Takes entry `at` out of the queue at idx, moving the entries on its
** shorter side by one: the oldest leaves in O(1). */
static void queue_take (lua_State *L, int idx, lua_Integer at) {
  lua_Integer h, n, last, i;
  idx = mc_absindex(L, idx);
  h = queue_field(L, idx, K_H);
  n = queue_field(L, idx, K_N);
  last = h + n - 1;
  if (at - h < last - at) {  /* the ones before it move up */
    for (i = at; i > h; i--) {
      queue_get(L, idx, i - 1);
      queue_set(L, idx, i);
    }
    lua_pushnil(L);
    queue_set(L, idx, h);
    lua_pushinteger(L, h + 1);
  }
  else {  /* the ones after it move down */
    for (i = at; i < last; i++) {
      queue_get(L, idx, i + 1);
      queue_set(L, idx, i);
    }
    lua_pushnil(L);
    queue_set(L, idx, last);
    lua_pushinteger(L, n == 1 ? 1 : h);  /* empty: from 1 again */
  }
  setk(L, idx, K_H);
  lua_pushinteger(L, n - 1);
  setk(L, idx, K_N);
}

/* Whether the table at idx (a receiver's U) has tasks waiting in
** receive. */
static int waiting (lua_State *L, int idx) {
  int yes;
  getk(L, idx, K_WAITERS);
  yes = queue_len(L, -1) > 0;
  lua_pop(L, 1);
  return yes;
}

/* Takes the value at the top (popped) out of the queue at idx, if it is
** there, and returns whether it was: allocates nothing. */
static int remove_from (lua_State *L, int idx) {
  lua_Integer h, n, i, at = 0;
  idx = mc_absindex(L, idx);
  h = queue_field(L, idx, K_H);
  n = queue_field(L, idx, K_N);
  for (i = h; i < h + n && at == 0; i++) {
    queue_get(L, idx, i);
    if (lua_rawequal(L, -1, -2))
      at = i;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (at != 0)
    queue_take(L, idx, at);
  return at != 0;
}

/* The scheduler's FIFO queues of waiting tasks (U.waiters, U.writers:
** {h = first, n = count, [h .. h + n - 1] = entries}) change only here,
** each change whole: a hook may raise at any instruction of Lua code,
** and a move of entries written in Lua that it stopped would leave one
** entry twice and another gone. */

/* q_push(q, v): v joins queue q as its newest. Making its slot may run
** out of memory, which raises with q as it was. */
static int sched_q_push (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  queue_set(L, 1, queue_field(L, 1, K_H) + queue_field(L, 1, K_N));
  lua_pushinteger(L, queue_field(L, 1, K_N) + 1);
  setk(L, 1, K_N);
  return 0;
}

/* q_take_out(q, v): takes v out of queue q (nil: none); returns whether it
** was there. */
static int sched_q_take_out (lua_State *L) {
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  if (lua_isnil(L, 1)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushboolean(L, remove_from(L, 1));
  return 1;
}

/* Ends the wait of the waiter at idx: it is done, and its timer, if it
** has one, dead. Its keys exist: nothing allocates. */
static void end_wait (lua_State *L, int idx) {
  idx = mc_absindex(L, idx);
  lua_pushboolean(L, 1);
  setk(L, idx, K_DONE);
  getk(L, idx, K_TIMER);
  if (lua_istable(L, -1)) {
    lua_pushboolean(L, 1);
    setk(L, -2, K_DEAD);
  }
  lua_pop(L, 1);
}

void mc_writer_sent (lua_State *L, int port, int w, mc_Recv *p) {
  port = mc_absindex(L, port);
  w = mc_absindex(L, w);
  end_wait(L, w);
  mc_getuservalue(L, port);
  getk(L, -1, K_WRITERS);  /* U, ws */
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, w);
    remove_from(L, -2);
  }
  p->writing = (int)queue_len(L, -1);
  lua_pop(L, 2);
  mc_recv_repin(L, port, p);
}

/* The waiter at the top, of mc.receive (w.many: its ports), was handed
** a message by the receiver at 1: w.from is set to it, and w leaves the
** waiters of its other ports, allocating nothing. */
static void hand_many (lua_State *L) {
  int w = lua_gettop(L), i, n;
  getk(L, w, K_MANY);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_pushvalue(L, 1);
  setk(L, w, K_FROM);
  n = (int)mc_rawlen(L, -1);
  for (i = 1; i <= n; i++) {
    mc_Recv *p;
    lua_rawgeti(L, w + 1, i);  /* w, many, port */
    p = test_recv(L, -1);
    if (p != NULL && !lua_rawequal(L, -1, 1)) {
      mc_getuservalue(L, -1);
      getk(L, -1, K_WAITERS);  /* w, many, port, U, ws */
      if (lua_istable(L, -1)) {
        lua_pushvalue(L, w);
        remove_from(L, -2);
      }
      lua_pop(L, 2);
      reread(L, -1, p, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* close_waiter(obj, job): the oldest task waiting in the receive of
** receiver obj gets its close, whole (a hook may raise at any instruction
** of the caller's Lua code): its waiter leaves U.waiters; a waiter of
** mc.receive (w.many) with other ports still open only counts this one
** off (w.open); any other is done, w.why "closed", its timer dead, and
** its coroutine is returned and set as job.wake, for the runner to
** resume (see scheduler.lua's fail). Returns nothing when no task waits,
** false for a waiter that goes on waiting or has no task. Allocates
** nothing: the fields exist. */
static int sched_close_waiter (lua_State *L) {
  mc_Recv *r = check_recv(L, 1);
  lua_Integer h;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  mc_getuservalue(L, 1);
  getk(L, 3, K_WAITERS);  /* obj, job, U, ws */
  if (queue_len(L, 4) == 0)
    return 0;
  h = queue_field(L, 4, K_H);
  queue_get(L, 4, h);  /* 5: w */
  queue_take(L, 4, h);
  getk(L, 5, K_MANY);
  getk(L, 5, K_OPEN);
  if (lua_toboolean(L, -2) && lua_tointeger(L, -1) > 1) {
    lua_pushinteger(L, lua_tointeger(L, -1) - 1);
    setk(L, 5, K_OPEN);
    lua_pushboolean(L, 0);
  }
  else {
    end_wait(L, 5);
    lua_pushliteral(L, "closed");
    setk(L, 5, K_WHY);
    getk(L, 5, K_CO);
    if (lua_toboolean(L, -1)) {
      lua_pushvalue(L, -1);
      setk(L, 2, K_WAKE);
    }
    else {  /* a receive outside any task: its loop sees w done */
      lua_pop(L, 1);
      lua_pushboolean(L, 0);
    }
  }
  reread(L, 1, r, 1);
  return 1;
}

/* Whether the table at idx (a receiver's U) has tasks waiting in receive,
** as waiting(); but first the waiters first in U.waiters whose coroutine
** is no longer suspended in its wait (Lua 5.4: closed by coroutine.close)
** wait no more: each is done, its timer dead, and it leaves the waiters
** of each of its ports, so that no message is handed to it. Returns
** GONE_RUNNER, with its coroutine pushed, when such a one was a runner's
** (w.runner: the scheduler's own coroutine, inside a listener): it is
** to be resumed once, which fails and ends that listener. The receiver
** is at 1. Allocates nothing. */
#define GONE_RUNNER 2
static int waiting_live (lua_State *L, mc_Recv *r, int idx) {
  int dropped = 0, yes = 0;
  idx = mc_absindex(L, idx);
  for (;;) {
    lua_State *co;
    lua_Integer h;
    getk(L, idx, K_WAITERS);
    if (queue_len(L, -1) == 0) {
      lua_pop(L, 1);
      break;
    }
    h = queue_field(L, -1, K_H);
    queue_get(L, -1, h);  /* ws, w */
    getk(L, -1, K_CO);
    co = lua_tothread(L, -1);
    lua_pop(L, 1);
    if (co == NULL || lua_status(co) == LUA_YIELD) {
      lua_pop(L, 2);
      yes = 1;
      break;
    }
    queue_take(L, -2, h);
    hand_many(L);
    end_wait(L, -1);  /* ws, w */
    dropped = 1;
    getk(L, -1, K_RUNNER);
    if (lua_toboolean(L, -1)) {
      lua_pop(L, 1);
      getk(L, -1, K_CO);  /* ws, w, co */
      lua_replace(L, -3);
      lua_pop(L, 1);  /* co */
      yes = GONE_RUNNER;
      break;
    }
    lua_pop(L, 3);
  }
  if (dropped)
    reread(L, 1, r, 1);
  return yes;
}

/* deliver's hand of the message event ev to the first task waiting in
** receive, with [value, objs, ports,] ev, U at the top: the waiter (whose
** fields all exist) is done and leaves U.waiters, and the message is
** taken, all with nothing allocated. Returns true, ev, and the waiting
** task's coroutine to resume with ev (false for a receive outside a task,
** whose loop sees the waiter done). A receive outside a task has ev in
** U.kept too (its key made by scheduler.lua's receive), until it returns
** it (sched_received): an error that comes out of its loop before (a
** hook's) leaves ev to the port's next receive. */
static int hand (lua_State *L, mc_Recv *r, int h, int status) {
  lua_Integer first;
  getk(L, -1, K_WAITERS);  /* ..., ev, U, ws */
  first = queue_field(L, -1, K_H);
  queue_get(L, -1, first);  /* ..., ev, U, ws, w */
  queue_take(L, -2, first);
  hand_many(L);
  end_wait(L, -1);
  lua_pushvalue(L, -4);
  setk(L, -2, K_EV);
  getk(L, -1, K_CO);  /* ..., ev, U, ws, w, co */
  if (lua_toboolean(L, -1)) {  /* the job to resume it, should the runner
                               ** fail first */
    lua_pushvalue(L, -1);
    setk(L, 2, K_WAKE);
  }
  else {
    getk(L, -4, K_KEPT);
    if (!lua_isnil(L, -1)) {  /* the key exists: allocates nothing */
      lua_pushvalue(L, -6);
      setk(L, -6, K_KEPT);
    }
    lua_pop(L, 1);
  }
  lua_replace(L, -4);  /* ..., ev, co, ws, w */
  lua_pop(L, 2);
  lua_pushboolean(L, 1);
  lua_insert(L, -3);  /* ..., true, ev, co */
  if (h == MC_MESSAGE) {  /* value, objs, ports, true, ev, co */
    int k;
    for (k = 0; k < 3; k++)
      lua_insert(L, 3);  /* true, ev, co, value, objs, ports */
    take_head(L, r, status);
    lua_pop(L, 1);
  }
  reread(L, 1, r, 1);
  return 3;
}

/* deliver's work for a receiver moved away (or whose end was collected)
** with tasks waiting in its receive: they get the close, and no
** listener. Returns false, ev. */
static int close_for_waiters (lua_State *L, mc_Recv *r) {
  push_new_event(L, CLOSE, 1, 0, 0);  /* job, ev */
  mc_getuservalue(L, 1);
  setk(L, 2, K_U);
  lua_pushvalue(L, 1);
  setk(L, 2, K_TARGET);
  lua_pushboolean(L, 0);
  setk(L, 2, K_LIST);
  lua_pushvalue(L, -1);
  setk(L, 2, K_EV);
  if (r->tokens > 0)
    r->tokens--;
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  return 2;
}

/*
** deliver(obj, job, head): the runner's work for one of obj's tokens,
** the run queue's entry `head`, which leaves the queue in the same call,
** once deliver has done its work (an error leaves it first, for the next
** turn): a hook may raise at any instruction of the runner's Lua code,
** and what deliver took must not be lost, nor taken twice. Sets the
** dispatch job (its fields exist: setting them allocates nothing) to the
** event of obj's head: target, U, ev, list (the listeners of the event's
** type, or false) and i = 1, and then takes the head. Returns
**   fn, ev      the one listener, a plain function: call fn(ev) with
**               job.i -1 (its call under way), then 2 (as walk leaves it)
**   true, ev, co  a message handed to a task waiting in receive (hand);
**               ev false: none, co a runner closed while it waited, to
**               resume once (see waiting_live); job.wake is co, until
**               the runner has resumed it
**   false, ev   anything else (several listeners or none, a close with
**               tasks waiting): the Lua side runs it
** or nothing. In the first case nothing allocates between the take and
** the listener's first instruction: the caller calls fn at the depth it
** called deliver, whose call frame the state keeps, or (dispatch_on) one
** level deeper, whose call frame head_event made, on a stack checked
** here.
*/
static int deliver (lua_State *L) {
  mc_Recv *r = check_recv(L, 1);
  int h, status, typ, fast = 0, live = 0;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (r->group != NULL && r->group->nends == 1 && !r->wants && !r->lent
      && mc_recv_drop(r, 0)) {
    if (r->tokens > 0)  /* a BroadcastChannel dispatching with no
                        ** listener: the message is fired at no one, as
                        ** HTML's task does, and not kept for a later
                        ** listener; the next ones have tokens of their
                        ** own, and a listener added before their turn
                        ** gets them (a note at the head stays, to be
                        ** reported) */
      r->tokens--;
    return 0;
  }
  if ((h = head_event(L, r, 1, &status)) == MC_EMPTY) {
    if (r->group == NULL && r->waiting)  /* also when moved by a
                                         ** finalizer head_event ran */
      return close_for_waiters(L, r);
    if (r->tokens > 0)
      r->tokens--;
    return 0;
  }  /* [value, objs, ports,] ev */
  typ = h == MC_CLOSED ? CLOSE : status == NOTE ? ERROR
        : status != 0 ? MESSAGEERROR : MESSAGE;
  luaL_checkstack(L, CALL_ROOM, NULL);
  mc_getuservalue(L, 1);  /* ..., ev, U */
  getk(L, -1, K_LISTS);
  if (lua_istable(L, -1)) {
    push_event(L, typ);
    lua_rawget(L, -2);
  }
  else
    lua_pushnil(L);
  lua_remove(L, -2);  /* ..., ev, U, list or nil */
  if (typ == MESSAGE && (live = waiting_live(L, r, -2)) == GONE_RUNNER) {
    if (r->tokens > 0)  /* ..., ev, U, list, co: the message stays */
      r->tokens--;
    lua_pushvalue(L, -1);
    setk(L, 2, K_WAKE);
    lua_pushboolean(L, 1);
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -3);
    return 3;  /* true, false, co */
  }
  if (typ == MESSAGE && live) {  /* ..., ev, U, list */
    lua_pop(L, 1);
    if (r->tokens > 0)
      r->tokens--;
    return hand(L, r, h, status);
  }
  if (typ == MESSAGE && !deliverable(r)) {  /* its token was for a waiter
                                            ** gone since: it stays */
    if (r->tokens > 0)
      r->tokens--;
    return 0;
  }
  if (lua_istable(L, -1) && mc_rawlen(L, -1) == 1) {
    getk(L, -2, K_WAITERS);
    fast = queue_len(L, -1) == 0;
    lua_rawgeti(L, -2, 1);  /* ..., ev, U, list, waiters, rec */
    getk(L, -1, K_REMOVED);
    getk(L, -2, K_ONCE);
    getk(L, -3, K_FN);  /* ..., rec, removed, once, fn */
    fast = fast && !lua_toboolean(L, -3) && !lua_toboolean(L, -2)
           && lua_type(L, -1) == LUA_TFUNCTION;
    lua_replace(L, -5);  /* ..., ev, U, list, fn, rec, removed, once */
    lua_pop(L, 3);
  }
  else
    lua_pushnil(L);
  if (!fast) {  /* ..., ev, U, list, fn */
    lua_pop(L, 1);
    lua_pushnil(L);
  }
  if (lua_isnil(L, -2)) {
    lua_pushboolean(L, 0);
    lua_replace(L, -3);
  }
  /* ..., ev, U, list, fn: the job's fields, all set before the take: a
  ** runner that fails before its listener's call (a hook's error) leaves
  ** a job that walks the list from i */
  lua_pushvalue(L, 1);
  setk(L, 2, K_TARGET);
  lua_pushvalue(L, -3);
  setk(L, 2, K_U);
  lua_pushvalue(L, -2);
  setk(L, 2, K_LIST);
  lua_pushvalue(L, -4);
  setk(L, 2, K_EV);
  lua_pushinteger(L, 1);
  setk(L, 2, K_I);
  lua_replace(L, -3);  /* ..., ev, fn, list */
  lua_pop(L, 1);
  lua_insert(L, -2);  /* ..., fn, ev */
  if (!fast) {
    lua_pushboolean(L, 0);
    lua_replace(L, -3);
  }
  if (r->tokens > 0)
    r->tokens--;
  if (h == MC_MESSAGE) {  /* value, objs, ports, fn, ev */
    lua_insert(L, 3);
    lua_insert(L, 3);  /* fn, ev, value, objs, ports */
    take_head(L, r, status);
    lua_pop(L, 1);
  }
  else
    take_event(L, r, 1, h, status);
  return 2;
}

static int sched_deliver (lua_State *L) {
  lua_Integer head = luaL_optinteger(L, 3, 0);
  int n;
  lua_settop(L, 2);
  n = deliver(L);
  if (head > 0) {  /* the token leaves with what deliver took, whole */
    lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_RUNQ);
    lua_pushnil(L);
    lua_rawseti(L, -2, (int)head);
    lua_pushinteger(L, head);
    lua_rawseti(L, -2, -1);
    lua_pop(L, 1);
  }
  return n;
}

#if MC_YIELDABLE_CALL
/* How many messages dispatch_on calls between two looks at the clock. */
#define CUT_CHECK 16

/*
** dispatch_on(obj, job, fn, ev, stop, cut_at): the runner's call of
** fn(ev), the one plain listener deliver returned for obj's head, with
** the job set as the runner sets it; then, when ev is a message event,
** the same for
** each next message of obj while the run queue's next token (before
** `stop`, runq[-1] being its head) is obj's and nothing deliver read has
** changed (obj's listeners and waiters: r->gen). Anything else, a
** messageerror or a close too, is left for deliver. Each message is taken
** as deliver takes it: what it needs made first (its event, the call
** frame of the listener's call: head_event; the stack), then the take,
** the token's removal, job.ev and job.i, which allocate nothing, and
** the call. fn may yield (receive, sleep): the call then ends this
** function, returning nothing, once fn returns; the runner, no longer the
** runner then, stops. It also stops once the clock, read every CUT_CHECK
** messages, has passed cut_at: the runner then ends the turn (see
** scheduler.lua's cut_at). Lua 5.3 and later.
*/
/* Where a listener that yielded in dispatch_on's call returns: job.i = 2,
** as after a call that did not yield (job at 2, the key at 8). */
static int dispatch_on_returned (lua_State *L, int status, lua_KContext k) {
  (void)status;
  (void)k;
  lua_pushvalue(L, 8);
  lua_pushinteger(L, 2);
  lua_rawset(L, 2);
  return 0;
}

static int sched_dispatch_on (lua_State *L) {
  mc_Recv *r = check_recv(L, 1);
  lua_Integer stop = luaL_checkinteger(L, 5), head;
  double cut_at = (double)luaL_checknumber(L, 6);
  unsigned gen = r->gen, calls = 0;
  int status, same, message;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 5);
  getk(L, 4, K_TYPE);
  push_event(L, MESSAGE);
  message = lua_rawequal(L, -1, -2);  /* fn is a message listener */
  lua_pop(L, 2);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_RUNQ);  /* 6 */
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_KEYS + K_EV);  /* 7 */
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_KEYS + K_I);  /* 8 */
  lua_pushvalue(L, 8);
  lua_pushinteger(L, -1);
  lua_rawset(L, 2);  /* job.i = -1: the call is under way */
  for (;;) {
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 4);
    lua_callk(L, 1, 0, 0, dispatch_on_returned);
    lua_pushvalue(L, 8);
    lua_pushinteger(L, 2);
    lua_rawset(L, 2);  /* job.i = 2: the one listener was called */
    if (!message)
      break;
    lua_rawgeti(L, 6, -1);
    head = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (head >= stop
        || (++calls % CUT_CHECK == 0 && mc_hub_now() >= cut_at))
      break;
    lua_rawgeti(L, 6, (int)head + 1);
    same = lua_rawequal(L, -1, 1);
    lua_pop(L, 1);
    if (!same || r->gen != gen || r->waiting)
      break;
    if (head_event(L, r, 1, &status) != MC_MESSAGE || status != 0
        || r->gen != gen) {  /* a finalizer run by the read may change
                             ** listeners: the message stays queued */
      lua_settop(L, 8);
      break;
    }  /* value, objs, ports, ev */
    luaL_checkstack(L, CALL_ROOM, NULL);
    if (r->tokens > 0)
      r->tokens--;
    take_event(L, r, 1, MC_MESSAGE, status);
    lua_replace(L, 4);
    lua_pushnil(L);
    lua_rawseti(L, 6, (int)head + 1);
    lua_pushinteger(L, head + 1);
    lua_rawseti(L, 6, -1);
    lua_pushvalue(L, 7);
    lua_pushvalue(L, 4);
    lua_rawset(L, 2);
    lua_pushvalue(L, 8);
    lua_pushinteger(L, -1);
    lua_rawset(L, 2);  /* job.i = -1: the call is under way */
  }
  return 0;
}
#endif

/* ref(), unref() and hasRef() of every receiver type: ref and unref change
** what keeps the scheduler going, so a host loop waiting on the
** descriptor steps to learn it. */
static int set_ref (lua_State *L, int unref) {
  mc_Recv *r = check_recv(L, 1);
  r->unref = unref;
  mc_recv_repin(L, 1, r);  /* an unref'd BroadcastChannel is not kept */
  mc_ctx_wake(L);
  return 0;
}

int mc_recv_ref (lua_State *L) {
  return set_ref(L, 0);
}

int mc_recv_unref (lua_State *L) {
  return set_ref(L, 1);
}

/* hasRef() is false once the receiver is closed, as Node's: it keeps
** nothing going then, whatever ref() and unref() said. */
int mc_recv_hasref (lua_State *L) {
  mc_Recv *r = check_recv(L, 1);
  lua_pushboolean(L, !r->unref && r->group != NULL
                     && mc_group_entangled(r->group));
  return 1;
}

/* __index of a receiver type: its methods (upvalue 3), then the handler
** fields the Lua side keeps in U.on (field -> record, the handler in
** record.fn); anything else is nil. */
int mc_recv_index (lua_State *L) {
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(3));
  if (lua_isnil(L, -1) && test_recv(L, 1) != NULL) {
    mc_getuservalue(L, 1);
    getk(L, -1, K_ON);
    if (lua_istable(L, -1)) {
      lua_pushvalue(L, 2);
      lua_rawget(L, -2);
      if (lua_istable(L, -1))
        getk(L, -1, K_FN);
    }
  }
  return 1;
}

void mc_recv_open_type (lua_State *L, int ctx, const mc_Type *t,
                        const luaL_Reg *meta, const luaL_Reg *methods,
                        lua_CFunction index, const char *field) {
  luaL_newmetatable(L, t->tname);
  lua_pushstring(L, t->name);  /* Lua 5.4's argument errors name it so */
  lua_setfield(L, -2, "__name");
  mc_setfuncs(L, meta, mc_ctx_upvalues(L, ctx));
  lua_newtable(L);
  mc_setfuncs(L, methods, mc_ctx_upvalues(L, ctx));  /* ..., mt, methods */
  mc_ctx_upvalues(L, ctx);
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, index, 3);
  lua_setfield(L, -3, "__index");
  lua_pushfstring(L, "%s_methods", field);
  lua_insert(L, -2);
  lua_rawset(L, ctx - 1);
  lua_pushfstring(L, "%s_metatable", field);
  lua_insert(L, -2);
  lua_rawset(L, ctx - 1);
  mc_ctx_add_type(L, t);
}

/* room(): the stack for a listener's call at the caller's depth, as
** deliver checks it. */
static int sched_room (lua_State *L) {
  luaL_checkstack(L, CALL_ROOM, NULL);
  return 0;
}

/* event_mt(): the metatable of the events the module makes, one per Lua
** state (messagechannel.eventtarget fills it in). */
static int sched_event_mt (lua_State *L) {
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_EVENT_MT);
  return 1;
}

/* Reads the listeners and the tasks waiting in receive of the receiver
** at idx from its U, queues the tokens that makes due and decides what
** keeps it alive. Only the kick may allocate (the key strings live in the
** Lua sources and U; keeping and pinning allocate nothing), and with
** `safe` it does not: the tokens come with the next poll's look. */
static void reread (lua_State *L, int idx, mc_Recv *r, int safe) {
  int i, is_waiting, top = lua_gettop(L);
  idx = mc_absindex(L, idx);
  r->gen++;
  mc_getuservalue(L, idx);  /* U */
  is_waiting = waiting(L, -1);
  getk(L, -1, K_LISTS);  /* U, lists */
  r->listening = r->wants = 0;
  for (i = 0; lua_istable(L, -1) && events[i] != NULL; i++) {
    push_event(L, i);
    lua_rawget(L, -2);
    if (!lua_isnil(L, -1)) {
      r->wants = 1;
      if (i == MESSAGE)
        r->listening = 1;
    }
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  r->waiting = is_waiting;
  r->wants |= is_waiting;
  if (safe)
    mc_recv_kick_safe(L, idx, r);
  else
    mc_recv_kick(L, idx, r);
  mc_recv_repin(L, idx, r);
}

/* changed(obj): the Lua side changed the listeners of obj or its tasks
** waiting in receive (reread). Returns whether obj is entangled. */
static int sched_changed (lua_State *L) {
  mc_Recv *r = check_recv(L, 1);
  lua_settop(L, 1);
  reread(L, 1, r, 0);
  lua_pushboolean(L, r->group != NULL && mc_group_entangled(r->group));
  return 1;
}

/* commit(obj, t1, k1, v1, ...): t1[k1] = v1, and so on, raw and in
** order, then rereads obj's listeners when obj is a receiver, with the
** kick that allocates nothing (the next poll's look queues the tokens it
** could not). A store to a key that exists, or of nil, allocates nothing;
** a caller that stores a new key puts it first (running out of memory
** there raises with nothing stored). No count hook runs in a C function,
** and a return hook only once all is stored: a change of listeners
** (eventtarget.lua) is done whole, C's view of it included, or not at
** all. */
static int sched_commit (lua_State *L) {
  int i, n = lua_gettop(L);
  mc_Recv *r = test_recv(L, 1);
  luaL_argcheck(L, n % 3 == 1, n, "table, key and value expected");
  for (i = 2; i <= n; i += 3) {
    luaL_checktype(L, i, LUA_TTABLE);
    luaL_argcheck(L, !lua_isnil(L, i + 1), i + 1, "key expected");
  }
  for (i = 2; i <= n; i += 3) {
    lua_pushvalue(L, i + 1);
    lua_pushvalue(L, i + 2);
    lua_rawset(L, i);
  }
  if (r != NULL)
    reread(L, 1, r, 1);
  return 0;
}

/* received(ev, x): returns ev, x, and lets go of ev as the kept message
** of its target (see hand), in one call: a receive's last step, called
** in tail position, so that no hook runs between the two. */
static int sched_received (lua_State *L) {
  lua_settop(L, 2);
  if (lua_istable(L, 1)) {
    getk(L, 1, K_TARGET);
    if (test_recv(L, 3) != NULL) {
      mc_getuservalue(L, 3);
      getk(L, 4, K_KEPT);
      if (lua_rawequal(L, 5, 1)) {
        lua_pushboolean(L, 0);
        setk(L, 4, K_KEPT);
      }
    }
    lua_settop(L, 2);
  }
  return 2;
}

/* mark_call(t, k, f, ...): t[k] = true, raw, then f(...), whose results
** it returns: no Lua instruction comes between the two, so a count or
** line hook's error finds both done or neither (an error report marked
** as made, scheduler.lua's report, is made). The key goes first: out of
** memory there raises with nothing called. */
#if MC_YIELD_THEN
static MC_KFUNCTION(mark_call_returned) {
  MC_KUNUSED;
  return lua_gettop(L) - 2;
}
#endif

static int sched_mark_call (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  luaL_checkany(L, 3);
  luaL_argcheck(L, !lua_isnil(L, 2), 2, "key expected");
  lua_pushvalue(L, 2);
  lua_pushboolean(L, 1);
  lua_rawset(L, 1);
#if MC_YIELD_THEN  /* f may wait (mc.onerror in a task): it yields */
  lua_callk(L, lua_gettop(L) - 3, LUA_MULTRET, 0, mark_call_returned);
#else
  lua_call(L, lua_gettop(L) - 3, LUA_MULTRET);
#endif
  return lua_gettop(L) - 2;
}

/* resume_task(resume, co, done, ...): resume(co, ...) (coroutine.resume,
** or a worker's, which notes the coroutine running), then, in the same
** call, the end of what handed co its wake: with done an integer, co's
** token, the run queue's entry `done`, leaves the queue; with a table (a
** dispatch job), its `wake` is false. Returns what resume returned. A
** hook that raises in the runner after the resume cannot leave the wake
** to resume co twice (on Lua 5.1 and LuaJIT a wait has no continuation
** to wait again: it would take the next wake's values). An error of
** resume itself (out of memory) leaves the wake for the next turn. A
** count or line hook runs in no C function, but a call or return hook
** runs at resume's call and return: on Lua's own VM (LuaJIT's hooks are
** global and reach no C function's return) those two are off in this
** coroutine meanwhile, and back once the wake ended, or once resume
** raised, unless the hook changed meanwhile (a worker's stop hook). */
#if !MC_GLOBAL_HOOKS
/* Puts back the call and return masks resume_task took off (set, setmask
** is what it left), unless the hook changed meanwhile. */
static void restore_hook (lua_State *L, lua_Hook hook, int mask, int count,
                          lua_Hook set, int setmask) {
  if ((set != hook || setmask != mask) && lua_gethook(L) == set
      && lua_gethookmask(L) == setmask)
    lua_sethook(L, hook, mask, count);
}
#endif

static int sched_resume_task (lua_State *L) {
  int i, n = lua_gettop(L), top;
#if !MC_GLOBAL_HOOKS
  lua_Hook hook = lua_gethook(L), set;
  int mask = lua_gethookmask(L), count = lua_gethookcount(L), setmask;
#endif
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_argcheck(L, lua_type(L, 3) == LUA_TNUMBER || lua_istable(L, 3), 3,
                "run queue index or job expected");
  luaL_checkstack(L, n + 2, NULL);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_RUNQ);  /* n + 1 */
  if (lua_type(L, 3) == LUA_TNUMBER) {  /* the run queue's next entry */
    lua_Integer head;
    int ok;
    lua_rawgeti(L, n + 1, -1);
    head = lua_tointeger(L, -1) + 1;
    lua_rawgeti(L, n + 1, 0);
    ok = lua_tonumber(L, 3) == (lua_Number)head
         && head <= lua_tointeger(L, -1);
    lua_pop(L, 2);
    luaL_argcheck(L, ok, 3, "not the run queue's next entry");
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  for (i = 4; i <= n; i++)
    lua_pushvalue(L, i);
#if !MC_GLOBAL_HOOKS
  if (hook != NULL && (mask & (LUA_MASKCALL | LUA_MASKRET)))
    lua_sethook(L, hook, mask & ~(LUA_MASKCALL | LUA_MASKRET), count);
  set = lua_gethook(L);
  setmask = lua_gethookmask(L);
  if (set != hook || setmask != mask) {  /* an error puts them back */
    if (lua_pcall(L, n - 2, LUA_MULTRET, 0) != 0) {
      restore_hook(L, hook, mask, count, set, setmask);
      return lua_error(L);
    }
  }
  else
#endif
  lua_call(L, n - 2, LUA_MULTRET);
  top = lua_gettop(L);
  if (lua_type(L, 3) == LUA_TNUMBER) {
    lua_Integer head = lua_tointeger(L, 3);
    lua_pushnil(L);
    lua_rawseti(L, n + 1, (int)head);
    lua_pushinteger(L, head);
    lua_rawseti(L, n + 1, -1);
  }
  else {
    lua_pushboolean(L, 0);
    setk(L, 3, K_WAKE);
  }
#if !MC_GLOBAL_HOOKS
  restore_hook(L, hook, mask, count, set, setmask);
#endif
  return top - (n + 1);
}

static int sched_uservalue (lua_State *L) {
  if (test_recv(L, 1) == NULL)
    return 0;
  mc_getuservalue(L, 1);
  return 1;
}

/* The run queue's tail (at 0) or head (at -1, the last token taken). */
static long long runq_index (lua_State *L, int at) {
  long long v;
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_RUNQ);
  lua_rawgeti(L, -1, at);
  v = (long long)lua_tointeger(L, -1);
  lua_pop(L, 2);
  return v;
}

/* A poll's merge (see "Global post order"): the messages of the ports it
** has news for, sorted by arrival before their tokens are queued, those
** that arrived by `cut` only. Out of memory, a port is kicked instead: in
** no particular order, but with nothing lost. */
#define MERGE_KEEP (8 * MC_TAKE_MAX)  /* entries a merge's arrays keep
                                      ** room for */

typedef struct Merge {
  mc_Ctx *c;
  size_t n;       /* entries in c->due: messages first once sorted, then
                  ** closes */
  size_t msgs;    /* messages among them */
  size_t ports;   /* ports that gave some */
  uint64_t cut;   /* the bound: the latest arrival it may take */
  uint64_t top;   /* the latest arrival it holds */
  size_t keep;    /* messages it may take: fewer while the run queue
                  ** still holds those of the last merges */
  uint32_t seq;
  unsigned mark;  /* this poll's (mc_Recv.polled) */
} Merge;

/* Makes room for n more in the merge's arrays; 0 when out of memory. */
static int merge_room (Merge *mg, size_t n) {
  mc_Ctx *c = mg->c;
  if (n > c->caparrived) {
    uint64_t *a = (uint64_t *)realloc(c->arrived, n * sizeof *a);
    if (a == NULL)
      return 0;
    c->arrived = a;
    c->caparrived = n;
  }
  if (mg->n + n > c->capdue) {
    size_t cap = (mg->n + n) * 2;
    mc_Due *d = (mc_Due *)realloc(c->due, cap * sizeof *d);
    if (d == NULL)
      return 0;
    c->due = d;
    c->capdue = cap;
  }
  return 1;
}

/* Adds a message (or a close: arrival past every message) to the merge,
** which has room for it. */
static void add_due (Merge *mg, uint64_t arrival, uint32_t id) {
  mc_Due *d = &mg->c->due[mg->n++];
  d->arrival = arrival;
  d->id = id;
  d->seq = mg->seq++;
}

static int due_order (const void *a, const void *b) {
  const mc_Due *x = (const mc_Due *)a, *y = (const mc_Due *)b;
  if (x->arrival != y->arrival)
    return x->arrival < y->arrival ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int id_order (const void *a, const void *b) {
  const mc_Due *x = (const mc_Due *)a, *y = (const mc_Due *)b;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* What arrived after `arrival` waits for the next poll, in this state:
** the bound comes down to it (kicks until then go by it too). */
static void lower_cut (lua_State *L, Merge *mg, uint64_t arrival) {
  if (arrival < mg->cut)
    mg->cut = mc_ctx_hub(L)->bound = arrival;
}

/* Keeps the `keep` oldest messages at most, and those that arrived by the
** cut: the others' ports tell the hub again, and lose their close. Sorts
** the merge, closes last. */
static void merge_cut (lua_State *L, Merge *mg, size_t keep) {
  mc_Due *d = mg->c->due;
  size_t k, i, closes;
  qsort(d, mg->n, sizeof *d, due_order);
  if (mg->msgs > keep)  /* keep 0: below the oldest */
    lower_cut(L, mg, keep > 0 ? d[keep - 1].arrival : d[0].arrival - 1);
  for (k = mg->msgs; k > 0 && d[k - 1].arrival > mg->cut; k--) {}
  if (k < mg->msgs) {  /* d[k .. msgs-1] wait: by port, each told once */
    mc_Due *left = d + k;
    size_t nleft = mg->msgs - k;
    qsort(left, nleft, sizeof *d, id_order);
    for (i = 0; i < nleft; i++)
      if (i == 0 || left[i].id != left[i - 1].id) {
        mc_Recv *r = mc_recv_push(L, left[i].id);
        if (r != NULL)
          defer(L, -1, r);
        else
          mc_hub_notify(mc_ctx_hub(L), left[i].id);
        lua_pop(L, 1);
      }
    for (i = mg->msgs, closes = 0; i < mg->n; i++)
      if (bsearch(&d[i], left, nleft, sizeof *d, id_order) == NULL)
        d[mg->msgs + closes++] = d[i];  /* kept, in order, clear of left */
    memmove(left, d + mg->msgs, closes * sizeof *d);  /* then over it */
    mg->n = k + closes;
    mg->msgs = k;
  }
  mg->top = k > 0 ? d[k - 1].arrival : 0;
}

/* The poll's kick of the port at idx: what a pair's port that can
** dispatch may have tokens for goes into the merge; anything else is
** kicked. */
static void collect (lua_State *L, int idx, mc_Recv *r, Merge *mg) {
  mc_Ctx *c = mg->c;
  size_t due, n, i;
  int close, later;
  if (r->group == NULL || !deliverable(r)) {
    mc_recv_kick(L, idx, r);
    if (let_go(r))  /* what came from another thread left it stuck */
      mc_ctx_pin(L, idx, r->id, 0);
    return;
  }
  if (r->polled == mg->mark)  /* noticed twice: its messages are in */
    return;
  r->polled = mg->mark;
  if (!merge_room(mg, MC_TAKE_MAX + 1)) {  /* and a close */
    mc_recv_kick(L, idx, r);
    return;
  }
  later = due_now(L, r, c->arrived, mg->keep, &due, &close, 0);
  n = due > r->tokens ? due - r->tokens : 0;
  for (i = 0; i < n; i++)
    add_due(mg, c->arrived[i], r->id);
  mg->msgs += n;
  mg->ports += n > 0;
  if (close)  /* after its messages: sorted last */
    add_due(mg, (uint64_t)-1, r->id);
  if (later)
    defer(L, idx, r);
  else if (r->deferred)  /* undone once its tokens are queued, unless */
    r->deferred = 2;     /* the merge's cut leaves some (merge_cut) */
  if (r->deferred == 2 && n == 0 && !close)
    undefer(L, idx, r);
  if (n > 0 && c->arrived[n - 1] > mg->top)
    mg->top = c->arrived[n - 1];
  if (n > 0 && n == mg->keep)  /* the rest may be older than others' */
    lower_cut(L, mg, c->arrived[n - 1]);
  if (mg->msgs >= 2 * MC_TAKE_MAX)
    merge_cut(L, mg, MC_TAKE_MAX);
}

/* Queues the merge's tokens in the order of arrival, a port's closes
** after every message. A port that went away meanwhile (a finalizer) is
** skipped: its receive waiters were told. */
static void merge_queue (lua_State *L, Merge *mg) {
  mc_Ctx *c = mg->c;
  size_t i = 0, j;
  if (mg->top > mg->cut || mg->msgs > mg->keep)
    merge_cut(L, mg, mg->keep);
  else if (mg->ports > 1)
    qsort(c->due, mg->n, sizeof *c->due, due_order);
  if (mg->n > 0)  /* a receiver, add_tokens' and mc_ctx_enqueue's own */
    luaL_checkstack(L, 6, "messagechannel");
  while (i < mg->n) {
    mc_Recv *r;
    for (j = i + 1; j < mg->n && c->due[j].id == c->due[i].id; j++) {}
    r = mc_recv_push(L, c->due[i].id);
    if (r != NULL) {
      add_tokens(L, -1, r, j - i);
      if (r->deferred == 2)
        undefer(L, -1, r);
    }
    lua_pop(L, 1);
    i = j;
  }
  if (mg->n > 0)
    c->merged_upto = c->tail;
  mg->n = 0;
  if (c->capdue > MERGE_KEEP) {  /* a burst's arrays go with it */
    free(c->due);
    free(c->arrived);
    c->due = NULL;
    c->arrived = NULL;
    c->capdue = c->caparrived = 0;
  }
}

/* Keeps id for the next poll to return (c->held), and wakes a host loop
** for it; out of memory, the hub is told of it again. */
static void hold (lua_State *L, uint32_t id) {
  mc_Ctx *c = mc_ctx(L);
  if (c->nheld == c->capheld) {
    size_t cap = c->capheld ? c->capheld * 2 : 16;
    uint32_t *ids = (uint32_t *)realloc(c->held, cap * sizeof *ids);
    if (ids == NULL) {
      mc_hub_notify(mc_ctx_hub(L), id);
      return;
    }
    c->held = ids;
    c->capheld = cap;
  }
  c->held[c->nheld++] = id;
  if (c->nheld == 1)
    mc_ctx_wake(L);
}

/* The object at the top (popped), of the given id, has news from another
** thread. A receiver is kicked (collected for the merge, with mg); it
** goes into the list at index 2 (made on the first), for poll to return,
** when posts of its wait for room (its news may be that room), and so
** does another object of the module; without `found`, it is held for
** the next poll instead (hold). A list, not the stack: there may be more such
** objects than the C stack holds.
** Without `found` (a post's merge, mc_recv_kick_posted_here) a port of a
** bounded pair is held even while no post of its waits: that merge may
** run in a finalizer between a post that found the partner full, and
** asked to be told of room, and the Lua side's writing() (waitroom), and
** the room it is told of comes once. By the next poll the post waits. */
static void notice (lua_State *L, Merge *mg, uint32_t id, int *found) {
  mc_Recv *r = test_recv(L, -1);
  if (r != NULL)
    collect(L, -1, r, mg);
  if (r != NULL ? r->writing || (found == NULL && r->group != NULL
                                 && r->group->capacity > 0)
                : mc_ctx_type(L, -1) != NULL) {
    if (found == NULL) {  /* no list: the next poll returns it */
      hold(L, id);
      lua_pop(L, 1);
      return;
    }
    if (*found == 0) {  /* the list goes below what is on the stack */
      lua_newtable(L);
      lua_insert(L, 2);
    }
    lua_rawseti(L, 2, ++*found);
    return;
  }
  lua_pop(L, 1);
}

/* A poll's handling of the n ids taken from the hub (c->news), of every
** object when `all`, and of the receivers ids[0 .. nids-1] after them,
** on an empty stack (the objects go at 1, notice's list at 2): their
** tokens are queued by the merge. It takes MC_TAKE_MAX messages less
** those that the last merges queued and the run queue still holds (a
** turn that ended early left them), so that the backlog stays in the
** ends' queues: none when those are MC_TAKE_MAX or more, the bound
** then back at `prev`, the one before the hub's ids were taken. */
static void merge_news (lua_State *L, uint64_t prev, size_t n, int all,
                        const uint32_t *ids, size_t nids, int *found) {
  mc_Ctx *c = mc_ctx(L);
  mc_Hub *h = mc_ctx_hub(L);
  Merge mg;
  size_t i;
  long long head = runq_index(L, -1), tail = c->tail;
  long long left = (c->merged_upto < tail ? c->merged_upto : tail) - head;
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_OBJECTS);
  c->lost = 1;  /* until the news are handled: an error cuts them short */
  c->merging = 1;
  mg.c = c;
  mg.n = mg.msgs = mg.ports = 0;
  mg.keep = left <= 0 ? MC_TAKE_MAX
            : left < MC_TAKE_MAX ? MC_TAKE_MAX - (size_t)left : 0;
  if (mg.keep == 0 && prev < h->bound)  /* the last merges' tokens are
                                        ** still queued: nothing new */
    h->bound = prev;
  mg.cut = h->bound;
  mg.top = 0;
  mg.seq = 0;
  mg.mark = ++c->polls != 0 ? c->polls : ++c->polls;
  if (all) {  /* news or tokens were lost: look at everything */
    lua_pushnil(L);
    while (lua_next(L, 1))  /* objects, [list,] k, v */
      notice(L, &mg, (uint32_t)lua_tonumber(L, -2), found);
  }
  for (i = 0; i < n; i++) {
    lua_pushnumber(L, (lua_Number)c->news[i]);
    lua_rawget(L, 1);
    notice(L, &mg, c->news[i], found);
  }
  for (i = 0; i < nids; i++) {
    mc_ctx_push(L, ids[i]);
    notice(L, &mg, ids[i], found);
  }
  merge_queue(L, &mg);
  c->merging = 0;
  c->lost = 0;
}

/* In a thread that SIGINT reaches, a wait is cut into slices of this
** many seconds: the interpreter's handler only sets a hook, which runs
** when Lua code does, so a signal that came just before poll(2) began
** is seen at the end of the slice. */
#define SLICE 0.1

/* The interpreter's SIGINT handler sets a count hook on the main thread
** only. When the wait ran in a coroutine (mc.run() called inside one),
** that hook moves to it, so that Ctrl-C interrupts it there, once: the
** hook clears itself only where it runs, and left on the main thread it
** would raise again as soon as the main thread runs, where no pcall
** around the coroutine could catch it. */
static void pass_interrupt (lua_State *L, lua_State *main) {
  lua_Hook h = lua_gethook(main);
  if (h != NULL && h != lua_gethook(L) && lua_gethookcount(main) == 1
      && (lua_gethookmask(main) & LUA_MASKCOUNT)) {
    lua_sethook(L, h, lua_gethookmask(main), 1);
    lua_sethook(main, NULL, 0, 0);
  }
}

/* relook(): the next poll looks at every object, as after news lost:
** the Lua side's handling of the last poll's news was cut short (an
** error, a hook's), and poll has forgotten which objects had news. */
static int sched_relook (lua_State *L) {
  mc_ctx(L)->lost = 1;
  return 0;
}

/* poll(seconds): waits for news from other threads (seconds < 0: as long
** as it takes; 0: not at all) and kicks the receivers it concerns. It
** may return early (a signal, the end of a slice): the caller looks at
** the clock and its tasks again. Returns the list of the other objects
** with news (Worker handles, and ports whose posts wait for room), or
** nothing when there are none, and raises when the thread is to stop. */
static int sched_poll (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  double s = (double)luaL_checknumber(L, 1);
  int flags, all, found = 0;
  size_t n;
  uint64_t prev;
  if (c->interactive && (s < 0 || s > SLICE))
    s = SLICE;
  if (c->lost || c->nheld > 0)
    s = 0;
  c->merging = 0;  /* an error may have cut the last merge short */
  mc_ctx_run_later(c);  /* news it makes is taken by this wait */
  prev = mc_ctx_hub(L)->bound;
  n = mc_net_wait(mc_ctx_hub(L), s, &c->news, &c->capnews, &flags);
  if (c->main != NULL && c->main != L)
    pass_interrupt(L, c->main);
  if (flags & MC_HUB_STOP)
    return mc_ctx_raise_stop(L);
  all = (flags & MC_HUB_ALL) || c->lost;
  if (c->nheld > 0) {  /* what a post's merge took from the hub */
    if (n + c->nheld > c->capnews) {
      uint32_t *ids = (uint32_t *)realloc(c->news,
                                          (n + c->nheld) * sizeof *ids);
      if (ids != NULL) {
        c->news = ids;
        c->capnews = n + c->nheld;
      }
    }
    if (n + c->nheld <= c->capnews) {
      memcpy(c->news + n, c->held, c->nheld * sizeof *c->held);
      n += c->nheld;
    }
    else  /* out of memory: every object is looked at */
      all = 1;
    c->nheld = 0;
  }
  lua_settop(L, 0);
  merge_news(L, prev, n, all, NULL, 0, &found);
  return found > 0;
}

/* Runs under lua_pcall (MC_CTX_MERGE), for mc_recv_kick_posted_here: a poll
** that does not wait, with the receivers whose ids are at the light
** userdata 1 (as many as integer 2) merged too. */
static int merge_protected (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  const uint32_t *ids = (const uint32_t *)lua_touserdata(L, 1);
  size_t nids = (size_t)lua_tointeger(L, 2);
  uint64_t prev = mc_ctx_hub(L)->bound;
  int flags;
  size_t n = mc_hub_wait(mc_ctx_hub(L), 0, &c->news, &c->capnews, &flags);
  lua_settop(L, 0);
  merge_news(L, prev, n, (flags & MC_HUB_ALL) || c->lost, ids, nids, NULL);
  return 0;
}

/* Whether a message from another thread may be ahead of the n just
** posted here: news waits at hub h, or more than those n arrived since
** its ids were taken (one whose id is still on its way to the hub). The
** arrivals go to *now. */
static int behind_here (mc_Hub *h, size_t n, uint64_t *now) {
  *now = __atomic_load_n(&h->arrivals, __ATOMIC_RELAXED);
  return __atomic_load_n(&h->news, __ATOMIC_ACQUIRE) || *now - h->bound > n;
}

/* After the kicks of a post made here that nothing was ahead of: all
** that arrived since the ids were taken was posted here, and is due, so
** the next post's check counts from `now` (unless a cut is pending). */
static void caught_up (mc_Hub *h, int behind, uint64_t now) {
  if (!behind && h->bound == h->taken)
    h->bound = h->taken = now;
}

void mc_recv_kick_posted_here (lua_State *L, const uint32_t *ids,
                               size_t n) {
  mc_Ctx *c = mc_ctx(L);
  mc_Hub *h = mc_ctx_hub(L);
  uint64_t now;
  size_t i;
  int behind = behind_here(h, n, &now);
  if (n > 0 && !c->merging && behind && lua_checkstack(L, 3)) {
    lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_MERGE);
    lua_pushlightuserdata(L, (void *)ids);
    lua_pushinteger(L, (lua_Integer)n);
    if (lua_pcall(L, 2, 0, 0) == 0)
      return;
    lua_pop(L, 1);  /* out of memory: the n are kicked (in no particular
                    ** order, nothing lost), and the next poll looks at
                    ** every object (lost), soon (a host loop's wait ends) */
    c->merging = 0;
    c->lost = 1;
    mc_ctx_wake(L);
  }
  for (i = 0; i < n; i++) {
    mc_Recv *r = mc_recv_push(L, ids[i]);
    if (r != NULL)
      mc_recv_kick_posted(L, -1, r);
    lua_pop(L, 1);
  }
  caught_up(h, behind, now);
}

void mc_recv_kick_posted_port (lua_State *L, uint32_t id) {
  mc_Hub *h = mc_ctx_hub(L);
  uint64_t now;
  int behind = behind_here(h, 1, &now);
  mc_Recv *r = mc_recv_push(L, id);
  if (r != NULL) {
    if (behind && deliverable(r))  /* the next poll's merge orders it */
      defer(L, -1, r);
    else
      mc_recv_kick_posted(L, -1, r);
  }
  lua_pop(L, 1);
  caught_up(h, behind, now);
}

/* Where the partner of a receiver lives: 1 on another thread (for a
** BroadcastChannel, any thread may post), 2 in transit (then it depends
** on where that is), 0 here or nowhere. */
static int partner_abroad (lua_State *L, mc_Recv *r) {
  int owner;
  if (r->group == NULL || !mc_group_entangled(r->group))
    return 0;
  if (r->group->nends == 1)
    return 1;
  owner = mc_group_owner(r->group, mc_group_partner(r->group, r->end),
                         mc_ctx_hub(L));
  return owner == MC_OWNER_OTHER ? 1 : owner == MC_OWNER_NONE ? 2 : 0;
}

/* Whether a receiver waits for another thread (and is not unref'd), as
** partner_abroad. */
static int waits_abroad (lua_State *L, mc_Recv *r) {
  if (r->unref || !(r->listening || r->waiting || r->writing))
    return 0;
  return partner_abroad(L, r);
}

/* Adds to reach what the messages queued at this state's receivers carry
** (directly or inside other ports in transit). Returns 0 when memory ran
** out. */
static int reach_here (lua_State *L, mc_Reach *reach) {
  int ok = 1;
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_OBJECTS);
  lua_pushnil(L);
  while (ok && lua_next(L, -2)) {  /* objects, id, obj */
    mc_Recv *r = test_recv(L, -1);
    if (r != NULL && r->group != NULL)
      ok = mc_reach_from(reach, r->group, r->end);
    lua_pop(L, 1);
  }
  lua_pop(L, ok ? 1 : 2);
  return ok;
}

/* Whether the partner of every receiver pinned here that waits for one in
** transit is carried by messages queued in this state (directly or inside
** other ports in transit): then only this state's tasks could deliver it.
** When memory runs out, the answer is no (busy). */
static int held_here (lua_State *L) {
  mc_Reach reach;
  int ok;
  mc_reach_init(&reach);
  ok = reach_here(L, &reach);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_PINNED);
  lua_pushnil(L);
  while (ok && lua_next(L, -2)) {  /* pinned, id, obj or false */
    mc_Recv *r = (mc_Recv *)lua_touserdata(L, -1);
    int w = r != NULL ? waits_abroad(L, r) : 0;  /* again: it may have
                                                 ** arrived somewhere */
    lua_pop(L, 1);
    if (w == 1 || (w == 2 && !mc_reach_has(&reach, r->group,
                                            mc_group_partner(r->group,
                                                             r->end))))
      ok = 0;
  }
  lua_pop(L, ok ? 1 : 2);
  mc_reach_free(&reach);
  /* kicked after that look, as busy does: a partner that closed since
  ** busy's look has its last messages and close queued now */
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_PINNED);
  lua_pushnil(L);
  while (lua_next(L, -2)) {  /* pinned, id, obj or false */
    if (lua_toboolean(L, -1))
      mc_recv_kick(L, -1, (mc_Recv *)lua_touserdata(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return ok;
}

/* busy(): whether a receiver here waits for another thread that can still
** post to it (and is not unref'd). It first kicks every such receiver:
** what reached one before its news did is queued now, so that a port
** whose partner has closed is not taken for idle with its last messages
** and its close event still to dispatch. A receiver that can dispatch
** nothing more (stuck) is let go: only code that holds it could start it.
** Tokens lost to an error (`lost`) are work too: the next poll queues
** them. */
static int sched_busy (lua_State *L) {
  int busy = mc_ctx(L)->lost != 0, transit = 0;  /* tokens to queue again */
  mc_ctx_trim_ids(L);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_PINNED);
  lua_pushnil(L);
  while (lua_next(L, -2)) {  /* pinned, id, obj or false */
    mc_Recv *r = (mc_Recv *)lua_touserdata(L, -1);
    int w;
    if (r == NULL) {
      lua_pop(L, 1);
      continue;
    }
    /* before the kick: a partner that closes after this look has its
    ** news told to the hub; one that closed before it has its last
    ** messages and close queued by the kick */
    w = waits_abroad(L, r);
    mc_recv_kick(L, -1, r);
    lua_pop(L, 1);
    if (let_go(r)) {
      lua_pushvalue(L, -1);
      lua_pushboolean(L, 0);
      lua_rawset(L, -4);  /* an existing field, while traversing: allowed */
      continue;
    }
    busy |= w == 1;
    transit |= w == 2;
  }
  lua_pop(L, 1);
  lua_pushboolean(L, busy || (transit && !held_here(L)));
  return 1;
}

/* dispatching(obj): whether receiver obj can dispatch and holds a
** message. The scheduler then takes what it holds with nothing more
** from the program, but a part at a time, the oldest of all ports first
** (see "Global post order"): a turn may take none of it. */
static int sched_dispatching (lua_State *L) {
  mc_Recv *r = check_recv(L, 1);
  size_t count = 0, bytes;
  if (r->group != NULL && deliverable(r))  /* a count, not a look */
    mc_group_load(r->group, r->end, &count, &bytes);
  lua_pushboolean(L, count > 0);
  return 1;
}

/* abroad(obj): whether another thread could still post to receiver obj
** (or take from its partner): what a blocking call outside any task waits
** for there, whether obj is unref'd or not. A partner in transit counts
** unless the messages queued in this state carry it (only this state's
** tasks could deliver it then), as for busy. */
static int sched_abroad (lua_State *L) {
  mc_Recv *r = check_recv(L, 1);
  int w = partner_abroad(L, r), yes = w == 1;
  if (w == 2) {
    mc_Reach reach;
    mc_reach_init(&reach);
    yes = !reach_here(L, &reach)
          || !mc_reach_has(&reach, r->group,
                           mc_group_partner(r->group, r->end));
    mc_reach_free(&reach);
  }
  lua_pushboolean(L, yes);
  return 1;
}

/* The run queue at idx emptied in place: its tail at [0] and its head,
** the last token taken, at [-1] both 0. The stores allocate nothing:
** those keys exist, or have their room in a table runq_reset has just
** made; no slot is known to exist after the tail any more (a new table
** has none). */
static void runq_empty (lua_State *L, int idx) {
  mc_Ctx *c = mc_ctx(L);
  idx = mc_absindex(L, idx);
  lua_pushinteger(L, 0);
  lua_rawseti(L, idx, 0);
  lua_pushinteger(L, 0);
  lua_rawseti(L, idx, -1);
  c->merged_upto = 0;
  c->tail = c->room = 0;
}

/* runq_reset([fresh]): every token was taken: empties the run queue and
** returns it; a new one when it grew large (an emptied table keeps its
** size) or when `fresh` (a scheduler starting over, which drops what
** the old queue held). A finalizer that making the new table ran may
** queue a token: then, unless `fresh`, the queue is returned as it is. */
static int sched_runq_reset (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  long long tail = c->tail;
  int fresh = lua_toboolean(L, 1);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_RUNQ);
  if (fresh || tail > 1024) {
    lua_createtable(L, 0, 2);  /* its keys made before it is the queue */
    if (!fresh && c->tail != tail)  /* a finalizer the new table ran
                                    ** queued a token: kept */
      lua_pop(L, 1);
    else {
      runq_empty(L, -1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, lua_upvalueindex(1), MC_CTX_RUNQ);
    }
    return 1;
  }
  runq_empty(L, -1);
  return 1;
}

/* runq(): the run queue, as C holds it (runq_reset may have replaced
** it). */
static int sched_runq (lua_State *L) {
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_RUNQ);
  return 1;
}

/* runq_front(from): the tokens queued after index `from` (what the due
** timers woke at the start of a turn after one that ended early: see
** scheduler.lua's cut_at) go before the head, in order, as many as the
** slots taken before the head hold; the others stay last. The copies
** come first: running out of memory there leaves copies where nothing
** reads them. The stores after them allocate nothing (their keys exist),
** and no hook runs in a C function: the move happens whole or not at
** all. */
static int sched_runq_front (lua_State *L) {
  lua_Integer from = luaL_checkinteger(L, 1), head, tail, n, m, i;
  lua_settop(L, 1);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_RUNQ);  /* 2 */
  lua_rawgeti(L, 2, -1);
  head = lua_tointeger(L, -1);
  lua_pop(L, 1);
  tail = mc_ctx(L)->tail;
  if (from <= head || from >= tail || head <= 0)  /* nothing to move, or
                                                   ** not a token's index */
    return 0;
  n = tail - from;
  m = n < head ? n : head;
  for (i = 1; i <= m; i++) {
    lua_rawgeti(L, 2, (int)(from + i));
    lua_rawseti(L, 2, (int)(head - m + i));
  }
  for (i = from + 1; i + m <= tail; i++) {  /* the others move down */
    lua_rawgeti(L, 2, (int)(i + m));
    lua_rawseti(L, 2, (int)i);
  }
  for (i = tail - m + 1; i <= tail; i++) {
    lua_pushnil(L);
    lua_rawseti(L, 2, (int)i);
  }
  lua_pushinteger(L, head - m);
  lua_rawseti(L, 2, -1);
  lua_pushinteger(L, tail - m);
  lua_rawseti(L, 2, 0);
  mc_ctx(L)->tail = mc_ctx(L)->room = tail - m;  /* the m slots after it
                                                 ** are empty now */
  return 0;
}

/* enqueue(token [, t1, k1, v1, ...]): the Lua side's tokens join the run
** queue the same way: {co, n, values...}, a task to resume with n values,
** or {event_mt, target, U, ev}, an event to dispatch at target. The token
** is queued or, out of memory, the call raises with nothing queued: no
** poll could queue it again. Then t1[k1] = v1, and so on, raw, in the
** same call, so that a hook's error finds all done or none (a new key may
** allocate: out of memory, that raises with the token queued). */
static int sched_enqueue (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  int ok, i, n = lua_gettop(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, n % 3 == 1, n, "table, key and value expected");
  for (i = 2; i <= n; i += 3) {
    luaL_checktype(L, i, LUA_TTABLE);
    luaL_argcheck(L, !lua_isnil(L, i + 1), i + 1, "key expected");
  }
  lua_rawgeti(L, 1, 1);
  lua_rawgeti(L, 1, 2);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_EVENT_MT);
  lua_rawgeti(L, 1, 3);
  lua_rawgeti(L, 1, 4);  /* [1], [2], event_mt, [3], [4] */
  ok = (lua_type(L, -5) == LUA_TTHREAD && lua_type(L, -4) == LUA_TNUMBER)
       || (lua_rawequal(L, -5, -3) && !lua_isnil(L, -3)
           && lua_istable(L, -2) && lua_istable(L, -1));
  lua_pop(L, 5);
  luaL_argcheck(L, ok, 1, "{coroutine, count, ...} expected");
  mc_ctx_reserve(L, 1);
  c->noalloc = 1;
  mc_ctx_enqueue(L, 1, 1);
  c->noalloc = 0;
  for (i = 2; i <= n; i += 3) {
    lua_pushvalue(L, i + 1);
    lua_pushvalue(L, i + 2);
    lua_rawset(L, i);
  }
  return 0;
}

/* on_wake(fn): fn (or nil) is called when work comes while no scheduler
** loop runs (mc_ctx_wake): the cqueues adapter starts its task again. */
static int sched_on_wake (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  if (!lua_isnil(L, 1))
    luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawseti(L, lua_upvalueindex(1), MC_CTX_WAKER);
  c->waker = !lua_isnil(L, 1);
  return 0;
}

/* raise_at(co, message): makes the yield that suspended coroutine co raise
** message when co is next resumed, so that the error comes out of that
** yield (a pcall around it catches it). A hook on co does it: the yield's
** return, or else the first instruction after it, raises; the hook co had
** (a worker's count hook) is put back first. */
#define YIELD_ERRORS "messagechannel.yielderrors"

typedef struct SavedHook {
  lua_Hook hook;
  int mask, count;
} SavedHook;

/* Takes the record raise_at left for coroutine co, whose thread object is
** at the top of L's stack (popped): puts co's saved hook back, pushes the
** message and returns 1; returns 0, pushing nothing, when there is none. */
static int take_raise (lua_State *L, lua_State *co) {
  SavedHook *s;
  lua_getfield(L, LUA_REGISTRYINDEX, YIELD_ERRORS);  /* co, errors */
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, -2);
    lua_rawget(L, -2);  /* co, errors, {saved, message} */
    if (lua_istable(L, -1)) {
      lua_pushvalue(L, -3);
      lua_pushnil(L);
      lua_rawset(L, -4);
      lua_rawgeti(L, -1, 1);
      s = (SavedHook *)lua_touserdata(L, -1);
      lua_sethook(co, s->hook, s->mask, s->count);
      mc_ctx_rearm_stop(L, co);
      lua_rawgeti(L, -2, 2);
      lua_replace(L, -5);
      lua_pop(L, 3);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return 0;
}

/* When L is not the coroutine raise_at marked (LuaJIT's hooks are global),
** nothing: that coroutine is resumed next. */
static void raise_hook (lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_pushthread(L);
  if (take_raise(L, L))
    lua_error(L);
}

static int sched_raise_at (lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  SavedHook *s;
  luaL_argcheck(L, co != NULL, 1, "coroutine expected");
  luaL_checkstring(L, 2);
  lua_getfield(L, LUA_REGISTRYINDEX, YIELD_ERRORS);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);  /* weak keys: a coroutine may be dropped */
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, YIELD_ERRORS);
  }
  lua_pushvalue(L, 1);
  lua_createtable(L, 2, 0);
  s = (SavedHook *)mc_newuserdata(L, sizeof(SavedHook), 0);
  s->hook = lua_gethook(co);
  s->mask = lua_gethookmask(co);
  s->count = lua_gethookcount(co);
  if (s->hook == raise_hook)  /* yielded again before the hook ran */
    s->hook = NULL, s->mask = s->count = 0;
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, 2);
  lua_rawset(L, -3);
  lua_sethook(co, raise_hook, LUA_MASKRET | LUA_MASKCOUNT, 1);
  return 0;
}

/* raise_undo(co): when co's hook has not run (on LuaJIT, whose hooks are
** global, a coroutine may end without another instruction), takes it off
** and puts the saved hook back; returns whether it had to. */
static int sched_raise_undo (lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argcheck(L, co != NULL, 1, "coroutine expected");
  lua_pushvalue(L, 1);
  lua_pushboolean(L, take_raise(L, co));
  return 1;
}

/* pollfd(): the descriptor a host loop waits on (API.md 10). Arguments
** are ignored, so that mc:pollfd() works. */
static int sched_pollfd (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  c->exposed = 1;
  lua_pushinteger(L, mc_hub_expose(mc_ctx_hub(L)));
  return 1;
}

/* news(): whether news from other threads waits for the next poll. */
static int sched_news (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  lua_pushboolean(L, c->lost || c->nheld > 0
                     || mc_hub_pending(mc_ctx_hub(L)));
  return 1;
}

/* news_queued(): how many object ids wait in this state's hub (for the
** specs: they stay few however long a state takes without waiting). */
static int sched_news_queued (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mc_hub_queued(mc_ctx_hub(L)));
  return 1;
}

/* wake(): a scheduler loop ended with work left, or with timers changed:
** a host loop waiting on the descriptor steps to learn it. */
static int sched_wake (lua_State *L) {
  mc_ctx_wake(L);
  return 0;
}

/* hosted(): whether a host loop may be driving the scheduler (the
** descriptor was asked for, or an adapter set a waker). */
static int sched_hosted (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  lua_pushboolean(L, c->exposed || c->waker);
  return 1;
}

/* spin([microseconds]): how long a wait for another thread watches for
** its news before it sleeps, in every thread (mc.spin). Returns the old
** value; sets it when given. */
static int sched_spin (lua_State *L) {
  long old;
  if (lua_isnoneornil(L, 1))
    old = mc_hub_spin(-1);
  else {
    lua_Number us = luaL_checknumber(L, 1);
    luaL_argcheck(L, us >= 0 && us <= 1e6, 1,
                  "microseconds from 0 to 1000000 expected");
    old = mc_hub_spin((long)(us * 1e3));
  }
  if (old % 1000 == 0)
    lua_pushinteger(L, (lua_Integer)(old / 1000));
  else
    lua_pushnumber(L, (lua_Number)old / 1e3);
  return 1;
}

/* looping(): whether a scheduler loop runs (enter); while one runs, local
** work needs no wake-up of the descriptor. */
static int sched_looping (lua_State *L) {
  lua_pushboolean(L, mc_ctx(L)->looping);
  return 1;
}

/* enter(f, ...): runs f(...) as the state's one scheduler loop, protected:
** returns true and f's results, or false and its error. The loop's mark
** is set and cleared here, where no hook runs, so an error at any
** instruction of the loop's Lua code (a hook's: an instruction limit,
** Ctrl-C) cannot leave it set; nor can running out of memory on the way
** into f. A run queue that the error left drained is emptied, so that the
** next token wakes a host loop again (mc_ctx_enqueue): its keys exist. */
static int sched_enter (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  int st;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (c->looping)
    return luaL_error(L, "the scheduler is running");
  c->looping = 1;
  st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  c->looping = 0;
  luaL_checkstack(L, 3, NULL);
  if (c->tail > 0 && runq_index(L, -1) == c->tail) {
    lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_RUNQ);
    runq_empty(L, -1);
    lua_pop(L, 1);
  }
  lua_pushboolean(L, st == 0);
  lua_insert(L, 1);
  return lua_gettop(L);
}

static int sched_now (lua_State *L) {
  mc_ctx_check_stop(L);
  lua_pushnumber(L, (lua_Number)mc_hub_now());
  return 1;
}

void mc_sched_open (lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"take", sched_take},
    {"arrival", sched_arrival},
    {"deliver", sched_deliver},
#if MC_YIELDABLE_CALL
    {"dispatch_on", sched_dispatch_on},
#endif
    {"room", sched_room},
    {"event_mt", sched_event_mt},
    {"changed", sched_changed},
    {"commit", sched_commit},
    {"mark_call", sched_mark_call},
    {"received", sched_received},
    {"resume_task", sched_resume_task},
    {"uservalue", sched_uservalue},
    {"poll", sched_poll},
    {"busy", sched_busy},
    {"abroad", sched_abroad},
    {"dispatching", sched_dispatching},
    {"runq", sched_runq},
    {"runq_reset", sched_runq_reset},
    {"runq_front", sched_runq_front},
    {"enqueue", sched_enqueue},
    {"now", sched_now},
    {"pollfd", sched_pollfd},
    {"looping", sched_looping},
    {"enter", sched_enter},
    {"q_push", sched_q_push},
    {"q_take_out", sched_q_take_out},
    {"close_waiter", sched_close_waiter},
    {"relook", sched_relook},
    {"raise_at", sched_raise_at},
    {"raise_undo", sched_raise_undo},
    {"on_wake", sched_on_wake},
    {"news", sched_news},
    {"news_queued", sched_news_queued},
    {"wake", sched_wake},
    {"hosted", sched_hosted},
    {"spin", sched_spin},
    {NULL, NULL}
  };
  int i;
  mc_ctx_setfuncs(L, funcs);
  luaL_newmetatable(L, UNTIED_MT);  /* made whole here, where running out
                                    ** of memory fails the require */
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_pop(L, 1);
  lua_rawgeti(L, -1, MC_CTX_EVENT_MT);  /* module, ctx, mt */
  if (lua_isnil(L, -1)) {
    lua_newtable(L);
    lua_rawseti(L, -3, MC_CTX_EVENT_MT);
  }
  lua_pop(L, 1);
  for (i = 0; keys[i] != NULL; i++) {
    lua_pushstring(L, keys[i]);
    lua_rawseti(L, -2, MC_CTX_KEYS + i);
  }
  lua_pushcclosure(L, merge_protected, mc_ctx_upvalues(L, -1));
  lua_rawseti(L, -2, MC_CTX_MERGE);
  lua_newtable(L);
  for (i = 0; events[i] != NULL; i++) {
    lua_pushstring(L, events[i]);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -4, MC_CTX_EVENTS + i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -3, "receiver_events");
}
