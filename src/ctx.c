/*
** ctx.c: the per-state context, in one place. Each Lua state that loads
** the module has one context table, kept in the registry so that every
** load of the module in that state shares it; the module's C functions
** get it as upvalue 1, and its C half as upvalue 2. The table's slots
** (MC_CTX_* in mc.h) hold the Lua values: the objects by id, the pinned
** objects, the run queue, the codec's scratch, registered metatables. Its
** C half, mc_Ctx, holds the state's hub, the id allocator and the types of
** the module's objects.
**
** Ids: an object that another thread may have news for (a port, a Worker
** handle) is registered with an id, which the hub queues when told. Ids of
** collected objects are used again, so that the object table stays as
** small as the number of objects alive.
*/
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "mc.h"

#define CTX_KEY "messagechannel.context"
#define CTX_MT "messagechannel.Context"

mc_Ctx *mc_ctx (lua_State *L) {
  return (mc_Ctx *)lua_touserdata(L, lua_upvalueindex(2));
}

int mc_ctx_upvalues (lua_State *L, int ctx) {
  ctx = mc_absindex(L, ctx);
  lua_pushvalue(L, ctx);
  lua_rawgeti(L, ctx, MC_CTX_C);
  return 2;
}

mc_Hub *mc_ctx_hub (lua_State *L) {
  mc_Hub *h = mc_ctx(L)->hub;
  if (h == NULL) {
    lua_pushliteral(L, "messagechannel: the Lua state is closing");
    lua_error(L);
  }
  return h;
}

static void link_at (mc_CtxLink *head, mc_CtxLink *l,
                     void (*close) (mc_CtxLink *l)) {
  l->close = close;
  l->prev = head;
  l->next = head->next;
  head->next->prev = l;
  head->next = l;
}

void mc_ctx_link (lua_State *L, mc_CtxLink *l, void (*close) (mc_CtxLink *l)) {
  link_at(&mc_ctx(L)->links, l, close);
}

void mc_ctx_later (lua_State *L, mc_CtxLink *l,
                   void (*close) (mc_CtxLink *l)) {
  link_at(&mc_ctx(L)->later, l, close);
  mc_ctx_wake(L);
}

/* Closes each of the list at head: the newest first, or the oldest. */
static void close_all (mc_CtxLink *head, int oldest) {
  while (head->next != NULL && head->next != head) {
    mc_CtxLink *l = oldest ? head->prev : head->next;
    mc_ctx_unlink(l);
    l->close(l);
  }
}

void mc_ctx_run_later (mc_Ctx *c) {
  close_all(&c->later, 1);
}

void mc_ctx_unlink (mc_CtxLink *l) {
  if (l->next != NULL) {
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = NULL;
  }
}

static int ctx__gc (lua_State *L) {
  mc_Ctx *c = (mc_Ctx *)luaL_checkudata(L, 1, CTX_MT);
  close_all(&c->later, 1);
  close_all(&c->links, 0);
  if (c->hub != NULL) {
    mc_hub_close(c->hub);
    mc_net_unwatch(c->hub);  /* a step's watch dies with the state */
    mc_hub_decref(c->hub);
    c->hub = NULL;
  }
  free(c->news);
  free(c->held);
  free(c->freed);
  free(c->due);
  free(c->arrived);
  c->news = c->freed = NULL;
  c->due = NULL;
  c->arrived = NULL;
  c->capnews = c->nfreed = c->capfreed = c->capdue = c->caparrived = 0;
  return 0;
}

/* Fills the new context table at the top. */
static void make_ctx (lua_State *L, mc_Hub *hub) {
  mc_Ctx *c;
  int t = lua_gettop(L);
  c = (mc_Ctx *)mc_newuserdata(L, sizeof(mc_Ctx), 0);
  memset(c, 0, sizeof *c);
  c->links.prev = c->links.next = &c->links;
  c->later.prev = c->later.next = &c->later;
  if (luaL_newmetatable(L, CTX_MT)) {
    lua_pushcfunction(L, ctx__gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (hub != NULL)
    mc_hub_incref(hub);
  else if ((hub = mc_hub_new()) == NULL)
    luaL_error(L, "cannot make the scheduler's hub: %s", strerror(errno));
  c->hub = hub;
#if LUA_VERSION_NUM >= 502
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  c->main = lua_tothread(L, -1);
#else
  c->main = lua_pushthread(L) ? L : NULL;
#endif
  lua_pop(L, 1);
  {
    sigset_t set;
    c->interactive = pthread_sigmask(SIG_BLOCK, NULL, &set) == 0
                     && !sigismember(&set, SIGINT);
  }
  lua_rawseti(L, t, MC_CTX_C);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawseti(L, t, MC_CTX_OBJECTS);
  lua_newtable(L);
  lua_rawseti(L, t, MC_CTX_PINNED);
  lua_newtable(L);  /* a port's finalizer may queue a token at any time */
  lua_pushinteger(L, 0);
  lua_rawseti(L, -2, 0);
  lua_rawseti(L, t, MC_CTX_RUNQ);
  lua_newtable(L);
  lua_rawseti(L, t, MC_CTX_NAME2MT);
  lua_newtable(L);
  lua_rawseti(L, t, MC_CTX_MT2NAME);
  lua_newtable(L);
  lua_rawseti(L, t, MC_CTX_OWN_MT);
}

void mc_ctx_open (lua_State *L, mc_Hub *hub) {
  lua_getfield(L, LUA_REGISTRYINDEX, CTX_KEY);
  if (lua_istable(L, -1))
    return;
  lua_pop(L, 1);
  lua_createtable(L, MC_CTX_KEYS + 24, 0);
  make_ctx(L, hub);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, CTX_KEY);
}

void mc_ctx_setfuncs (lua_State *L, const luaL_Reg *l) {
  lua_pushvalue(L, -2);
  mc_setfuncs(L, l, mc_ctx_upvalues(L, -2));
  lua_pop(L, 1);
}

uint32_t mc_ctx_register (lua_State *L, int idx) {
  mc_Ctx *c = mc_ctx(L);
  uint32_t id;
  int taken = 1;
  idx = mc_absindex(L, idx);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_OBJECTS);
  if (c->nfreed > 0)
    id = c->freed[--c->nfreed];
  else while (taken) {  /* 0 means none; after 2^32, skip those in use */
    id = ++c->next_id;
    lua_pushnumber(L, (lua_Number)id);
    lua_rawget(L, -2);
    taken = id == 0 || !lua_isnil(L, -1);
    lua_pop(L, 1);
  }
  lua_pushnumber(L, (lua_Number)id);
  lua_pushvalue(L, idx);
  lua_rawset(L, -3);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_PINNED);
  lua_pushnumber(L, (lua_Number)id);
  lua_rawget(L, -2);
  if (lua_isnil(L, -1))
    c->pinslots++;  /* a new slot (once set, below) */
  lua_pop(L, 1);
  lua_pushnumber(L, (lua_Number)id);
  lua_pushboolean(L, 0);
  lua_rawset(L, -3);
  lua_pop(L, 2);
  c->nlive++;
  return id;
}

/* Runs from a finalizer: allocates nothing from Lua. */
void mc_ctx_unregister (lua_State *L, uint32_t id) {
  mc_Ctx *c = mc_ctx(L);
  if (id == 0)
    return;
  c->nlive--;
  if (c->nfreed == c->capfreed) {
    size_t cap = c->capfreed ? c->capfreed * 2 : 64;
    uint32_t *f = (uint32_t *)realloc(c->freed, cap * sizeof *f);
    if (f == NULL)
      return;  /* the id is not used again */
    c->freed = f;
    c->capfreed = cap;
  }
  c->freed[c->nfreed++] = id;  /* a weak entry left (5.1) is overwritten
                                  when the id is used again */
}

/* An id that fits an int is looked up as one: an integral number is the
** same key in every Lua version, and the lookup is direct. */
void mc_ctx_push (lua_State *L, uint32_t id) {
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_OBJECTS);
  if (id <= (uint32_t)INT_MAX)
    lua_rawgeti(L, -1, (int)id);
  else {
    lua_pushnumber(L, (lua_Number)id);
    lua_rawget(L, -2);
  }
  lua_replace(L, -2);
}

void mc_ctx_arm_stop (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  if (c != NULL && c->stophook != NULL)
    lua_sethook(L, c->stophook, LUA_MASKCOUNT, 1);
}

void mc_ctx_rearm_stop (lua_State *L, lua_State *co) {
  mc_Ctx *c = NULL;
  lua_getfield(L, LUA_REGISTRYINDEX, CTX_KEY);
  if (lua_istable(L, -1)) {
    lua_rawgeti(L, -1, MC_CTX_C);
    c = (mc_Ctx *)lua_touserdata(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (c != NULL && c->stophook != NULL && c->hub != NULL
      && mc_hub_stopped(c->hub))
    lua_sethook(co, c->stophook, LUA_MASKCOUNT, 1);
}

int mc_ctx_raise_stop (lua_State *L) {
  mc_ctx_arm_stop(L);
  lua_pushliteral(L, MC_TERMINATED);
  return lua_error(L);
}

void mc_ctx_check_stop (lua_State *L) {
  if (mc_hub_stopped(mc_ctx_hub(L)))
    mc_ctx_raise_stop(L);
}

void mc_ctx_wake (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  if (c->looping)
    return;
  if (c->exposed && c->hub != NULL)
    mc_hub_ping(c->hub);
  if (c->waker) {  /* written not to raise; an error is dropped */
    lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_WAKER);
    if (lua_pcall(L, 0, 0, 0) != 0)
      lua_pop(L, 1);
  }
}

/* A change of what is pinned may change whether the scheduler has work
** that keeps it going: wake a host loop to step. */
void mc_ctx_pin (lua_State *L, int idx, uint32_t id, int on) {
  int was;
  idx = mc_absindex(L, idx);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_PINNED);
  lua_pushnumber(L, (lua_Number)id);
  lua_rawget(L, -2);
  was = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (was != on) {  /* the slot exists (mc_ctx_register): no allocation */
    lua_pushnumber(L, (lua_Number)id);
    if (on)
      lua_pushvalue(L, idx);
    else
      lua_pushboolean(L, 0);
    lua_rawset(L, -3);
  }
  lua_pop(L, 1);
  if (was != on)
    mc_ctx_wake(L);
}

static int cmp_id (const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Makes the context's table k again with its entries whose id is not
** among the n sorted freed ones, with its metatable; returns how many. */
static size_t remake (lua_State *L, int k, const uint32_t *freed, size_t n,
                      size_t size) {
  size_t kept = 0;
  lua_createtable(L, 0, (int)size);
  lua_rawgeti(L, lua_upvalueindex(1), k);
  if (lua_getmetatable(L, -1))
    lua_setmetatable(L, -3);
  lua_pushnil(L);
  while (lua_next(L, -2)) {  /* new, old, id, value */
    uint32_t id = (uint32_t)lua_tonumber(L, -2);
    if (bsearch(&id, freed, n, sizeof id, cmp_id) == NULL) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -5);  /* new[id] = value */
      kept++;
    }
    else
      lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_rawseti(L, lua_upvalueindex(1), k);  /* an existing key */
  return kept;
}

/* The pinned table has a slot for each id ever registered, kept when its
** object is collected, so that pinning never allocates; so has the
** objects table. Freed ids are used again, but tables grown by a burst of
** objects stay as large, and busy() walks the pinned one at every
** mc.step(). Once fewer than a quarter of the slots are live ids, both
** are made again with those only (out of memory, the old ones stay,
** whole: the objects table is replaced last, and keeping more of it
** than needed is harmless). */
void mc_ctx_trim_ids (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  uint32_t *freed;
  size_t nfreed = c->nfreed, size = c->nlive < 64 ? 64 : c->nlive;
  if (c->pinslots <= 256 || c->nlive >= c->pinslots / 4)
    return;
  freed = (uint32_t *)lua_newuserdata(L, (nfreed ? nfreed : 1)
                                          * sizeof *freed);
  if (nfreed > 0)
    memcpy(freed, c->freed, nfreed * sizeof *freed);
  qsort(freed, nfreed, sizeof *freed, cmp_id);
  c->pinslots = remake(L, MC_CTX_PINNED, freed, nfreed, size);
  (void)remake(L, MC_CTX_OBJECTS, freed, nfreed, size);
  lua_pop(L, 1);
}

size_t mc_ctx_enqueue (lua_State *L, int idx, size_t n) {
  mc_Ctx *c = mc_ctx(L);
  long long tail = c->tail;
  size_t k;
  int was_empty = tail == 0 && n > 0;
  c->lost++;  /* until the tokens are in: an error (out of memory) leaves
              ** it set, and the receiver's next kick could be far off */
  idx = mc_absindex(L, idx);
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_RUNQ);
  for (k = 0; k < n; k++) {
    if (c->noalloc && tail >= c->room) {  /* not known to exist */
      int none;
      lua_rawgeti(L, -1, (int)tail + 1);
      none = lua_isnil(L, -1);
      lua_pop(L, 1);
      if (none) {  /* the rest comes with the next poll's look */
        c->lost++;
        was_empty = 1;  /* which a host loop must be woken for */
        break;
      }
    }
    lua_pushvalue(L, idx);
    lua_rawseti(L, -2, (int)++tail);
  }
  lua_pushinteger(L, (lua_Integer)tail);
  lua_rawseti(L, -2, 0);
  lua_pop(L, 1);
  c->tail = tail;
  c->lost--;
  if (was_empty)
    mc_ctx_wake(L);
  return k;
}

/* A slot the run queue has already (c->room) is not looked at again: a
** post reserves one, and its kick queues its token there. */
void mc_ctx_reserve (lua_State *L, size_t n) {
  mc_Ctx *c = mc_ctx(L);
  long long i = (c->room > c->tail ? c->room : c->tail) + 1;
  long long upto = c->tail + (long long)n;
  if (i > upto)
    return;
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_RUNQ);
  for (; i <= upto; i++) {
    lua_rawgeti(L, -1, (int)i);
    if (lua_isnil(L, -1)) {
      lua_pushboolean(L, 0);
      lua_rawseti(L, -3, (int)i);
    }
    lua_pop(L, 1);
    c->room = i;
  }
  lua_pop(L, 1);
}

void mc_ctx_add_type (lua_State *L, const mc_Type *t) {
  mc_Ctx *c = mc_ctx(L);
  int i;
  for (i = 0; i < c->ntypes; i++)
    if (c->types[i] == t)
      return;
  if (c->ntypes == MC_MAXTYPES)
    luaL_error(L, "too many types");
  luaL_getmetatable(L, t->tname);
  c->typemt[c->ntypes] = lua_topointer(L, -1);
  lua_rawseti(L, lua_upvalueindex(1), -(c->ntypes + 1));  /* kept, so that
                                 ** no other table ever has its address */
  c->types[c->ntypes++] = t;
}

/* The types are few: their metatables' addresses are compared with the
** object's, which costs no table lookup. */
const mc_Type *mc_ctx_type (lua_State *L, int idx) {
  mc_Ctx *c;
  const void *mt;
  int i;
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
    return NULL;
  mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  c = mc_ctx(L);
  for (i = 0; i < c->ntypes; i++)
    if (c->typemt[i] == mt)
      return c->types[i];
  return NULL;
}

const char *mc_ctx_typename (lua_State *L, int idx) {
  /* the module's classes made in Lua: tables whose metatable's __name
  ** says so (lua/messagechannel) */
  static const char *const classes[] = {"MessageChannel", "Worker",
                                        "Listener", NULL};
  const mc_Type *t = mc_ctx_type(L, idx);
  const char *name = NULL;
  int i;
  if (t != NULL)
    return t->name;
  if (lua_type(L, idx) == LUA_TLIGHTUSERDATA)  /* as the clone errors and
                                              ** Lua 5.3's own name it */
    return "light userdata";
  if (lua_type(L, idx) == LUA_TTABLE && luaL_getmetafield(L, idx, "__name")) {
    if (lua_type(L, -1) == LUA_TSTRING)
      for (i = 0; classes[i] != NULL && name == NULL; i++)
        if (strcmp(lua_tostring(L, -1), classes[i]) == 0)
          name = classes[i];
    lua_pop(L, 1);
  }
  return name != NULL ? name : luaL_typename(L, idx);
}

/* Pushes the string at idx between quotes, a control byte (a NUL too)
** written as \ and its decimal code: an error message carries no raw
** control byte, and no "%s" of it is cut at a NUL. */
static const char *push_quoted (lua_State *L, int idx) {
  luaL_Buffer b;
  size_t len, i;
  const char *s = lua_tolstring(L, idx, &len);
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '\'');
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 32 || c == 127) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\%u", (unsigned)c);
      luaL_addstring(&b, esc);
    }
    else
      luaL_addchar(&b, (char)c);
  }
  luaL_addchar(&b, '\'');
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

const char *mc_ctx_keyname (lua_State *L, int idx) {
  idx = mc_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
      return push_quoted(L, idx);
    case LUA_TNUMBER:  /* on a copy: lua_tostring converts */
      lua_pushvalue(L, idx);
      lua_pushfstring(L, "[%s]", lua_tostring(L, -1));
      lua_remove(L, -2);
      return lua_tostring(L, -1);
    case LUA_TBOOLEAN:
      lua_pushstring(L, lua_toboolean(L, idx) ? "[true]" : "[false]");
      return lua_tostring(L, -1);
    default:
      return lua_pushfstring(L, "(a %s key)", mc_ctx_typename(L, idx));
  }
}

void *mc_ctx_testudata (lua_State *L, int idx, const mc_Type *t) {
  return mc_ctx_type(L, idx) == t ? lua_touserdata(L, idx) : NULL;
}

void *mc_ctx_checkudata (lua_State *L, int idx, const mc_Type *t) {
  void *p = mc_ctx_testudata(L, idx, t);
  if (p == NULL)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s expected, got %s", t->name,
                                          mc_ctx_typename(L, idx)));
  return p;
}

void mc_ctx_checktable (lua_State *L, int idx) {
  const char *name = mc_ctx_typename(L, idx);
  if (strcmp(name, "table") != 0)  /* a MessageChannel is no options */
    luaL_argerror(L, idx, lua_pushfstring(L, "table expected, got %s", name));
}

const mc_Type *mc_ctx_type_by_tag (lua_State *L, int tag) {
  mc_Ctx *c = mc_ctx(L);
  int i;
  for (i = 0; i < c->ntypes; i++)
    if (c->types[i]->clone_tag == tag)
      return c->types[i];
  return NULL;
}
