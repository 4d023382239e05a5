/*
** compat.h: the only place that tests LUA_VERSION_NUM.
** It presents the Lua 5.4 API names (and a few helpers named mc_...) to the
** rest of the sources, for Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT 2.1.
*/
#ifndef mc_compat_h
#define mc_compat_h

#include "lua.h"
#include "lauxlib.h"

/* Lua has integers of its own since 5.3; before, every number is a float. */
#if LUA_VERSION_NUM >= 503
#define MC_LUA_INTEGERS 1
#define mc_isinteger(L, i) lua_isinteger(L, (i))
#else
#define MC_LUA_INTEGERS 0
#define mc_isinteger(L, i) 0
#endif

/* A userdata's Lua values: one table, its (first) user value. */
#if LUA_VERSION_NUM >= 504
#define mc_newuserdata(L, sz, nuv) lua_newuserdatauv(L, (sz), (nuv))
#define mc_getuservalue(L, i) ((void)lua_getiuservalue(L, (i), 1))
#define mc_setuservalue(L, i) ((void)lua_setiuservalue(L, (i), 1))
#elif LUA_VERSION_NUM >= 502
#define mc_newuserdata(L, sz, nuv) lua_newuserdata(L, (sz))
#define mc_getuservalue(L, i) ((void)lua_getuservalue(L, (i)))
#define mc_setuservalue(L, i) lua_setuservalue(L, (i))
#else
#define mc_newuserdata(L, sz, nuv) lua_newuserdata(L, (sz))
#define mc_getuservalue(L, i) lua_getfenv(L, (i))
#define mc_setuservalue(L, i) ((void)lua_setfenv(L, (i)))
#endif

#if LUA_VERSION_NUM == 501

/* LuaJIT 2.1 has these of 5.2 (its lauxlib.h defines luaL_newlib too). */
#if defined(luaL_newlib)
#define MC_HAS_52_AUX 1
#else
#define MC_HAS_52_AUX 0
#endif

#define mc_rawlen(L, i) lua_objlen(L, (i))
#define mc_absindex(L, i) \
  (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)

#if MC_HAS_52_AUX
#define mc_setfuncs luaL_setfuncs
#define mc_testudata luaL_testudata
#else
static inline void mc_setfuncs (lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++)
      lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
static inline void *mc_testudata (lua_State *L, int i, const char *tname) {
  void *p = lua_touserdata(L, i);
  if (p != NULL && lua_getmetatable(L, i)) {
    int same;
    luaL_getmetatable(L, tname);
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (same)
      return p;
  }
  return NULL;
}
#endif

#else

#define mc_rawlen(L, i) lua_rawlen(L, (i))
#define mc_absindex(L, i) lua_absindex(L, (i))
#define mc_setfuncs luaL_setfuncs
#define mc_testudata luaL_testudata

#endif

#endif
