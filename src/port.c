/*
** port.c: MessagePort userdata, transfer lists and the C half of the
** scheduler.
**
** A port owns one reference to its pipe (pipe.c). Messages wait there in
** encoded form. The scheduler (lua/messagechannel/scheduler.lua) runs a
** queue of tokens, the run queue, a Lua table with its tail index at key
** 0; a port token means "dispatch the head of this port's FIFO". A port
** keeps as many tokens queued as it has dispatchable entries (kick), so
** tokens are queued in post order, which gives the global order across
** ports. A token that finds its message already taken (by receive) or the
** port no longer listening does nothing.
**
** Every port has an id in its Lua state's port table, and the pipe side
** it owns names that state's hub and the id. A post from the same state
** kicks the receiving port at once; a post from another thread tells the
** hub, and the receiving state kicks the port when it polls (core.poll).
**
** Lifetime: a port that wants events (listeners or waiting tasks) is kept
** alive by its partner when the partner lives in the same state (U.keep
** in the partner's uservalue U), or else by the state's pinned table,
** since another thread may post to it at any time.
*/
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compat.h"
#include "mc.h"

typedef struct mc_Port {
  mc_Pipe *pipe;  /* NULL once closed by collection or detached */
  int side;       /* this port's FIFO in the pipe */
  uint32_t id;    /* in the state's port table */
  int started;
  int nlisten;    /* message listeners */
  int nwait;      /* tasks waiting in receive */
  int wants;      /* listeners of any type, or waiting tasks */
  int unref;
  size_t tokens;  /* this port's entries in the run queue */
} mc_Port;

/* A Lua state's hub, with what the state needs to read it. */
typedef struct HubBox {
  mc_Hub *hub;
  uint32_t next_id;
  uint32_t *freed;  /* ids of collected ports, to use again */
  size_t nfreed, capfreed;
  uint32_t *buf;    /* ids taken from the hub */
  size_t cap;
} HubBox;

#define HUBBOX_MT "messagechannel.hub"

/* what port_take returns first */
#define KIND_MESSAGE 1
#define KIND_BADMESSAGE 2
#define KIND_CLOSE 3

int mc_port_test (lua_State *L, int idx) {
  return mc_testudata(L, idx, MC_PORT_MT) != NULL;
}

static mc_Port *check_port (lua_State *L, int idx) {
  return (mc_Port *)luaL_checkudata(L, idx, MC_PORT_MT);
}

static HubBox *hub_box (lua_State *L) {
  HubBox *b;
  lua_rawgeti(L, lua_upvalueindex(1), MC_STATE_HUB);
  b = (HubBox *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return b;
}

mc_Hub *mc_state_hub (lua_State *L) {
  return hub_box(L)->hub;
}

/* Pushes the object with the given id in this state, or nil. */
static void push_id (lua_State *L, uint32_t id) {
  lua_rawgeti(L, lua_upvalueindex(1), MC_STATE_PORTS);
  lua_pushnumber(L, (lua_Number)id);
  lua_rawget(L, -2);
  lua_remove(L, -2);
}

/* Ids are used again once their port is collected, so that the port
** table stays as small as the number of ports alive. */
uint32_t mc_state_register (lua_State *L, int idx) {
  HubBox *b = hub_box(L);
  uint32_t id;
  int taken = 1;
  idx = mc_absindex(L, idx);
  lua_rawgeti(L, lua_upvalueindex(1), MC_STATE_PORTS);
  if (b->nfreed > 0)
    id = b->freed[--b->nfreed];
  else while (taken) {  /* 0 means none; after 2^32, skip those in use */
    id = ++b->next_id;
    lua_pushnumber(L, (lua_Number)id);
    lua_rawget(L, -2);
    taken = id == 0 || !lua_isnil(L, -1);
    lua_pop(L, 1);
  }
  lua_pushnumber(L, (lua_Number)id);
  lua_pushvalue(L, idx);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  return id;
}

/* The port with the given id in this state (pushed), or NULL (with
** whatever is there pushed) when there is none or it holds no pipe. */
static mc_Port *push_port (lua_State *L, uint32_t id) {
  mc_Port *p;
  push_id(L, id);
  p = (mc_Port *)mc_testudata(L, -1, MC_PORT_MT);
  return p != NULL && p->pipe != NULL ? p : NULL;
}

static int deliverable (const mc_Port *p) {
  return p->nwait > 0 || (p->started && p->nlisten > 0);
}

/* Queues tokens for the port at idx until it has one per dispatchable
** entry of its FIFO. */
static void kick (lua_State *L, int idx, mc_Port *p) {
  size_t count, want;
  int marked, head;
  if (p->pipe == NULL)
    return;
  head = mc_pipe_head(p->pipe, p->side, &count, &marked);
  want = deliverable(p) ? count + (size_t)marked : head == MC_CLOSED;
  if (p->tokens < want) {
    lua_Integer tail;
    idx = mc_absindex(L, idx);
    lua_rawgeti(L, lua_upvalueindex(1), MC_STATE_RUNQ);
    lua_rawgeti(L, -1, 0);
    tail = lua_tointeger(L, -1);
    lua_pop(L, 1);
    for (; p->tokens < want; p->tokens++) {
      lua_pushvalue(L, idx);
      lua_rawseti(L, -2, (int)++tail);
    }
    lua_pushinteger(L, tail);
    lua_rawseti(L, -2, 0);
    lua_pop(L, 1);
  }
}

/* Kicks the port with the given id, if it is still here. */
static void kick_id (lua_State *L, uint32_t id) {
  mc_Port *p = push_port(L, id);
  if (p != NULL)
    kick(L, -1, p);
  lua_pop(L, 1);
}

static void set_pinned (lua_State *L, int idx, int on) {
  idx = mc_absindex(L, idx);
  lua_rawgeti(L, lua_upvalueindex(1), MC_STATE_PINNED);
  lua_pushvalue(L, idx);
  if (on)
    lua_pushboolean(L, 1);
  else
    lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* Sets U.keep of the port at idx to the value at the top (popped). */
static void set_keep (lua_State *L, int idx) {
  idx = mc_absindex(L, idx);
  mc_getuservalue(L, idx);
  lua_insert(L, -2);
  lua_setfield(L, -2, "keep");
  lua_pop(L, 1);
}

/* Decides what keeps the port at idx alive: its partner when that lives
** in this state, else the pinned table while it wants events. */
static void repin (lua_State *L, int idx, mc_Port *p) {
  uint32_t peer = p->pipe != NULL
                  ? mc_pipe_local_peer(p->pipe, p->side, mc_state_hub(L)) : 0;
  idx = mc_absindex(L, idx);
  if (peer != 0) {
    if (push_port(L, peer) != NULL) {
      if (p->wants)
        lua_pushvalue(L, idx);
      else
        lua_pushnil(L);
      set_keep(L, -2);
      lua_pop(L, 1);
      set_pinned(L, idx, 0);
      return;
    }
    lua_pop(L, 1);
  }
  set_pinned(L, idx, p->wants && p->pipe != NULL
                     && mc_pipe_entangled(p->pipe));
}

/* The partner of port p may live here and have seen its partner come or
** go: repins it. */
static void repin_peer (lua_State *L, mc_Port *p) {
  uint32_t peer = mc_pipe_local_peer(p->pipe, p->side, mc_state_hub(L));
  if (peer != 0) {
    mc_Port *q = push_port(L, peer);
    if (q != NULL)
      repin(L, -1, q);
    lua_pop(L, 1);
  }
}

/* Disentangles the pair of the port at idx; the partner's close marker
** comes first. Neither port holds the other alive any more. */
static int disentangle (lua_State *L, int idx, mc_Port *p) {
  uint32_t local[2];
  if (p->pipe == NULL
      || !mc_pipe_close(p->pipe, 1 - p->side, mc_state_hub(L), local))
    return 0;
  idx = mc_absindex(L, idx);
  if (local[1 - p->side] != 0) {
    mc_Port *q = push_port(L, local[1 - p->side]);
    if (q != NULL) {
      kick(L, -1, q);
      lua_pushnil(L);
      set_keep(L, -2);
      set_pinned(L, -1, 0);
    }
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  set_keep(L, idx);
  set_pinned(L, idx, 0);
  return 1;
}

static int port_close (lua_State *L) {
  mc_Port *p = check_port(L, 1);
  if (disentangle(L, 1, p))
    kick(L, 1, p);
  return 0;
}

/* Lets go of the pipe: the port is collected, or has moved elsewhere. */
static void release (lua_State *L, mc_Port *p) {
  mc_Pipe *pipe = p->pipe;
  p->pipe = NULL;
  mc_pipe_detach(pipe, p->side, mc_state_hub(L));
  mc_pipe_decref(pipe);
}

static int port__gc (lua_State *L) {
  mc_Port *p = (mc_Port *)lua_touserdata(L, 1);
  HubBox *b = hub_box(L);
  if (p->pipe != NULL) {
    disentangle(L, 1, p);
    release(L, p);
  }
  if (p->id != 0 && b->nfreed == b->capfreed) {
    size_t cap = b->capfreed ? b->capfreed * 2 : 64;
    uint32_t *f = (uint32_t *)realloc(b->freed, cap * sizeof *f);
    if (f != NULL) {  /* else the id is not used again */
      b->freed = f;
      b->capfreed = cap;
    }
  }
  if (p->id != 0 && b->nfreed < b->capfreed)
    b->freed[b->nfreed++] = p->id;  /* a weak entry left (5.1) is
                                       overwritten when it is used */
  p->id = 0;
  return 0;
}

static int port__tostring (lua_State *L) {
  mc_Port *p = check_port(L, 1);
  if (p->pipe == NULL || !mc_pipe_entangled(p->pipe))
    lua_pushliteral(L, "MessagePort (closed)");
  else
    lua_pushfstring(L, "MessagePort (%p)", (void *)p);
  return 1;
}

/* Methods come from the table the Lua side fills; the three handler
** fields from the uservalue; anything else reads as nil. */
static int port__index (lua_State *L) {
  lua_rawgeti(L, lua_upvalueindex(1), MC_STATE_METHODS);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  if (lua_isnil(L, -1) && lua_type(L, 2) == LUA_TSTRING) {
    const char *k = lua_tostring(L, 2);
    if (strcmp(k, "onmessage") == 0 || strcmp(k, "onmessageerror") == 0
        || strcmp(k, "onclose") == 0) {
      mc_getuservalue(L, 1);
      lua_pushvalue(L, 2);
      lua_rawget(L, -2);
    }
  }
  return 1;
}

/* Pushes a new port on side `side` of no pipe yet, with its uservalue and
** its id. */
static mc_Port *new_port (lua_State *L, int side) {
  mc_Port *p = (mc_Port *)mc_newuserdata(L, sizeof(mc_Port), 1);
  memset(p, 0, sizeof *p);
  p->side = side;
  luaL_getmetatable(L, MC_PORT_MT);
  lua_setmetatable(L, -2);
  lua_newtable(L);
  mc_setuservalue(L, -2);
  p->id = mc_state_register(L, -1);
  return p;
}

/* Port p takes over side `side` of pipe, with a reference. */
static void attach (lua_State *L, mc_Port *p, mc_Pipe *pipe, int side) {
  p->pipe = pipe;
  p->side = side;
  mc_pipe_attach(pipe, side, mc_state_hub(L), p->id);
}

/* The new port q, at the top, arrives with a side that was elsewhere:
** what waits in its FIFO is queued, and a partner here is repinned. */
static void arrive (lua_State *L, mc_Port *q, mc_Pipe *pipe, int side) {
  attach(L, q, pipe, side);
  kick(L, -1, q);
  repin_peer(L, q);
}

/* Buffer b gives its bytes up (to a message, or to a new Buffer). */
static void detach_buffer (mc_Buffer *b) {
  b->data = NULL;
  b->len = 0;
  b->detached = 1;
}


/*
** {======================================================
** Transfer lists
** =======================================================
*/

static int clone_error (lua_State *L, const char *fmt, lua_Integer i) {
  lua_pushliteral(L, "DataCloneError: ");
  lua_pushfstring(L, fmt, (int)i);
  lua_concat(L, 2);
  return lua_error(L);
}

int mc_transfer_check (lua_State *L, int idx, const mc_Pipe *from) {
  lua_Integer n, i, count = 0;
  int list, map;
  idx = mc_absindex(L, idx);
  if (lua_isnoneornil(L, idx)) {  /* the common case: no table made */
    lua_pushnil(L);
    return 0;
  }
  lua_newtable(L);
  map = lua_gettop(L);
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "transfer");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
  }
  else if (!lua_istable(L, -1))
    luaL_argerror(L, idx, "'transfer' must be an array");
  list = lua_gettop(L);
  n = (lua_Integer)mc_rawlen(L, list);
  lua_pushnil(L);
  while (lua_next(L, list)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING
        || strcmp(lua_tostring(L, -1), "transfer") != 0)
      count++;
  }
  if (count != n) {
    lua_pushliteral(L, "DataCloneError: the transfer list must be an array "
                       "(entries 1..n, no holes)");
    lua_error(L);
  }
  for (i = 1; i <= n; i++) {
    mc_Port *p;
    mc_Buffer *b;
    lua_rawgeti(L, list, (int)i);
    if ((p = (mc_Port *)mc_testudata(L, -1, MC_PORT_MT)) != NULL) {
      if (p->pipe == NULL || !mc_pipe_entangled(p->pipe))
        clone_error(L, "transfer list entry %d is a closed or detached "
                       "MessagePort", i);
      if (p->pipe == from)
        clone_error(L, "transfer list entry %d is the sending port or its "
                       "entangled port", i);
    }
    else if ((b = mc_buffer_test(L, -1)) != NULL) {
      if (b->detached)
        clone_error(L, "transfer list entry %d is a detached Buffer", i);
    }
    else {
      lua_pushfstring(L, "DataCloneError: transfer list entry %d is a %s, "
                         "not a MessagePort or Buffer", (int)i,
                      luaL_typename(L, -1));
      lua_error(L);
    }
    lua_pushvalue(L, -1);
    lua_rawget(L, map);
    if (!lua_isnil(L, -1))
      clone_error(L, "transfer list entry %d appears twice", i);
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushinteger(L, i);
    lua_rawset(L, map);  /* t[entry] = i */
    lua_rawseti(L, map, (int)i);  /* t[i] = entry */
  }
  lua_settop(L, map);
  return (int)n;
}

void mc_transfer_fill (lua_State *L, int map, mc_Msg *m) {
  size_t nx, i;
  mc_Xfer *x = mc_msg_xfer(m, &nx);
  for (i = 0; i < nx; i++) {
    mc_Port *p;
    lua_rawgeti(L, map, (int)i + 1);
    if ((p = (mc_Port *)mc_testudata(L, -1, MC_PORT_MT)) != NULL) {
      mc_pipe_incref(p->pipe);
      x[i].ptr = p->pipe;
      x[i].len = (size_t)p->side;
      x[i].kind = MC_XPORT;
    }
    else {
      mc_Buffer *b = mc_buffer_test(L, -1);
      x[i].ptr = b->data;
      x[i].len = b->len;
      x[i].kind = MC_XBUFFER;
    }
    lua_pop(L, 1);
  }
}

void mc_transfer_undo (mc_Msg *m) {
  size_t nx, i;
  mc_Xfer *x = mc_msg_xfer(m, &nx);
  for (i = 0; i < nx; i++) {
    if (x[i].kind == MC_XPORT)
      mc_pipe_decref((mc_Pipe *)x[i].ptr);
    x[i].kind = 0;  /* a Buffer still owns its bytes */
  }
  mc_msg_free(m);
}

/* The port p at the top leaves this state: the object is detached, and a
** partner left here is now kept alive for another thread. */
static void detach_port (lua_State *L, mc_Port *p) {
  mc_Pipe *pipe = p->pipe;
  mc_pipe_incref(pipe);
  release(L, p);
  lua_pushnil(L);
  set_keep(L, -2);
  set_pinned(L, -1, 0);
  p->pipe = pipe;  /* only to find the partner */
  repin_peer(L, p);
  p->pipe = NULL;
  mc_pipe_decref(pipe);
}

void mc_transfer_commit (lua_State *L, int map) {
  lua_Integer i, n = (lua_Integer)mc_rawlen(L, map);
  for (i = 1; i <= n; i++) {
    mc_Port *p;
    lua_rawgeti(L, map, (int)i);
    if ((p = (mc_Port *)mc_testudata(L, -1, MC_PORT_MT)) != NULL)
      detach_port(L, p);
    else  /* the message owns the bytes now */
      detach_buffer(mc_buffer_test(L, -1));
    lua_pop(L, 1);
  }
}

void mc_transfer_blanks (lua_State *L, int map) {
  lua_Integer i, n = (lua_Integer)mc_rawlen(L, map);
  mc_Port *p;
  lua_createtable(L, (int)n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, map, (int)i);
    if ((p = (mc_Port *)mc_testudata(L, -1, MC_PORT_MT)) != NULL)
      new_port(L, p->side);
    else
      mc_buffer_push(L, NULL, 0);
    lua_rawseti(L, -3, (int)i);
    lua_pop(L, 1);
  }
}

void mc_transfer_move (lua_State *L, int map, int blanks) {
  lua_Integer i, n = (lua_Integer)mc_rawlen(L, map);
  for (i = 1; i <= n; i++) {
    mc_Port *p;
    lua_rawgeti(L, map, (int)i);
    lua_rawgeti(L, blanks, (int)i);  /* old, new */
    if ((p = (mc_Port *)mc_testudata(L, -2, MC_PORT_MT)) != NULL) {
      mc_Port *q = (mc_Port *)lua_touserdata(L, -1);
      mc_Pipe *pipe = p->pipe;
      int side = p->side;
      mc_pipe_incref(pipe);  /* q's reference */
      lua_pushvalue(L, -2);
      detach_port(L, p);
      lua_pop(L, 1);
      arrive(L, q, pipe, side);
    }
    else {
      mc_Buffer *b = mc_buffer_test(L, -2);
      mc_Buffer *c = mc_buffer_test(L, -1);
      c->data = b->data;
      c->len = b->len;
      detach_buffer(b);
    }
    lua_pop(L, 2);
  }
}

void mc_transfer_take (lua_State *L, mc_Msg *m) {
  size_t nx, i;
  mc_Xfer *x = mc_msg_xfer(m, &nx);
  lua_createtable(L, (int)nx, 0);
  for (i = 0; i < nx; i++) {
    if (x[i].kind == MC_XPORT) {
      mc_Port *q = new_port(L, (int)x[i].len);
      x[i].kind = 0;
      arrive(L, q, (mc_Pipe *)x[i].ptr, (int)x[i].len);
    }
    else {
      mc_Buffer *b = mc_buffer_push(L, NULL, 0);
      b->data = (unsigned char *)x[i].ptr;
      b->len = x[i].len;
      x[i].kind = 0;
    }
    lua_rawseti(L, -2, (int)i + 1);
  }
}

/* }====================================================== */


static int port_postMessage (lua_State *L) {
  mc_Port *p = check_port(L, 1);
  const unsigned char *bytes;
  size_t len;
  int n, r = 0;
  uint32_t local = 0;
  lua_settop(L, 3);
  n = mc_transfer_check(L, 3, p->pipe);  /* port, message, transfer, map */
  bytes = mc_encode(L, 2, n > 0 ? 4 : 0, &len);  /* ..., scratch */
  if (p->pipe != NULL) {
    mc_Msg *m = mc_msg_new(bytes, len, (size_t)n);
    if (m == NULL) {
      mc_encode_done(L, 5);
      return luaL_error(L, "not enough memory");
    }
    mc_transfer_fill(L, 4, m);
    r = mc_pipe_push(p->pipe, 1 - p->side, m, mc_state_hub(L), &local);
    if (!r)
      mc_transfer_undo(m);
  }
  mc_encode_done(L, 5);
  if (r) {
    if (n > 0)
      mc_transfer_commit(L, 4);
    if (local != 0)
      kick_id(L, local);
  }
  lua_pushboolean(L, r);
  return 1;
}

static int port_ref (lua_State *L) {
  check_port(L, 1)->unref = 0;
  return 0;
}

static int port_unref (lua_State *L) {
  check_port(L, 1)->unref = 1;
  return 0;
}

static int port_hasRef (lua_State *L) {
  lua_pushboolean(L, !check_port(L, 1)->unref);
  return 1;
}

/* Runs under lua_pcall: makes the objects message m (a light userdata)
** transferred, as an array. */
static int take_objects (lua_State *L) {
  mc_transfer_take(L, (mc_Msg *)lua_touserdata(L, 1));
  return 1;
}

/* Runs under lua_pcall: decodes message m, with the array of its
** transferred objects or nil. */
static int decode_msg (lua_State *L) {
  size_t len;
  const unsigned char *data = mc_msg_data((mc_Msg *)lua_touserdata(L, 1),
                                          &len);
  mc_decode(L, data, len, lua_isnil(L, 2) ? 0 : 2);
  return 1;
}

/* Decodes message m, pushing the value (or the error) and the array of
** the ports it transferred (or nil); frees m. Returns the lua_pcall
** status. The ports of a message that cannot be decoded are closed. */
static int decode_taken (lua_State *L, mc_Msg *m) {
  size_t nx, i;
  int status, objs;
  mc_msg_xfer(m, &nx);
  if (nx > 0) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, take_objects, 1);
    lua_pushlightuserdata(L, m);
    if (lua_pcall(L, 1, 1, 0) != 0) {
      mc_msg_free(m);
      lua_error(L);
    }
  }
  else
    lua_pushnil(L);
  objs = lua_gettop(L);
  lua_rawgeti(L, lua_upvalueindex(1), MC_STATE_DECODE);
  lua_pushlightuserdata(L, m);
  lua_pushvalue(L, objs);
  status = lua_pcall(L, 2, 1, 0);  /* objs, value */
  mc_msg_free(m);
  if (nx > 0) {
    lua_newtable(L);  /* objs, value, ports */
    for (i = 1; i <= nx; i++) {
      mc_Port *q;
      lua_rawgeti(L, objs, (int)i);
      q = (mc_Port *)mc_testudata(L, -1, MC_PORT_MT);
      if (q == NULL)
        lua_pop(L, 1);
      else {
        if (status != 0 && disentangle(L, -1, q))
          kick(L, -1, q);
        lua_rawseti(L, -2, (int)mc_rawlen(L, -2) + 1);
      }
    }
  }
  else
    lua_pushnil(L);
  lua_remove(L, objs);
  return status;
}

/*
** take(port, token): the next entry of the port's FIFO, as
**   KIND_MESSAGE, data, U, ports | KIND_BADMESSAGE, error, U, ports |
**   KIND_CLOSE, nil, U
** or nothing. ports is the array of the ports the message transferred,
** or nil. With token (the scheduler running one of the port's tokens),
** a message is taken only while the port is deliverable, and the close
** marker is taken too. Without (receive), any message is taken and
** KIND_CLOSE means the port is closed and has no message left.
*/
static int core_take (lua_State *L) {
  mc_Port *p = check_port(L, 1);
  int token = lua_toboolean(L, 2);
  mc_Msg *m;
  lua_settop(L, 1);
  if (token && p->tokens > 0)
    p->tokens--;
  if (p->pipe == NULL)
    return 0;
  m = mc_pipe_take(p->pipe, p->side,
                   token ? MC_TAKE_CLOSE | (deliverable(p) ? MC_TAKE_MESSAGE : 0)
                         : MC_TAKE_MESSAGE);
  if (m == NULL || mc_msg_is_close(m)) {
    if (m != NULL)
      mc_msg_free(m);
    else if (token || mc_pipe_entangled(p->pipe))
      return 0;
    set_pinned(L, 1, 0);
    lua_pushinteger(L, KIND_CLOSE);
    lua_pushnil(L);
    mc_getuservalue(L, 1);
    return 3;
  }
  else {
    int status = decode_taken(L, m);  /* port, value, ports */
    if (!token)  /* the close marker may be at the head now */
      kick(L, 1, p);
    lua_pushinteger(L, status == 0 ? KIND_MESSAGE : KIND_BADMESSAGE);
    lua_insert(L, 2);
    mc_getuservalue(L, 1);
    lua_insert(L, 4);  /* port, kind, value, U, ports */
    return 4;
  }
}

/* config(port, started, nlisten, nwait, wants): what the Lua side knows
** of the port's listeners; queues the tokens that makes due and decides
** what keeps the port alive. Returns whether the port is entangled. */
static int core_config (lua_State *L) {
  mc_Port *p = check_port(L, 1);
  p->started = lua_toboolean(L, 2);
  p->nlisten = (int)luaL_checkinteger(L, 3);
  p->nwait = (int)luaL_checkinteger(L, 4);
  p->wants = lua_toboolean(L, 5);
  kick(L, 1, p);
  repin(L, 1, p);
  lua_pushboolean(L, p->pipe != NULL && mc_pipe_entangled(p->pipe));
  return 1;
}

/* The object at the top has news. A port is kicked and popped; a Worker
** handle stays, for poll to return (1); anything else is popped. */
static int notice (lua_State *L) {
  mc_Port *p = (mc_Port *)mc_testudata(L, -1, MC_PORT_MT);
  if (p != NULL)
    kick(L, -1, p);
  else if (mc_testudata(L, -1, MC_WORKER_MT) != NULL) {
    luaL_checkstack(L, 3, "too many workers");
    return 1;
  }
  lua_pop(L, 1);
  return 0;
}

/* poll(seconds): waits for news from other threads (seconds < 0: as long
** as it takes; 0: not at all) and kicks the ports it concerns. Returns
** the Worker handles with news, and raises when the thread is to stop. */
static int core_poll (lua_State *L) {
  HubBox *b = hub_box(L);
  lua_Number s = luaL_checknumber(L, 1);
  int flags;
  size_t i, n = mc_hub_wait(b->hub, (double)s, &b->buf, &b->cap, &flags);
  if (flags & MC_HUB_STOP) {
    lua_pushliteral(L, "messagechannel: the worker was terminated");
    return lua_error(L);
  }
  lua_settop(L, 0);
  lua_rawgeti(L, lua_upvalueindex(1), MC_STATE_PORTS);
  if (flags & MC_HUB_ALL) {  /* news was lost: look at everything */
    lua_pushnil(L);
    while (lua_next(L, 1)) {  /* ports, [handles,] k, v */
      if (notice(L))
        lua_insert(L, 2);  /* below the key */
    }
  }
  for (i = 0; i < n; i++) {
    lua_pushnumber(L, (lua_Number)b->buf[i]);
    lua_rawget(L, 1);
    notice(L);
  }
  return lua_gettop(L) - 1;  /* the handles */
}

/* busy(): whether a port here waits for another thread that can still
** post to it (and is not unref'd). It first kicks every such port: what
** reached one before its news did is queued now, so that a port whose
** partner has closed is not taken for idle with its last messages and its
** close event still to dispatch. */
static int core_busy (lua_State *L) {
  int busy = 0;
  lua_rawgeti(L, lua_upvalueindex(1), MC_STATE_PINNED);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    mc_Port *p = (mc_Port *)lua_touserdata(L, -2);
    lua_pop(L, 1);
    kick(L, -1, p);
    if (p->pipe != NULL && !p->unref && (p->nlisten > 0 || p->nwait > 0)
        && mc_pipe_entangled(p->pipe))
      busy = 1;
  }
  lua_pushboolean(L, busy);
  return 1;
}

static int core_uservalue (lua_State *L) {
  check_port(L, 1);
  mc_getuservalue(L, 1);
  return 1;
}

static int core_channel (lua_State *L) {
  mc_Pipe *pipe;
  mc_Port *a = new_port(L, 0);
  mc_Port *b = new_port(L, 1);
  pipe = mc_pipe_new();
  if (pipe == NULL)
    return luaL_error(L, "not enough memory");
  attach(L, a, pipe, 0);
  mc_pipe_incref(pipe);
  attach(L, b, pipe, 1);
  return 2;
}

/* Replaces the run queue with a new empty one, which it returns: an
** emptied table keeps the size it grew to. */
static void push_new_runq (lua_State *L, int state) {
  lua_newtable(L);
  lua_pushinteger(L, 0);
  lua_rawseti(L, -2, 0);
  lua_pushvalue(L, -1);
  lua_rawseti(L, state, MC_STATE_RUNQ);
}

static int core_new_runq (lua_State *L) {
  push_new_runq(L, lua_upvalueindex(1));
  return 1;
}

static int core_now (lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
  return 1;
}

static int hubbox__gc (lua_State *L) {
  HubBox *b = (HubBox *)lua_touserdata(L, 1);
  if (b->hub != NULL) {
    mc_hub_close(b->hub);
    mc_hub_decref(b->hub);
  }
  free(b->buf);
  free(b->freed);
  b->buf = b->freed = NULL;
  b->cap = b->nfreed = b->capfreed = 0;
  return 0;
}

/* The per-state part of the module state: the hub, the port table and
** the pinned ports. They live in the registry, so that loading the module
** again in the same state (as busted does) shares them. */
static void open_thread (lua_State *L, int state) {
  lua_getfield(L, LUA_REGISTRYINDEX, MC_THREAD_KEY);
  if (lua_isnil(L, -1)) {
    HubBox *b;
    mc_Hub *h;
    lua_pop(L, 1);
    lua_createtable(L, 3, 0);
    b = (HubBox *)mc_newuserdata(L, sizeof(HubBox), 0);
    memset(b, 0, sizeof *b);
    if (luaL_newmetatable(L, HUBBOX_MT)) {
      lua_pushcfunction(L, hubbox__gc);
      lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    h = mc_worker_hub(L);  /* a worker's hub exists before its state */
    if (h != NULL)
      mc_hub_incref(h);
    else if ((h = mc_hub_new()) == NULL)
      luaL_error(L, "not enough memory");
    b->hub = h;
    lua_rawseti(L, -2, 1);
    lua_newtable(L);
    lua_rawgeti(L, state, MC_STATE_WEAKMT);
    lua_setmetatable(L, -2);
    lua_rawseti(L, -2, 2);
    lua_newtable(L);
    lua_rawseti(L, -2, 3);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, MC_THREAD_KEY);
  }
  lua_rawgeti(L, -1, 1);
  lua_rawseti(L, state, MC_STATE_HUB);
  lua_rawgeti(L, -1, 2);
  lua_rawseti(L, state, MC_STATE_PORTS);
  lua_rawgeti(L, -1, 3);
  lua_rawseti(L, state, MC_STATE_PINNED);
  lua_pop(L, 1);
}

void mc_port_open (lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", port__gc},
    {"__close", port_close},
    {"__tostring", port__tostring},
    {"__index", port__index},
    {NULL, NULL}
  };
  static const luaL_Reg methods[] = {
    {"postMessage", port_postMessage},
    {"close", port_close},
    {"ref", port_ref},
    {"unref", port_unref},
    {"hasRef", port_hasRef},
    {NULL, NULL}
  };
  int state = lua_gettop(L);
  push_new_runq(L, state);  /* a port's finalizer may queue a token */
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_rawseti(L, state, MC_STATE_WEAKMT);
  open_thread(L, state);
  lua_pushvalue(L, state);
  lua_pushcclosure(L, decode_msg, 1);
  lua_rawseti(L, state, MC_STATE_DECODE);
  lua_newtable(L);
  lua_pushvalue(L, state);
  mc_setfuncs(L, methods, 1);
  lua_rawseti(L, state, MC_STATE_METHODS);
  luaL_newmetatable(L, MC_PORT_MT);
  lua_pushvalue(L, state);
  mc_setfuncs(L, meta, 1);
  lua_pop(L, 1);
}

/* Adds the scheduler's C functions to the module table (below the state
** table at the top). */
void mc_port_funcs (lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"channel", core_channel},
    {"take", core_take},
    {"config", core_config},
    {"uservalue", core_uservalue},
    {"new_runq", core_new_runq},
    {"now", core_now},
    {"poll", core_poll},
    {"busy", core_busy},
    {NULL, NULL}
  };
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  mc_setfuncs(L, funcs, 1);
  lua_pop(L, 1);  /* module, state */
  lua_rawgeti(L, -1, MC_STATE_METHODS);
  lua_setfield(L, -3, "methods");
  luaL_getmetatable(L, MC_PORT_MT);
  lua_setfield(L, -3, "port_metatable");
}
