/*
** shim.c: messagechannel.core for the workers of spec/oom/host.c. The
** module is compiled into that program; a worker's state finds it the
** usual way, through package.cpath, as this library, which hands over to
** the program's copy (oom_open_core, exported by the program).
*/
#include "lua.h"

int oom_open_core (lua_State *L);
int luaopen_messagechannel_core (lua_State *L);

int luaopen_messagechannel_core (lua_State *L) {
  return oom_open_core(L);
}
