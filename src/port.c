/*
** port.c: the MessagePort type and MessageChannel's pair of ports.
**
** A port is a receiver (sched.c): it owns one end of a group of two
** (group.c), where the messages posted by its partner wait, encoded. Its
** listeners and handler fields are the Lua side's (eventtarget.lua); its
** mc_Type below is how a transfer list moves it: the end travels in the
** message, and a new port takes it over in the receiving state.
*/
#include <string.h>

#include "compat.h"
#include "mc.h"

#define PORT_MT "messagechannel.MessagePort"

static const mc_Type port_type;

static mc_Recv *check_port (lua_State *L, int idx) {
  mc_Recv *p = (mc_Recv *)mc_testudata(L, idx, PORT_MT);
  if (p == NULL)
    luaL_argerror(L, idx, lua_pushfstring(L, "MessagePort expected, got %s",
                                          luaL_typename(L, idx)));
  return p;
}

/* Disentangles the pair of the port at idx; the partner's close comes
** first. Neither port holds the other alive any more. */
static int disentangle (lua_State *L, int idx, mc_Recv *p) {
  uint32_t local[2];
  uint32_t partner;
  if (p->group == NULL
      || !mc_group_close(p->group, p->end, mc_ctx_hub(L), local))
    return 0;
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
  mc_ctx_reserve(L, 2);
  if (disentangle(L, 1, p))
    mc_recv_kick_safe(L, 1, p);
  return 0;
}

/* Allocates nothing Lua-side, so it cannot fail half-way: the pair is
** closed with every owner told through its hub (a partner here too, whose
** close the next poll queues), and what waits at this end goes. */
static int port__gc (lua_State *L) {
  mc_Recv *p = (mc_Recv *)mc_testudata(L, 1, PORT_MT);
  if (p == NULL)
    return 0;
  if (p->group != NULL)
    mc_recv_release(L, p, 1);
  mc_ctx_unregister(L, p->id);
  p->id = 0;
  return 0;
}

static int port__tostring (lua_State *L) {
  mc_Recv *p = check_port(L, 1);
  if (p->group == NULL || !mc_group_entangled(p->group))
    lua_pushliteral(L, "MessagePort (closed)");
  else
    lua_pushfstring(L, "MessagePort (%p)", (void *)p);
  return 1;
}

/* Methods come from the methods table (upvalue 3), which the Lua side
** completes; handler fields from the records the Lua side keeps in U.on
** (field -> record, the handler in record.fn); anything else is nil. */
static int port__index (lua_State *L) {
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(3));
  if (lua_isnil(L, -1) && mc_testudata(L, 1, PORT_MT) != NULL) {
    mc_getuservalue(L, 1);
    lua_getfield(L, -1, "on");
    if (lua_istable(L, -1)) {
      lua_pushvalue(L, 2);
      lua_rawget(L, -2);
      if (lua_istable(L, -1))
        lua_getfield(L, -1, "fn");
    }
  }
  return 1;
}

static int port_postMessage (lua_State *L) {
  mc_Recv *p = check_port(L, 1);
  uint32_t local = 0;
  int r = 0;
  mc_Msg *m;
  lua_settop(L, 3);
  mc_ctx_reserve(L, 1);  /* so that nothing after the post can fail */
  m = mc_message_make(L, 2, 3, p->group);  /* port, message, transfer, list */
  if (p->group != NULL)
    r = mc_group_post(p->group, mc_group_partner(p->group, p->end), m,
                      mc_ctx_hub(L), &local);
  if (r != 1) {
    mc_message_unlend(L, 4, m);
    if (r < 0)
      return luaL_error(L, "not enough memory");
  }
  else {
    mc_message_commit(L, 4);
    if (local != 0) {
      mc_Recv *q = mc_recv_push(L, local);
      if (q != NULL)
        mc_recv_kick_safe(L, -1, q);
      lua_pop(L, 1);
    }
    else if (lua_istable(L, 4) && mc_rawlen(L, 4) > 0)
      mc_group_sweep(p->group, mc_group_partner(p->group, p->end));
  }
  if (r == 1) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushliteral(L, "closed");
  return 2;
}

static int port_start (lua_State *L) {
  mc_Recv *p = check_port(L, 1);
  if (!p->started) {
    if (p->group != NULL) {
      size_t count;
      int closing;
      mc_group_head(p->group, p->end, &count, &closing);
      mc_ctx_reserve(L, count + (size_t)closing);
    }
    p->started = 1;
    mc_recv_kick_safe(L, 1, p);
    mc_recv_repin(L, 1, p);
  }
  return 0;
}

/* ref and unref change what keeps the scheduler going: a host loop
** waiting on the descriptor steps to learn it. */
static int port_ref (lua_State *L) {
  check_port(L, 1)->unref = 0;
  mc_ctx_wake(L);
  return 0;
}

static int port_unref (lua_State *L) {
  check_port(L, 1)->unref = 1;
  mc_ctx_wake(L);
  return 0;
}

static int port_hasRef (lua_State *L) {
  lua_pushboolean(L, !check_port(L, 1)->unref);
  return 1;
}

/* channel(): a new pair of entangled ports. */
static int port_channel (lua_State *L) {
  mc_Group *g;
  mc_recv_new(L, &port_type, sizeof(mc_Recv));
  mc_recv_new(L, &port_type, sizeof(mc_Recv));
  g = mc_group_new(2);
  if (g == NULL)
    return luaL_error(L, "not enough memory");
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
  return NULL;
}

static void port_lend (lua_State *L, void *obj, mc_Xfer *x) {
  mc_Recv *p = (mc_Recv *)obj;
  (void)L;
  mc_group_incref(p->group);
  x->ptr = p->group;
  x->aux = p->end;
  p->lent = 1;
}

static void port_unlend (mc_Xfer *x) {
  mc_group_decref((mc_Group *)x->ptr);
}

static void port_keep (void *obj) {
  ((mc_Recv *)obj)->lent = 0;
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
  p->lent = 0;
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
  mc_recv_kick_safe(L, idx, p);  /* the message is taken: must not fail */
  mc_recv_repin(L, idx, p);
  mc_recv_repin_peer(L, p->group, p->end);
}

static const mc_Type port_type = {
  "MessagePort", PORT_MT, 1,
  0, NULL, NULL, NULL,
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
    {"start", port_start},
    {"close", port_close},
    {"ref", port_ref},
    {"unref", port_unref},
    {"hasRef", port_hasRef},
    {NULL, NULL}
  };
  static const luaL_Reg funcs[] = {
    {"channel", port_channel},
    {NULL, NULL}
  };
  int ctx = lua_gettop(L);
  luaL_newmetatable(L, PORT_MT);
  mc_setfuncs(L, meta, mc_ctx_upvalues(L, ctx));
  lua_newtable(L);
  mc_setfuncs(L, methods, mc_ctx_upvalues(L, ctx));  /* ..., mt, methods */
  mc_ctx_upvalues(L, ctx);
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, port__index, 3);
  lua_setfield(L, -3, "__index");
  lua_setfield(L, ctx - 1, "port_methods");
  lua_setfield(L, ctx - 1, "port_metatable");
  mc_ctx_add_type(L, &port_type);
  mc_ctx_setfuncs(L, funcs);
}
