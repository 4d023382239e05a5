/*
** core.c: luaopen_messagechannel_core, the module's only exported symbol.
** Every function gets the module state table as upvalue 1.
*/
#include "compat.h"
#include "mc.h"

LUALIB_API int luaopen_messagechannel_core (lua_State *L);

LUALIB_API int luaopen_messagechannel_core (lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"structuredClone", mc_structured_clone},
    {"serialize", mc_serialize},
    {"deserialize", mc_deserialize},
    {"register", mc_register},
    {"Buffer", mc_buffer_new},
    {NULL, NULL}
  };
  mc_buffer_open(L);
  lua_newtable(L);  /* module */
  lua_newtable(L);  /* state */
  mc_codec_open(L);
  mc_port_open(L);
  mc_worker_open(L);
  mc_port_funcs(L);
  mc_worker_funcs(L);
  mc_setfuncs(L, funcs, 1);
  return 1;
}
