/*
** compat.h: the only place that tests LUA_VERSION_NUM.
** It presents the Lua 5.4 API names (and a few helpers named mc_...) to the
** rest of the sources, for Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT 2.1.
*/
#ifndef mc_compat_h
#define mc_compat_h

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* MC_YIELDABLE_CALL: a C function can call a function that may yield
** (lua_callk), and end where the call returns. Lua 5.3 and later: 5.2
** has lua_callk too, but every call there may run the collector first,
** which frees the call frames below the running function (sched.c makes
** one before a take, for the call after it). */
#if LUA_VERSION_NUM >= 503
#define MC_YIELDABLE_CALL 1
#else
#define MC_YIELDABLE_CALL 0
#endif

/* mc_yield_then(L, n, k): a C function's `return mc_yield_then(...)`
** yields the top n values. Where Lua has continuations (5.2 and later,
** MC_YIELD_THEN), the resume then calls k, declared MC_KFUNCTION(k),
** whose results are the function's; elsewhere the resume's values are. */
#if LUA_VERSION_NUM >= 503
#define MC_YIELD_THEN 1
#define MC_KFUNCTION(k) \
  int k (lua_State *L, int mc_status, lua_KContext mc_ctx)
#define MC_KUNUSED ((void)mc_status, (void)mc_ctx)
#define mc_yield_then(L, n, k) lua_yieldk(L, (n), 0, (k))
#elif LUA_VERSION_NUM == 502
#define MC_YIELD_THEN 1
#define MC_KFUNCTION(k) int k (lua_State *L)
#define MC_KUNUSED ((void)0)
#define mc_yield_then(L, n, k) lua_yieldk(L, (n), 0, (k))
#else
#define MC_YIELD_THEN 0
#define mc_yield_then(L, n, k) lua_yield(L, (n))
#endif

#if LUA_VERSION_NUM == 501

/* LuaJIT 2.1 has these of 5.2 (its lauxlib.h defines luaL_newlib too). */
#if defined(luaL_newlib)
#define MC_HAS_52_AUX 1
#else
#define MC_HAS_52_AUX 0
#endif

#define mc_rawlen(L, i) lua_objlen(L, (i))
#if defined(LUA_LJDIR)  /* LuaJIT 2.1 has 5.2's lua_copy */
#define mc_copy_slot(L, from, to) lua_copy(L, (from), (to))
#else
#define mc_copy_slot(L, from, to) \
  (lua_pushvalue(L, (from)), lua_replace(L, (to)))
#endif
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
#define mc_copy_slot(L, from, to) lua_copy(L, (from), (to))
#define mc_absindex(L, i) lua_absindex(L, (i))
#define mc_setfuncs luaL_setfuncs
#define mc_testudata luaL_testudata

#endif

/* LuaJIT's hooks are global: lua_sethook on any of its coroutines sets
** the one hook of the whole state. Lua's are each coroutine's own. */
#if defined(LUA_LJDIR)
#define MC_GLOBAL_HOOKS 1
#else
#define MC_GLOBAL_HOOKS 0
#endif

/* Whether L can yield here: 1 or 0, or -1 where the Lua version does not
** tell (5.1, 5.2). */
#if LUA_VERSION_NUM >= 503 || defined(LUA_LJDIR)
#define mc_isyieldable(L) (lua_isyieldable(L) != 0)
#else
#define mc_isyieldable(L) ((void)(L), -1)
#endif

/* The checks of coroutine.resume and coroutine.wrap on their first
** argument, with the base library's messages. */
#if LUA_VERSION_NUM >= 504
#define mc_check_coroutine(L, ok) luaL_argexpected(L, (ok), 1, "thread")
#elif LUA_VERSION_NUM == 503
#define mc_check_coroutine(L, ok) luaL_argcheck(L, (ok), 1, "thread expected")
#else
#define mc_check_coroutine(L, ok) \
  luaL_argcheck(L, (ok), 1, "coroutine expected")
#endif
#if LUA_VERSION_NUM == 501
#define mc_check_body(L) \
  luaL_argcheck(L, lua_isfunction(L, 1) && !lua_iscfunction(L, 1), 1, \
                "Lua function expected")
#else
#define mc_check_body(L) luaL_checktype(L, 1, LUA_TFUNCTION)
#endif

/*
** coroutine.resume as the base library does it, in three steps, so that
** a worker's wrapper (worker.c) resumes with lua_resume itself and nests
** as deep as the base library's: mc_resume_check (the checks before; -1
** with the message at the top of L when co cannot be resumed), then,
** once the narg values are moved to co, mc_resume (lua_resume, with the
** count of co's results in *nres), then mc_resume_results (moves them to
** L and returns their count, or -1 with the error value at the top).
** LuaJIT's are not needed (its
** hooks are global: its workers keep the base library's functions).
*/
#if !MC_GLOBAL_HOOKS
#if LUA_VERSION_NUM == 501
static inline int mc_resume_check (lua_State *L, lua_State *co, int narg) {
  static const char *const names[] = {"running", "normal", "dead"};
  lua_Debug ar;
  int st = -1;  /* suspended */
  if (L == co)
    st = 0;
  else if (lua_status(co) != 0 && lua_status(co) != LUA_YIELD)
    st = 2;
  else if (lua_status(co) == 0 && lua_getstack(co, 0, &ar) > 0)
    st = 1;
  else if (lua_status(co) == 0 && lua_gettop(co) == 0)
    st = 2;
  if (!lua_checkstack(co, narg))
    luaL_error(L, "too many arguments to resume");
  if (st >= 0) {
    lua_pushfstring(L, "cannot resume %s coroutine", names[st]);
    return -1;
  }
  return 0;
}
static inline int mc_resume (lua_State *co, lua_State *from, int narg,
                             int *nres) {
  int st;
  lua_setlevel(from, co);
  st = lua_resume(co, narg);
  *nres = lua_gettop(co);
  return st;
}
#else
static inline int mc_resume_check (lua_State *L, lua_State *co, int narg) {
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
#if LUA_VERSION_NUM < 504  /* 5.4's lua_resume checks it */
  if (lua_status(co) == LUA_OK && lua_gettop(co) == 0) {
    lua_pushliteral(L, "cannot resume dead coroutine");
    return -1;
  }
#endif
  return 0;
}
#if LUA_VERSION_NUM >= 504
#define mc_resume(co, from, narg, nres) lua_resume(co, from, narg, nres)
#else
static inline int mc_resume (lua_State *co, lua_State *from, int narg,
                             int *nres) {
  int st = lua_resume(co, from, narg);
  *nres = lua_gettop(co);
  return st;
}
#endif
#endif

static inline int mc_resume_results (lua_State *L, lua_State *co, int st,
                                     int nres) {
  if (st != 0 && st != LUA_YIELD) {
    lua_xmove(co, L, 1);  /* the error value */
    return -1;
  }
  if (!lua_checkstack(L, nres + 1)) {
#if LUA_VERSION_NUM == 501
    luaL_error(L, "too many results to resume");
#endif
    lua_pop(co, nres);
    lua_pushliteral(L, "too many results to resume");
    return -1;
  }
  lua_xmove(co, L, nres);
  return nres;
}

/* Lua 5.4's coroutine.close: whether co cannot be closed ("running",
** "normal") or can (NULL), and the closing itself (its to-be-closed
** variables' __close run in co), as the base library does both. */
#if LUA_VERSION_NUM >= 504
#define MC_COROUTINE_CLOSE 1
#if LUA_VERSION_RELEASE_NUM >= 50406
#define mc_closethread(co, from) lua_closethread(co, from)
#else
#define mc_closethread(co, from) ((void)(from), lua_resetthread(co))
#endif
static inline const char *mc_unclosable (lua_State *L, lua_State *co) {
  lua_Debug ar;
  if (L == co)
    return "running";
  if (lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar))
    return "normal";
  return NULL;
}
#else
#define MC_COROUTINE_CLOSE 0
#endif

/* What coroutine.wrap's function does on an error of co before it raises
** the value at the top of L: on 5.4, co's to-be-closed variables are
** closed (their __close run in co), which gives the status for
** mc_wrap_where; then mc_wrap_where puts the caller's position before a
** string (a number too before 5.3; not after a memory error). */
static inline int mc_wrap_close (lua_State *L, lua_State *co) {
#if LUA_VERSION_NUM >= 504
  int st = lua_status(co);
  if (st != LUA_OK && st != LUA_YIELD) {
    st = mc_closethread(co, L);
    lua_xmove(co, L, 1);
  }
  return st;
#else
  (void)L;
  (void)co;
  return LUA_ERRRUN;
#endif
}

static inline void mc_wrap_where (lua_State *L, int st) {
#if LUA_VERSION_NUM >= 503
  if (st == LUA_ERRMEM || lua_type(L, -1) != LUA_TSTRING)
    return;
#else
  (void)st;
  if (!lua_isstring(L, -1))
    return;
#endif
  luaL_where(L, 1);  /* the caller's position */
  lua_insert(L, -2);
  lua_concat(L, 2);
}
#endif

/*
** Where the running Lua puts a key in a table's hash part. Lua looks a key
** up from its main position, so keys that share one make a chain that
** every lookup among them walks; codec.c counts that work for the keys a
** sender can choose (docs/FORMAT.md). In a hash part of 2^lg nodes the
** main position of a key with hash h is node h & (2^lg - 1) for a key of
** kind MC_HASH_MASK, node h % ((2^lg - 1) | 1) for MC_HASH_MOD.
** mc_hashint and mc_hashnum give the kind and h of a number key (not NaN),
** mc_hashstr of a string key, or 0 for one whose place the sender cannot
** choose: Lua 5.1 to 5.4 and LuaJIT hash numbers without a seed, only
** 5.1 strings (MC_HASH_STRINGS). These follow the sources of each version
** (ltable.c, LuaJIT's lj_tab.h); codec.c checks them against the running
** Lua when it loads, and counts nothing when they differ. A string key's
** kind has MC_HASH_STRING too (codec.c counts its probes apart). Lua 5.2
** and 5.3 seed their string hash, but it reads at most 32 bytes of a
** string, the same ones whatever the seed: strings that agree there share
** a place in every table. Their mc_hashstr adds MC_HASH_SEEDED, with an h
** of those bytes, as a seeded hash would place them: the same h for
** strings of one place, h apart at random for others.
*/
#define MC_HASH_MASK 1
#define MC_HASH_MOD 2
#define MC_HASH_STRING 4
#define MC_HASH_SEEDED 8

/* The log2 of the size of the hash part lua_createtable gives for nrec
** keys (nrec > 0). */
static inline int mc_nodelg (unsigned long nrec) {
  int lg = 0;
#if defined(LUA_LJDIR)  /* LuaJIT: never fewer than 2 nodes */
  if (nrec == 1)
    return 1;
#endif
  while ((1ul << lg) < nrec)
    lg++;
  return lg;
}

#if LUA_VERSION_NUM >= 503

/* Integers: Lua 5.4.4 and later take them modulo, earlier ones mask. */
#if LUA_VERSION_NUM == 504 && LUA_VERSION_RELEASE_NUM >= 50404
#define MC_HASH_INT MC_HASH_MOD
#else
#define MC_HASH_INT MC_HASH_MASK
#endif

static inline int mc_hashint (lua_Integer i, uint64_t *h) {
  *h = (uint64_t)i;
  return MC_HASH_INT;
}

/* A float with an integral value is stored as that integer; others go
** by l_hashfloat. */
static inline int mc_hashnum (lua_Number x, uint64_t *h) {
  double n = (double)x;
  int e;
  unsigned int u;
  if (n >= -9223372036854775808.0 && n < 9223372036854775808.0
      && n == floor(n))
    return mc_hashint((lua_Integer)n, h);
  n = frexp(n, &e) * -(double)INT_MIN;
  if (!(n >= -9223372036854775808.0 && n < 9223372036854775808.0))
    u = 0;  /* an infinity */
  else {
    u = (unsigned int)e + (unsigned int)(long long)n;
    u = u <= (unsigned int)INT_MAX ? u : ~u;
  }
  *h = u;
  return MC_HASH_MOD;
}

#elif defined(LUA_LJDIR)  /* LuaJIT: hashrot of the bits, sign dropped */

static inline uint32_t mc_rol32 (uint32_t x, int n) {
  return (x << n) | (x >> (32 - n));
}

static inline int mc_hashnum (lua_Number x, uint64_t *h) {
  double d = (double)x;
  uint64_t bits;
  uint32_t lo, hi;
  memcpy(&bits, &d, sizeof bits);
  lo = (uint32_t)bits;
  hi = (uint32_t)(bits >> 32) << 1;
  lo ^= hi;  /* hashrot (both of its forms compute this) */
  lo -= mc_rol32(hi, 14);
  *h = (lo ^ mc_rol32(hi, 19)) - mc_rol32(lo, 13);
  return MC_HASH_MASK;
}

#elif LUA_VERSION_NUM == 502

static inline int mc_hashnum (lua_Number x, uint64_t *h) {
  double d = (double)x;
  int i;
  /* luai_hashnum adds the two halves of n + 1 where luaconf.h sets
  ** LUA_IEEE754TRICK: for every compiler but 32-bit MSVC, unless Lua is
  ** built strictly ANSI (as this module is, which hides the macro here) */
#if defined(LUA_IEEE754TRICK) || !(defined(_MSC_VER) && defined(_M_IX86))
  uint32_t w[2];
  d += 1.0;
  memcpy(w, &d, sizeof w);
  i = (int)(w[0] + w[1]);
#else
  int e;
  d = frexp(d, &e) * (double)(INT_MAX - DBL_MAX_EXP);
  i = (int)d + e;
#endif
  if (i < 0)
    i = (unsigned int)i == 0u - (unsigned int)i ? 0 : -i;
  *h = (uint64_t)i;
  return MC_HASH_MOD;
}

#else  /* Lua 5.1: numbers by their bits, strings without a seed */

#define MC_HASH_STRINGS 1
#define MC_INTERN_MAX ((size_t)-1)  /* every string is interned */
/* Strings of one bucket of the string table are compared (those of one
** length byte for byte), whatever their hashes: the bucket is the low
** bits of the hash, at least 16 of them once a message brings 65,536
** strings; a sender picks those bits. */
#define MC_INTERN_GROUP 0xffffu

static inline int mc_hashnum (lua_Number x, uint64_t *h) {
  double d = (double)x;
  uint32_t w[2];
  memcpy(w, &d, sizeof w);
  *h = d == 0 ? 0 : (uint32_t)(w[0] + w[1]);
  return MC_HASH_MOD;
}

static inline int mc_hashstr (const char *s, size_t len, uint64_t *h) {
  uint32_t x = (uint32_t)len;
  size_t step = (len >> 5) + 1, i;
  for (i = len; i >= step; i -= step)
    x ^= (x << 5) + (x >> 2) + (unsigned char)s[i - 1];
  *h = x;
  return MC_HASH_MASK | MC_HASH_STRING;
}

#endif

#if LUA_VERSION_NUM < 503
#define mc_hashint(i, h) mc_hashnum((lua_Number)(i), (h))
#endif

#if (LUA_VERSION_NUM == 502 || LUA_VERSION_NUM == 503) \
    && !defined(LUA_LJDIR)
#define MC_HASH_STRINGS 1
#define MC_INTERN_MAX 40  /* longer strings are not interned */
#define MC_INTERN_GROUP 0xffffffffu  /* seeded: only strings that read
                                     ** alike share a bucket */

/* The bytes luaS_hash reads (from the last, in steps), with the length. */
static inline int mc_hashstr (const char *s, size_t len, uint64_t *h) {
  uint64_t x = (uint64_t)len * 0x9e3779b97f4a7c15u;
  size_t step = (len >> 5) + 1, i;
  for (i = len; i >= step; i -= step)
    x = (x ^ (unsigned char)s[i - 1]) * 0x100000001b3u;
  *h = (x ^ x >> 32) & 0xffffffffu;
  return MC_HASH_MASK | MC_HASH_STRING | MC_HASH_SEEDED;
}
#endif

#if !defined(MC_HASH_STRINGS)
#define MC_HASH_STRINGS 0
#define MC_INTERN_MAX 0
#define MC_INTERN_GROUP 0u
#define mc_hashstr(s, len, h) ((void)(s), (void)(len), (void)(h), 0)
#endif

/* The same for the key at idx. */
static inline int mc_keyhash (lua_State *L, int idx, uint64_t *h) {
  size_t len;
  const char *s;
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      if (mc_isinteger(L, idx))
        return mc_hashint(lua_tointeger(L, idx), h);
      return mc_hashnum(lua_tonumber(L, idx), h);
    case LUA_TSTRING:
      if (!MC_HASH_STRINGS)
        return 0;
      s = lua_tolstring(L, idx, &len);
      return mc_hashstr(s, len, h);
    default:
      return 0;
  }
}

#endif
