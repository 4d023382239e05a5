/*
** core.c: luaopen_messagechannel_core, the module's only exported symbol.
** Every function gets the state's context (ctx.c) as upvalues 1 and 2,
** so the files' openers run in a closure that has it too.
*/
#include "compat.h"
#include "mc.h"

#if defined(__GNUC__)
#define MC_EXPORT __attribute__((visibility("default")))
#else
#define MC_EXPORT
#endif

MC_EXPORT int luaopen_messagechannel_core (lua_State *L);

/* typename(v): what an argument error calls v (mc_ctx_typename), for the
** Lua side, which cannot tell a light userdata from a full one. */
static int type_name (lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushstring(L, mc_ctx_typename(L, 1));
  return 1;
}

/* open(module): fills the module table. */
static int open (lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"structuredClone", mc_structured_clone},
    {"serialize", mc_serialize},
    {"deserialize", mc_deserialize},
    {"register", mc_register},
    {"not_cloneable", mc_not_cloneable},
    {"typename", type_name},
    {NULL, NULL}
  };
  lua_pushvalue(L, lua_upvalueindex(1));  /* module, ctx */
  mc_codec_open(L);
  mc_message_open_ctx(L);
  mc_sched_open(L);
  mc_timers_open(L);
  mc_port_open(L);  /* before Buffer: the order types are named in */
  mc_buffer_open(L);
  mc_broadcast_open(L);
  mc_remote_open(L);
  mc_worker_open(L);
  mc_ctx_setfuncs(L, funcs);
  lua_pop(L, 1);
  return 1;
}

MC_EXPORT int luaopen_messagechannel_core (lua_State *L) {
#if LUA_VERSION_NUM == 501
  /* Lua 5.1 and LuaJIT unload each C library from a finalizer of its own,
  ** made as it loads: a state closing runs it before those of objects
  ** made earlier, which may still call the module (they get "the Lua
  ** state is closing"). 5.2 on unload them all after every finalizer. */
  mc_keep_loaded();
#endif
  lua_newtable(L);
  mc_ctx_open(L, NULL);
  lua_pushcclosure(L, open, mc_ctx_upvalues(L, -1));
  lua_pushvalue(L, -3);
  lua_call(L, 1, 1);
  return 1;
}
