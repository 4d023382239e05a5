/*
** port.c: MessagePort userdata and the C half of the scheduler.
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
** A port's uservalue U is a table: U.peer is a weak table holding the
** partner; U.keep holds the partner strongly while the partner has
** listeners or waiting tasks, so such a port lives as long as its partner
** is reachable. The Lua side keeps the listeners there too.
*/
#include <errno.h>
#include <string.h>
#include <time.h>

#include "compat.h"
#include "mc.h"

typedef struct mc_Port {
  mc_Pipe *pipe;  /* NULL once collected */
  int side;       /* this port's FIFO in the pipe */
  int started;
  int nlisten;    /* message listeners */
  int nwait;      /* tasks waiting in receive */
  int unref;
  size_t tokens;  /* this port's entries in the run queue */
} mc_Port;

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

/* Pushes the partner of the port at idx, or nil when it was collected. */
static mc_Port *push_peer (lua_State *L, int idx) {
  mc_getuservalue(L, idx);
  lua_getfield(L, -1, "peer");
  lua_rawgeti(L, -1, 1);  /* U, peer, partner */
  lua_replace(L, -3);
  lua_pop(L, 1);
  return (mc_Port *)lua_touserdata(L, -1);
}

static void set_keep (lua_State *L, int idx) {
  mc_getuservalue(L, idx);
  lua_pushnil(L);
  lua_setfield(L, -2, "keep");
  lua_pop(L, 1);
}

/* Disentangles the pair of the port at idx; the partner's close marker
** comes first. Neither port holds the other alive any more. */
static int disentangle (lua_State *L, int idx, mc_Port *p) {
  mc_Port *peer;
  if (p->pipe == NULL || !mc_pipe_close(p->pipe, 1 - p->side))
    return 0;
  peer = push_peer(L, idx);
  if (peer != NULL) {
    kick(L, -1, peer);
    set_keep(L, -1);
  }
  lua_pop(L, 1);
  set_keep(L, idx);
  return 1;
}

static int port_close (lua_State *L) {
  mc_Port *p = check_port(L, 1);
  if (disentangle(L, 1, p))
    kick(L, 1, p);
  return 0;
}

static int port__gc (lua_State *L) {
  mc_Port *p = (mc_Port *)lua_touserdata(L, 1);
  if (p->pipe != NULL) {
    disentangle(L, 1, p);
    mc_pipe_decref(p->pipe);
    p->pipe = NULL;
  }
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

/* postMessage's transfer argument: an array, or {transfer = array}.
** Moving ports and Buffers comes with threads; until then only an empty
** list is accepted. */
static void check_transfer (lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx))
    return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "transfer");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1))
      luaL_argerror(L, idx, "'transfer' must be an array");
    idx = lua_gettop(L);
  }
  lua_pushnil(L);
  if (lua_next(L, idx)) {
    lua_pushliteral(L, "DataCloneError: transfer lists are not supported "
                       "by this version");
    lua_error(L);
  }
}

static int port_postMessage (lua_State *L) {
  mc_Port *p = check_port(L, 1);
  const unsigned char *bytes;
  size_t len;
  int r;
  check_transfer(L, 3);
  lua_settop(L, 2);
  bytes = mc_encode(L, 2, &len);  /* port, message, scratch */
  r = p->pipe != NULL ? mc_pipe_post(p->pipe, 1 - p->side, bytes, len) : 0;
  mc_encode_done(L, 3);
  if (r < 0)
    return luaL_error(L, "not enough memory");
  if (r > 0) {
    mc_Port *peer = push_peer(L, 1);
    if (peer != NULL)
      kick(L, -1, peer);
  }
  lua_pushboolean(L, r > 0);
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

/* Runs under lua_pcall: decodes the message (a light userdata). */
static int decode_msg (lua_State *L) {
  size_t len;
  const unsigned char *data = mc_msg_data((mc_Msg *)lua_touserdata(L, 1),
                                          &len);
  mc_decode(L, data, len);
  return 1;
}

/*
** take(port, token): the next entry of the port's FIFO, as
**   KIND_MESSAGE, data, U | KIND_BADMESSAGE, error, U | KIND_CLOSE, nil, U
** or nothing. With token (the scheduler running one of the port's
** tokens), a message is taken only while the port is deliverable, and the
** close marker is taken too. Without (receive), any message is taken and
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
  if (m == NULL) {
    if (token || mc_pipe_entangled(p->pipe))
      return 0;
    lua_pushinteger(L, KIND_CLOSE);
    lua_pushnil(L);
  }
  else if (mc_msg_is_close(m)) {
    mc_msg_free(m);
    lua_pushinteger(L, KIND_CLOSE);
    lua_pushnil(L);
  }
  else {
    int status;
    lua_rawgeti(L, lua_upvalueindex(1), MC_STATE_DECODE);
    lua_pushlightuserdata(L, m);
    status = lua_pcall(L, 1, 1, 0);
    mc_msg_free(m);
    if (!token)  /* the close marker may be at the head now */
      kick(L, 1, p);
    lua_pushinteger(L, status == 0 ? KIND_MESSAGE : KIND_BADMESSAGE);
    lua_insert(L, -2);
  }
  mc_getuservalue(L, 1);
  return 3;
}

/* config(port, started, nlisten, nwait): what the Lua side knows of the
** port's listeners; queues the tokens that makes due. Returns whether
** the port is still entangled. */
static int core_config (lua_State *L) {
  mc_Port *p = check_port(L, 1);
  p->started = lua_toboolean(L, 2);
  p->nlisten = (int)luaL_checkinteger(L, 3);
  p->nwait = (int)luaL_checkinteger(L, 4);
  kick(L, 1, p);
  lua_pushboolean(L, p->pipe != NULL && mc_pipe_entangled(p->pipe));
  return 1;
}

static int core_uservalue (lua_State *L) {
  check_port(L, 1);
  mc_getuservalue(L, 1);
  return 1;
}

/* Pushes a new port on side `side` of no pipe yet, with its uservalue. */
static mc_Port *new_port (lua_State *L, int side) {
  mc_Port *p = (mc_Port *)mc_newuserdata(L, sizeof(mc_Port), 1);
  memset(p, 0, sizeof *p);
  p->side = side;
  luaL_getmetatable(L, MC_PORT_MT);
  lua_setmetatable(L, -2);
  lua_newtable(L);
  mc_setuservalue(L, -2);
  return p;
}

/* Gives the port at idx a weak reference to the port at the top. */
static void set_peer (lua_State *L, int idx) {
  mc_getuservalue(L, idx);
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, -3);
  lua_rawseti(L, -2, 1);
  lua_rawgeti(L, lua_upvalueindex(1), MC_STATE_WEAKMT);
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "peer");
  lua_pop(L, 1);
}

static int core_channel (lua_State *L) {
  mc_Port *a = new_port(L, 0);
  mc_Port *b = new_port(L, 1);
  mc_Pipe *pipe = mc_pipe_new();
  if (pipe == NULL)
    return luaL_error(L, "not enough memory");
  a->pipe = pipe;
  mc_pipe_incref(pipe);
  b->pipe = pipe;
  set_peer(L, -2);  /* a's peer is b */
  lua_pushvalue(L, -2);
  set_peer(L, -2);
  lua_pop(L, 1);
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

/* Blocks the thread for the given seconds: the scheduler has nothing to
** run until then. */
static int core_wait (lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts;
  if (!(s > 0))
    return 0;
  if (s > 1e9)
    s = 1e9;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  return 0;
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
    {"wait", core_wait},
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
