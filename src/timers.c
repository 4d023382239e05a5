/*
** timers.c: the scheduler's timer heap (lua/messagechannel/scheduler.lua),
** changed only by C functions, so that each change is whole.
**
** A hook may raise at any instruction of Lua code (an instruction limit,
** the standalone interpreter's Ctrl-C): a sift written in Lua that it
** stops leaves one entry twice and another gone. No hook runs inside a C
** function, and the stores here allocate nothing (their keys exist), so a
** push, a pop or a compaction happens whole or not at all.
**
** The heap is a Lua table: [0] the count n, [1..n] the entries, the
** earliest first. An entry is a table with fields t (when it falls due)
** and seq (its order among those of the same t), compared in that order,
** and dead (true once cancelled).
*/
#include "compat.h"
#include "mc.h"

/* The key of the entry at the top of the stack: its t and seq. */
static void key_at_top (lua_State *L, lua_Number *t, lua_Number *seq) {
  lua_getfield(L, -1, "t");
  lua_getfield(L, -2, "seq");
  *t = lua_tonumber(L, -2);
  *seq = lua_tonumber(L, -1);
  lua_pop(L, 2);
}

/* The key of the entry at heap[i] (heap at stack index 1). */
static void key_of (lua_State *L, lua_Integer i, lua_Number *t,
                    lua_Number *seq) {
  lua_rawgeti(L, 1, (int)i);
  key_at_top(L, t, seq);
  lua_pop(L, 1);
}

static int before (lua_Number t, lua_Number seq, lua_Number u,
                   lua_Number useq) {
  return t < u || (t == u && seq < useq);
}

static lua_Integer count (lua_State *L) {
  lua_Integer n;
  lua_rawgeti(L, 1, 0);
  n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return n;
}

/* Moves the entry at the top of the stack, of key (t, seq), down from
** slot i of a heap of n entries and stores it where it belongs. */
static void sift_down (lua_State *L, lua_Integer i, lua_Integer n,
                       lua_Number t, lua_Number seq) {
  for (;;) {
    lua_Integer c = 2 * i;
    lua_Number at, aseq, bt, bseq;
    if (c > n)
      break;
    key_of(L, c, &at, &aseq);
    if (c < n) {
      key_of(L, c + 1, &bt, &bseq);
      if (before(bt, bseq, at, aseq)) {
        c++;
        at = bt;
        aseq = bseq;
      }
    }
    if (!before(at, aseq, t, seq))
      break;
    lua_rawgeti(L, 1, (int)c);
    lua_rawseti(L, 1, (int)i);
    i = c;
  }
  lua_rawseti(L, 1, (int)i);
}

/* timers_push(heap, e): puts e in the heap. Its slot, n + 1, must hold e
** already (the scheduler's new_timer makes it, where making it may run
** out of memory with nothing changed). */
static int timers_push (lua_State *L) {
  lua_Integer n, i;
  lua_Number t, seq;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  n = count(L);
  lua_rawgeti(L, 1, (int)(n + 1));
  luaL_argcheck(L, n >= 0 && lua_rawequal(L, 2, 3), 2,
                "not in the slot after the heap's end");
  lua_pop(L, 1);
  lua_pushvalue(L, 2);
  key_at_top(L, &t, &seq);
  lua_pop(L, 1);
  for (i = n + 1; i > 1; ) {
    lua_Integer p = i / 2;
    lua_Number pt, pseq;
    key_of(L, p, &pt, &pseq);
    if (!before(t, seq, pt, pseq))
      break;
    lua_rawgeti(L, 1, (int)p);
    lua_rawseti(L, 1, (int)i);
    i = p;
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, 1, (int)i);
  lua_pushinteger(L, n + 1);
  lua_rawseti(L, 1, 0);
  return 0;
}

/* timers_pop(heap): takes the earliest entry out and returns it (nothing
** when the heap is empty). */
static int timers_pop (lua_State *L) {
  lua_Integer n;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  n = count(L);
  if (n <= 0)
    return 0;
  lua_rawgeti(L, 1, 1);  /* 2: the top, returned */
  lua_rawgeti(L, 1, (int)n);  /* 3: the last */
  lua_pushnil(L);
  lua_rawseti(L, 1, (int)n);
  lua_pushinteger(L, n - 1);
  lua_rawseti(L, 1, 0);
  if (n > 1) {
    lua_Number t, seq;
    key_at_top(L, &t, &seq);
    sift_down(L, 1, n - 1, t, seq);  /* stores the last */
  }
  else
    lua_pop(L, 1);
  return 1;
}

/* timers_compact(heap): drops the dead entries and makes the rest a heap
** again; returns how many are left. */
static int timers_compact (lua_State *L) {
  lua_Integer n, m = 0, i;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  n = count(L);
  for (i = 1; i <= n; i++) {
    int dead;
    lua_rawgeti(L, 1, (int)i);
    lua_getfield(L, -1, "dead");
    dead = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (dead)
      lua_pop(L, 1);
    else
      lua_rawseti(L, 1, (int)++m);
  }
  for (i = m + 1; i <= n; i++) {
    lua_pushnil(L);
    lua_rawseti(L, 1, (int)i);
  }
  for (i = m / 2; i >= 1; i--) {
    lua_Number t, seq;
    lua_rawgeti(L, 1, (int)i);
    key_at_top(L, &t, &seq);
    sift_down(L, i, m, t, seq);
  }
  lua_pushinteger(L, m);
  lua_rawseti(L, 1, 0);
  lua_pushinteger(L, m);
  return 1;
}

void mc_timers_open (lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"timers_push", timers_push},
    {"timers_pop", timers_pop},
    {"timers_compact", timers_compact},
    {NULL, NULL}
  };
  mc_ctx_setfuncs(L, funcs);
}
