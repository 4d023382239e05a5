/*
** port.c: the MessagePort type and MessageChannel's pair of ports.
**
** A port is a receiver (sched.c): it owns one end of a group of two
** (group.c), where the messages posted by its partner wait, encoded. Its
** listeners and handler fields are the Lua side's (eventtarget.lua); its
** mc_Type below is how a transfer list moves it: the end travels in the
** message, and a new port takes it over in the receiving state.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "compat.h"
#include "mc.h"

#define PORT_MT "messagechannel.MessagePort"

static const mc_Type port_type;

static mc_Recv *check_port (lua_State *L, int idx) {
  return (mc_Recv *)mc_ctx_checkudata(L, idx, &port_type);
}

/* Disentangles the pair of the port at idx; the partner's close comes
** first. Neither port holds the other alive any more. */
static int disentangle (lua_State *L, int idx, mc_Recv *p) {
  uint32_t local[2];
  uint32_t partner;
  if (p->group == NULL
      || !mc_group_close(p->group, p->end, mc_ctx_hub(L), local))
    return 0;
  if (p->group->remote)  /* its link writes on: see mc.step */
    mc_ctx(L)->drains = 2;
  idx = mc_absindex(L, idx);
  partner = local[mc_group_partner(p->group, p->end)];
  if (partner != 0) {
    mc_Recv *q = mc_recv_push(L, partner);
    if (q != NULL) {
      mc_recv_kick_safe(L, -1, q);
      mc_recv_unkeep(L, -1);
    }
    lua_pop(L, 1);
  }
  mc_recv_unkeep(L, idx);
  return 1;
}

/* The kicks that announce the close use slots reserved first: close()
** does not raise once the pair is closed. */
static int port_close (lua_State *L) {
  mc_Recv *p = check_port(L, 1);
  if (p->lent == MC_LENT_MOVED || p->lent == MC_LENT_CLOSED) {
    p->lent = MC_LENT_CLOSED;  /* see port_keep */
    return 0;
  }
  mc_ctx_reserve(L, 2);
  if (disentangle(L, 1, p))
    mc_recv_kick_safe(L, 1, p);
  return 0;
}

/* Allocates nothing Lua-side when the collector calls it, so it cannot
** fail half-way: the pair is closed with every owner told through its hub
** (a partner here too, whose close the next poll queues), and what waits
** at this end goes. */
static int port__gc (lua_State *L) {
  mc_port_discard(L, 1);
  return 0;
}

void mc_port_discard (lua_State *L, int idx) {
  mc_Recv *p = (mc_Recv *)mc_testudata(L, idx, PORT_MT);
  if (p == NULL)
    return;
  if (p->group != NULL && p->group->remote)  /* see disentangle */
    mc_ctx(L)->drains = 2;
  if (p->group != NULL)
    mc_recv_release(L, p, 1);
  mc_recv_finalized(L, idx, p);
}

static int port__tostring (lua_State *L) {
  mc_Recv *p = check_port(L, 1);
  if (p->group == NULL || !mc_group_entangled(p->group))
    lua_pushliteral(L, "MessagePort (closed)");
  else
    lua_pushfstring(L, "MessagePort (%p)", (void *)p);
  return 1;
}

/*
** {======================================================
** Posting, and waiting for room at a bounded partner
** =======================================================
*/

#define HELD_MT "messagechannel.held"

/* A post that waits for room: its message, and as uservalue the transfer
** list it lent (or nil). Collected while it still holds the message, the
** list's objects are their own again. */
typedef struct Held {
  mc_Msg *m;
  int list;  /* its uservalue holds the list (else it has none) */
} Held;

/* Pushes the transfer list of the held post at idx, or nil. */
static void push_list (lua_State *L, int idx) {
  if (((Held *)lua_touserdata(L, idx))->list)
    mc_getuservalue(L, idx);
  else
    lua_pushnil(L);
}

/* The ports of the list at idx were lent while the post waited, and
** their tokens went by without a delivery (sched.c skips a lent
** receiver): given back, they are kicked again. Allocates nothing. */
static void kick_list (lua_State *L, int list) {
  lua_Integer i, n;
  if (!lua_istable(L, list))
    return;
  list = mc_absindex(L, list);
  n = (lua_Integer)mc_rawlen(L, list);
  for (i = 1; i <= n; i++) {
    mc_Recv *q;
    lua_rawgeti(L, list, (int)i);
    q = (mc_Recv *)mc_testudata(L, -1, PORT_MT);
    if (q != NULL)
      mc_recv_kick_safe(L, -1, q);
    lua_pop(L, 1);
  }
}

/* Gives up the post held at idx, if it still holds one: nothing is sent,
** the objects of its list are their own again. */
static void held_cancel (lua_State *L, int idx) {
  Held *h = (Held *)lua_touserdata(L, idx);
  if (h->m != NULL) {
    mc_Msg *m = h->m;
    h->m = NULL;
    push_list(L, idx);
    mc_message_unlend(L, -1, m);
    kick_list(L, -1);
    lua_pop(L, 1);
  }
}

static int held__gc (lua_State *L) {
  held_cancel(L, 1);
  return 0;
}

/* Queues m (its transfer list at `list`) at p's partner. Returns 1 when
** queued (the list's objects are detached), MC_FULL (m is still the
** caller's), or 0 when the pair is closed (m is given back and freed:
** nothing was sent). With `writer`, a full partner will tell p's state
** when it has room. The caller reserved a run-queue slot first (the kick
** of a partner here must not fail). */
static int post_to (lua_State *L, mc_Recv *p, mc_Msg *m, int list,
                    int writer) {
  uint32_t local = 0;
  int r = 0;
  if (p->group != NULL && p->group->remote) {
    int sent = mc_net_send(p->group, mc_group_partner(p->group, p->end), m,
                           mc_ctx_hub(L));
    if (sent != 2)  /* its link writes it later: mc.step says so until
                    ** it is written (remote.c's net_watch) */
      mc_ctx(L)->drains = 2;
    if (sent) {
      mc_message_commit(L, list);
      mc_msg_free(m);  /* its frame has copies of its bytes */
      return 1;
    }
  }
  if (p->group != NULL)
    r = mc_group_post(p->group, mc_group_partner(p->group, p->end), m,
                      mc_ctx_hub(L), &local, writer ? p->id : 0);
  if (r == MC_FULL)
    return r;
  if (r != 1) {
    mc_message_unlend(L, list, m);
    if (r < 0)
      luaL_error(L, "not enough memory");
    return 0;
  }
  mc_message_commit(L, list);
  if (local != 0)  /* behind what other threads posted before */
    mc_recv_kick_posted_port(L, local);
  else if (lua_istable(L, list) && mc_rawlen(L, list) > 0)
    mc_group_sweep(p->group, mc_group_partner(p->group, p->end));
  return 1;
}

/* post_to; when the post left output on a remote link, a host loop
** that waits is woken to step (the post may be made outside any step,
** from a host loop's callback), once m is queued: what the waker posts
** comes after it. */
static int post (lua_State *L, mc_Recv *p, mc_Msg *m, int list, int writer) {
  int before = mc_ctx(L)->drains, r = post_to(L, p, m, list, writer);
  if (before != 2 && mc_ctx(L)->drains == 2)
    mc_ctx_wake(L);
  return r;
}

static int push_result (lua_State *L, int r, const char *why) {
  lua_pushboolean(L, r == 1);
  if (r == 1)
    return 1;
  lua_pushstring(L, why);
  return 2;
}

/* The timeout of the options table at idx (a transfer array has none):
** seconds, or -1 for none. */
static double get_timeout (lua_State *L, int idx) {
  double t = -1;
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "timeout");
    if (!lua_isnil(L, -1)) {
      t = lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
      if (!(t >= 0))
        luaL_argerror(L, idx, "'timeout' must be a non-negative number");
      if (t == HUGE_VAL)  /* math.huge: the same as none */
        t = -1;
    }
    lua_pop(L, 1);
  }
  return t;
}

/* A remote port's message over its maxMessageSize raises, having sent
** nothing (the list at 5 is given back). */
static void check_size (lua_State *L, const mc_Group *g, mc_Msg *m) {
  size_t nx, size = mc_wire_size(m);
  char what[96];
  mc_msg_xfer(m, &nx);
  if (size <= g->maxsize && nx <= MC_WIRE_MAXBUFFERS)
    return;
  if (size <= g->maxsize)
    snprintf(what, sizeof what, "has %zu Buffers, over the %d a link "
             "carries", nx, MC_WIRE_MAXBUFFERS);
  else
    snprintf(what, sizeof what, "is %zu bytes, over maxMessageSize (%zu)",
             size, g->maxsize);
  mc_message_unlend(L, 5, m);
  luaL_error(L, "DataCloneError: the message %s", what);
}

#if MC_YIELD_THEN
/* A postMessage waiting for room was resumed, stack: port, message,
** transfer, held, list, true, w, the value it yields, and what the resume
** passed. The wait is over only when the scheduler ended it (w.done): if
** any other code resumed the task, it yields again; else it returns the
** results the scheduler left in w, as waitroom does. Nothing here calls
** Lua or allocates: the fields are w's own strings. */
static MC_KFUNCTION(post_resumed) {
  MC_KUNUSED;
  lua_settop(L, 8);
  lua_pushliteral(L, "done");
  lua_rawget(L, 7);
  if (!lua_toboolean(L, 9)) {
    lua_settop(L, 8);
    lua_pushvalue(L, 8);
    return mc_yield_then(L, 1, post_resumed);
  }
  lua_pushliteral(L, "r");
  lua_rawget(L, 7);
  if (lua_toboolean(L, 10)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushliteral(L, "why");
  lua_rawget(L, 7);
  if (!lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "timeout");
  }
  return 2;
}
#endif

/*
** postMessage(message [, transfer | {transfer = array, timeout = s}]).
** At a full bounded partner it waits: the scheduler's waitroom(port,
** held, timeout, yieldable) (yieldable: whether this call can yield, nil
** when Lua does not tell) either runs the loop until done (outside a
** task) and returns false and the results, or returns true, its wait w
** and a value for this function to yield (inside a task). The scheduler
** resumes the task once the post is done, closed or timed out: with the
** results, which post_resumed takes from w where Lua has continuations.
*/
static int port_postMessage (lua_State *L) {
  mc_Recv *p = check_port(L, 1);
  double timeout;
  Held *h = NULL;
  mc_Msg *m;
  int r, yieldable;
  lua_settop(L, 3);
  timeout = get_timeout(L, 3);
  mc_ctx_check_stop(L);
  mc_ctx_reserve(L, 1);  /* so that nothing after the post can fail */
  if (p->group != NULL && p->group->capacity > 0) {  /* made before the
                                                     ** message: it may
                                                     ** fail */
    h = (Held *)mc_newuserdata(L, sizeof(Held), 1);
    h->m = NULL;
    h->list = 0;
    luaL_getmetatable(L, HELD_MT);
    lua_setmetatable(L, -2);
  }
  else
    lua_pushnil(L);
  m = mc_message_make(L, 2, 3, p->group);
  /* port, message, transfer, held or nil, list */
  if (p->group != NULL && p->group->maxsize > 0)
    check_size(L, p->group, m);
  if (h != NULL && p->writing > 0 && mc_group_entangled(p->group))
    r = MC_FULL;  /* posts wait for room here: this one goes after them */
  else
    r = post(L, p, m, 5, h != NULL && timeout != 0);
  if (r != MC_FULL)
    return push_result(L, r, "closed");
  if (timeout == 0) {
    mc_message_unlend(L, 5, m);
    return push_result(L, 0, "timeout");
  }
  h->m = m;  /* it holds the message (and the list) until done */
  if (lua_istable(L, 5)) {
    lua_pushvalue(L, 5);
    mc_setuservalue(L, 4);
    h->list = 1;
  }
  yieldable = mc_isyieldable(L);  /* before the pcall, which is not */
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_WAITROOM);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 4);
  if (timeout < 0)
    lua_pushnil(L);
  else
    lua_pushnumber(L, (lua_Number)timeout);
  if (yieldable < 0)
    lua_pushnil(L);
  else
    lua_pushboolean(L, yieldable);
  if (lua_pcall(L, 4, LUA_MULTRET, 0) != 0) {  /* ..., yield?, results */
    held_cancel(L, 4);  /* out of memory: nothing is sent after all */
    lua_error(L);
  }
  if (lua_toboolean(L, 6)) {
    lua_settop(L, 8);  /* ..., true, w, the value to yield */
    lua_pushvalue(L, 8);  /* kept for post_resumed */
    return mc_yield_then(L, 1, post_resumed);
  }
  return lua_gettop(L) - 6;
}

static int port_post_owned (lua_State *L);

/* waits_for_room(co): whether coroutine co is suspended in a postMessage
** that waits for room. */
static int port_waits_for_room (lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  lua_Debug ar;
  int in = 0;
  luaL_argcheck(L, co != NULL, 1, "coroutine expected");
  if (lua_status(co) == LUA_YIELD
      && lua_getstack(co, 0, &ar)) {
    lua_CFunction f;
    lua_getinfo(co, "f", &ar);
    f = lua_tocfunction(co, -1);
    in = f == port_postMessage || f == port_post_owned;
    lua_pop(co, 1);
  }
  lua_pushboolean(L, in);
  return 1;
}

/* postMessage of an object that owns a port, as a Worker does: its state,
** a table at the key that is upvalue 3, holds the port at "port" (upvalue
** 4 is the object's class name). It is the port's postMessage, called by
** the user's code directly, so that its errors name the caller's line as
** the port's own do (a method written in Lua that tail-calls it would be
** the line named on Lua 5.1 to 5.4), and it may wait for room as the
** port's does. */
static int port_post_owned (lua_State *L) {
  int found = 0, none = lua_isnone(L, 1);  /* before it is made nil */
  lua_settop(L, 3);  /* self, message, transfer */
  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_pushvalue(L, lua_upvalueindex(3));
    lua_rawget(L, 1);
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_pushliteral(L, "port");
      lua_rawget(L, -2);
      found = mc_ctx_testudata(L, -1, &port_type) != NULL;
    }
  }
  if (!found)  /* self is still at 1: its name only now */
    luaL_argerror(L, 1, lua_pushfstring(L, "%s expected, got %s",
                                        lua_tostring(L, lua_upvalueindex(4)),
                                        none ? "no value"
                                             : mc_ctx_typename(L, 1)));
  lua_replace(L, 1);
  lua_settop(L, 3);  /* port, message, transfer */
  return port_postMessage(L);
}

/* owner_post(key, name): the postMessage of objects of class `name`, each
** posting through the port at field "port" of its state, the table at
** object[key]. */
static int port_owner_post (lua_State *L) {
  luaL_checkany(L, 1);
  luaL_checkstring(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, port_post_owned, 4);
  return 1;
}

/* post_held(port, held, w [, tok]): tries the held post of writer w
** again. Returns true when queued, false, "closed" when the pair is
** closed (nothing sent), or nothing while the partner is still full (its
** state will be told). In the first two cases the wait ends here, whole:
** w is done, its timer dead, out of the port's writers (mc_writer_sent),
** w.r and w.why hold the results, and tok, the wake of the task that
** waits suspended in the post ({co, 0, false, false}, made by the
** caller), is queued with them: a hook may raise at any instruction of
** the caller's Lua code, and the task must not be left waiting for a
** wake once its wait has ended. Nothing allocates after the post: the
** fields exist, and the run-queue slots are made first. */
static int port_post_held (lua_State *L) {
  mc_Recv *p = check_port(L, 1);
  Held *h = (Held *)luaL_checkudata(L, 2, HELD_MT);
  mc_Msg *m = h->m;
  int r = 0, tok;
  luaL_checktype(L, 3, LUA_TTABLE);
  tok = lua_toboolean(L, 4);  /* nil or false: none */
  if (tok)
    luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 4);
  lua_insert(L, 2);  /* port, tok, held, w */
  lua_insert(L, 2);  /* port, w, tok, held */
  mc_ctx_reserve(L, 2);
  if (m != NULL) {
    push_list(L, 4);  /* port, w, tok, held, list */
    h->m = NULL;  /* the post gives it away, or back */
    r = post(L, p, m, 5, 1);
    if (r == MC_FULL) {
      h->m = m;
      return 0;
    }
    if (r == 0)
      kick_list(L, 5);
  }
  mc_writer_sent(L, 1, 2, p);
  lua_pushboolean(L, r == 1);
  lua_setfield(L, 2, "r");
  if (r == 1)
    lua_pushboolean(L, 0);
  else
    lua_pushliteral(L, "closed");
  lua_setfield(L, 2, "why");
  if (tok) {
    mc_Ctx *c = mc_ctx(L);
    lua_pushinteger(L, r == 1 ? 1 : 2);
    lua_rawseti(L, 3, 2);
    lua_pushboolean(L, r == 1);
    lua_rawseti(L, 3, 3);
    lua_getfield(L, 2, "why");
    lua_rawseti(L, 3, 4);
    c->noalloc = 1;
    mc_ctx_enqueue(L, 3, 1);
    c->noalloc = 0;
  }
  return push_result(L, r, "closed");
}

/* cancel(held): the held post is given up; nothing was sent. */
static int port_cancel (lua_State *L) {
  luaL_checkudata(L, 1, HELD_MT);
  held_cancel(L, 1);
  return 0;
}

/* writing(port, n): n posts of the port wait for room; its news then
** goes to the scheduler, and it keeps the loop going while its partner
** is in another thread. */
static int port_writing (lua_State *L) {
  mc_Recv *p = check_port(L, 1);
  p->writing = (int)luaL_checkinteger(L, 2);
  mc_recv_repin(L, 1, p);
  return 0;
}

/* waitroom(fn): the scheduler's function postMessage calls to wait. */
static int port_waitroom (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawseti(L, lua_upvalueindex(1), MC_CTX_WAITROOM);
  return 0;
}

/* }====================================================== */

static int port_start (lua_State *L) {
  mc_Recv *p = check_port(L, 1);
  if (!p->started) {
    if (p->group != NULL) {
      size_t count;
      int closing;
      mc_group_head(p->group, p->end, &count, &closing);
      mc_ctx_reserve(L, (count < MC_TAKE_MAX ? count : MC_TAKE_MAX)
                        + (size_t)closing);
    }
    p->started = 1;
    mc_recv_kick_safe(L, 1, p);
    mc_recv_repin(L, 1, p);
  }
  return 0;
}

/* pending(): the messages queued at the port and not yet taken (a
** message handed to a waiting receive is taken). */
static int port_pending (lua_State *L) {
  mc_Recv *p = check_port(L, 1);
  size_t count = 0, bytes;
  if (p->group != NULL)  /* a count, not a look: the owner's news stays */
    mc_group_load(p->group, p->end, &count, &bytes);
  lua_pushinteger(L, (lua_Integer)count);
  return 1;
}

/* discard(port): frees the messages queued at the port unread, so that
** none is decoded or reported as a messageerror (a Worker's held messages
** as its exit is dispatched). */
static int port_discard (lua_State *L) {
  mc_Recv *p = check_port(L, 1);
  if (!p->lent)
    mc_recv_drop(p, 1);
  return 0;
}


mc_Recv *mc_port_new (lua_State *L) {
  return mc_recv_new(L, &port_type, sizeof(mc_Recv));
}

const mc_Type *mc_port_type (void) {
  return &port_type;
}

/* channel([capacity]): a new pair of entangled ports, each holding at
** most `capacity` messages not yet taken (none: no bound). */
static int port_channel (lua_State *L) {
  mc_Group *g;
  lua_Integer capacity = luaL_optinteger(L, 1, 0);
  lua_settop(L, 0);
  mc_recv_new(L, &port_type, sizeof(mc_Recv));
  mc_recv_new(L, &port_type, sizeof(mc_Recv));
  g = mc_group_new(2);
  if (g == NULL)
    return luaL_error(L, "not enough memory");
  g->capacity = capacity > 0 ? (size_t)capacity : 0;
  mc_group_incref(g);  /* one reference for each port */
  mc_recv_attach(L, (mc_Recv *)lua_touserdata(L, -2), g, 0);
  mc_recv_attach(L, (mc_Recv *)lua_touserdata(L, -1), g, 1);
  return 2;
}


/*
** {======================================================
** Moving a port with a transfer list: a slot holds its group (a
** reference) and its end.
** =======================================================
*/

static const char *port_check (lua_State *L, void *obj, const mc_Group *from) {
  mc_Recv *p = (mc_Recv *)obj;
  (void)L;
  if (p->lent)
    return "a MessagePort that another transfer is moving";
  if (p->group == NULL || !mc_group_entangled(p->group))
    return "a closed or detached MessagePort";
  if (p->group == from)
    return "the sending port or its entangled port";
  if (from != NULL && from->remote)
    return "a MessagePort, which cannot cross a link to another process";
  return NULL;
}

static void port_lend (lua_State *L, void *obj, mc_Xfer *x) {
  mc_Recv *p = (mc_Recv *)obj;
  (void)L;
  mc_group_incref(p->group);
  x->ptr = p->group;
  x->aux = p->end;
  p->lent = MC_LENT_MOVED;
}

static void port_unlend (mc_Xfer *x) {
  mc_group_decref((mc_Group *)x->ptr);
}

/* A port is moved by the call whose transfer list holds it, so a close()
** while the transfer is under way (from a finalizer, or while the post
** waits for room) comes after it: it does nothing once the port moved,
** as on any port transferred away; if nothing moved, it is done here.
** The kicks may wait for the next poll: nothing raises on this path. */
static void port_keep (lua_State *L, int idx) {
  mc_Recv *p = (mc_Recv *)lua_touserdata(L, idx);
  int closed = p->lent == MC_LENT_CLOSED;
  p->lent = 0;
  if (closed) {
    if (disentangle(L, idx, p))
      mc_recv_kick_safe(L, idx, p);
  }
}

/* The port at idx leaves this state: the object is detached, and a
** partner left here is now kept alive for another thread. The partner it
** kept (U.keep) is pinned from here: the receiving thread may have taken
** the port and closed the pair before this commit, and then the pair no
** longer names a local peer, though the close is still to dispatch. */
static void port_commit (lua_State *L, int idx) {
  mc_Recv *p = (mc_Recv *)lua_touserdata(L, idx);
  mc_Group *g = p->group;
  size_t e = p->end;
  mc_Recv *q;
  p->lent = 0;  /* moved: a close() meanwhile does nothing (port_keep) */
  if (g == NULL)  /* its __gc, called by hand, let go of its end and
                  ** closed the pair: the message moves it closed */
    return;
  mc_group_incref(g);
  mc_getuservalue(L, idx);
  lua_getfield(L, -1, "keep");  /* U, partner kept by p, or false */
  mc_recv_release(L, p, 0);
  mc_recv_unkeep(L, idx);
  q = (mc_Recv *)lua_touserdata(L, -1);  /* NULL for false */
  if (q != NULL && q->group != NULL)
    mc_recv_repin(L, -1, q);
  lua_pop(L, 2);
  mc_recv_repin_peer(L, g, e);
  mc_group_decref(g);
  mc_recv_kick_safe(L, idx, p);  /* tasks waiting in its receive */
  if (p->writing > 0)  /* its waiting posts learn it is gone */
    mc_hub_notify(mc_ctx_hub(L), p->id);
}

/* A port that dies in transit closes the pair, and what waits at its end
** goes with it. */
static void port_drop (mc_Xfer *x, mc_Msg **freed) {
  mc_group_release((mc_Group *)x->ptr, x->aux, freed);
}

static void port_blank (lua_State *L, const mc_Xfer *x) {
  (void)x;
  mc_recv_new(L, &port_type, sizeof(mc_Recv));
}

/* The port at idx (a blank, or the port itself when its message could
** not be sent after all) takes the end over: what waits there is queued,
** and what keeps it and a partner here alive is decided again. */
static void port_fill (lua_State *L, int idx, mc_Xfer *x) {
  mc_Recv *p = (mc_Recv *)lua_touserdata(L, idx);
  mc_recv_attach(L, p, (mc_Group *)x->ptr, x->aux);
  if (p->group->remote)  /* what the state it left posted may be left to
                         ** write: see post (the wake, which runs Lua,
                         ** comes when the take is done: sched.c's take,
                         ** or the step that dispatches) */
    mc_ctx(L)->drains = 2;
  mc_recv_kick_safe(L, idx, p);  /* the message is taken: must not fail */
  mc_recv_repin(L, idx, p);
  mc_recv_repin_peer(L, p->group, p->end);
}

static const mc_Type port_type = {
  "MessagePort", PORT_MT, 1,
  0, NULL, NULL, NULL, NULL,
  port_check, port_lend, port_unlend, port_keep, port_commit, port_drop,
  port_blank,
  port_fill
};

/* }====================================================== */


void mc_port_open (lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", port__gc},
    {"__close", port_close},
    {"__tostring", port__tostring},
    {NULL, NULL}
  };
  static const luaL_Reg methods[] = {
    {"postMessage", port_postMessage},
    {"pending", port_pending},
    {"start", port_start},
    {"close", port_close},
    {"ref", mc_recv_ref},
    {"unref", mc_recv_unref},
    {"hasRef", mc_recv_hasref},
    {NULL, NULL}
  };
  static const luaL_Reg funcs[] = {
    {"channel", port_channel},
    {"post_held", port_post_held},
    {"owner_post", port_owner_post},
    {"post_cancel", port_cancel},
    {"writing", port_writing},
    {"waitroom", port_waitroom},
    {"waits_for_room", port_waits_for_room},
    {"discard", port_discard},
    {NULL, NULL}
  };
  static const luaL_Reg held_meta[] = {
    {"__gc", held__gc},
    {NULL, NULL}
  };
  int ctx = lua_gettop(L);
  luaL_newmetatable(L, HELD_MT);  /* its __gc needs the context */
  mc_setfuncs(L, held_meta, mc_ctx_upvalues(L, ctx));
  lua_pop(L, 1);
  mc_recv_open_type(L, ctx, &port_type, meta, methods, mc_recv_index,
                    "port");
  mc_ctx_setfuncs(L, funcs);
}
