/*
** harness.c: a libFuzzer target around a check written in Lua. Built by
** `make fuzz` once per target, with FUZZ_TARGET naming the check
** (spec/fuzz/<target>.lua: a chunk that returns a function of the input)
** and FUZZ_ROOT the top of the source tree; the module's sources are
** compiled into the same binary. The check returns when the module
** behaved and raises when it did not; a raise is reported with its
** traceback and aborts, so that libFuzzer keeps the input, like a crash,
** a hang or a sanitizer report.
**
** libFuzzer's entry points take no context, so the Lua state is the one
** static here: made once, closed at exit so that LeakSanitizer sees any
** C memory the module failed to free.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#ifndef FUZZ_ROOT
#error "FUZZ_ROOT must name the top of the source tree"
#endif
#ifndef FUZZ_TARGET
#error "FUZZ_TARGET must name the check in spec/fuzz"
#endif

int luaopen_messagechannel_core (lua_State *L);
int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static lua_State *state;

static int traceback (lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

/* Runs the function below the top n arguments, or reports and aborts. */
static void call (lua_State *L, int n, int results, const char *what) {
  int base = lua_gettop(L) - n;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  if (lua_pcall(L, n, results, base) != 0) {
    fprintf(stderr, "fuzz %s: %s\n", what, lua_tostring(L, -1));
    abort();
  }
  lua_remove(L, base);
}

static void close_state (void) {
  lua_close(state);
  state = NULL;
}

int LLVMFuzzerInitialize (int *argc, char ***argv) {
  lua_State *L = luaL_newstate();
  (void)argc;
  (void)argv;
  if (L == NULL) {
    fprintf(stderr, "fuzz: cannot make a Lua state\n");
    abort();
  }
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushliteral(L, FUZZ_ROOT "/spec/fuzz/?.lua;" FUZZ_ROOT "/lua/?.lua;"
                  FUZZ_ROOT "/lua/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_messagechannel_core);
  lua_setfield(L, -2, "messagechannel.core");
  lua_pop(L, 2);
  if (luaL_loadfile(L, FUZZ_ROOT "/spec/fuzz/" FUZZ_TARGET ".lua") != 0) {
    fprintf(stderr, "fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  call(L, 0, 1, "setup");  /* check */
  if (lua_type(L, -1) != LUA_TFUNCTION) {
    fprintf(stderr, "fuzz: spec/fuzz/" FUZZ_TARGET ".lua returned no "
            "function\n");
    abort();
  }
  state = L;
  atexit(close_state);
  return 0;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  lua_State *L = state;
  lua_pushvalue(L, 1);  /* check, check */
  lua_pushlstring(L, (const char *)data, size);
  call(L, 1, 0, FUZZ_TARGET);
  lua_settop(L, 1);
  /* What the input made is freed before it ends (twice: an object with a
  ** finalizer is freed in the cycle after its finalizer ran). libFuzzer
  ** looks for leaks only after an input that allocated more blocks than it
  ** freed, so a balanced input costs no leak check, and a leak of the
  ** module's C memory is caught with the input that made it. */
  lua_gc(L, LUA_GCCOLLECT, 0);
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
