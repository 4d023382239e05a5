/*
** buffer.c: mc.Buffer, a byte buffer that messages copy (and, with a
** transfer list, move). The bytes live in their own allocation so that a
** transfer can hand them to a new Buffer without copying. Its mc_Type,
** at the end, says both ways to the clone and the message code.
*/
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "mc.h"

#define BUFFER_MT "messagechannel.Buffer"
#define BUFFER_TAG 0x09  /* a copy in the clone format (docs/FORMAT.md) */

typedef struct mc_Buffer {
  unsigned char *data;  /* malloc'd, NULL when empty or detached */
  size_t len;
  int detached;
  int lent;  /* a message being made borrows its bytes */
} mc_Buffer;

static const mc_Type buffer_type;

static mc_Buffer *check_buffer (lua_State *L) {
  return (mc_Buffer *)mc_ctx_checkudata(L, 1, &buffer_type);
}

static mc_Buffer *check_live (lua_State *L) {
  mc_Buffer *b = check_buffer(L);
  if (b->detached)
    luaL_error(L, "InvalidStateError: the Buffer is detached");
  return b;
}

/* Pushes a new, empty Buffer: the one step that may run the collector
** (and so a finalizer). */
static mc_Buffer *new_buffer (lua_State *L) {
  mc_Buffer *b = (mc_Buffer *)mc_newuserdata(L, sizeof(mc_Buffer), 0);
  b->data = NULL;
  b->len = 0;
  b->detached = 0;
  b->lent = 0;
  luaL_getmetatable(L, BUFFER_MT);
  lua_setmetatable(L, -2);
  return b;
}

/* Gives b, new, a copy of len bytes of src (zeros if NULL). */
static void fill_bytes (lua_State *L, mc_Buffer *b, const void *src,
                        size_t len) {
  if (len > 0) {
    b->data = (unsigned char *)(src ? malloc(len) : calloc(len, 1));
    if (b->data == NULL)
      luaL_error(L, "not enough memory");
    if (src) {
      mc_bytes_will_fill(b->data, len);
      memcpy(b->data, src, len);
    }
    b->len = len;
  }
}

/* Pushes a new Buffer holding a copy of len bytes of src (zeros if NULL),
** which nothing the collector runs can free (a Lua string on the stack,
** a message's bytes). */
static mc_Buffer *push_buffer (lua_State *L, const void *src, size_t len) {
  mc_Buffer *b = new_buffer(L);
  fill_bytes(L, b, src, len);
  return b;
}

/* mc.Buffer(n) or mc.Buffer(s) */
static int buffer_new (lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    push_buffer(L, s, len);
  }
  else if (lua_type(L, 1) == LUA_TNUMBER) {
    lua_Number n = lua_tonumber(L, 1);
    luaL_argcheck(L, n >= 0 && n == floor(n) && n < HUGE_VAL, 1,
                  "size must be a non-negative integer");
    if (n >= 9.0e15)  /* no allocation can hold it */
      luaL_error(L, "not enough memory");
    push_buffer(L, NULL, (size_t)n);
  }
  else
    luaL_argerror(L, 1, lua_pushfstring(L, "number or string expected, "
                                        "got %s", mc_ctx_typename(L, 1)));
  return 1;
}

/* Translates string.sub-style positions i..j (negative from the end) into
** a 0-based start and a length, clipped to the buffer. */
static void range (size_t len, lua_Integer i, lua_Integer j,
                   size_t *start, size_t *n) {
  lua_Integer l = (lua_Integer)len;
  if (i < 0) i = i < -l ? 1 : l + i + 1;
  else if (i == 0) i = 1;
  if (j < 0) j = j < -l ? 0 : l + j + 1;
  else if (j > l) j = l;
  *start = i > j ? 0 : (size_t)(i - 1);
  *n = i > j ? 0 : (size_t)(j - i) + 1;
}

static int buffer_sub (lua_State *L) {
  mc_Buffer *b = check_live(L);
  lua_Integer i = luaL_optinteger(L, 2, 1);  /* checked before j, as */
  size_t start, n;                            /* string.sub does */
  range(b->len, i, luaL_optinteger(L, 3, -1), &start, &n);
#if LUA_VERSION_NUM < 503
  /* lua_pushlstring runs the collector before it copies, and a finalizer
  ** may free the bytes then (__gc called by hand): they are copied first
  ** into a block of the stack's, and read once that block exists. */
  if (n > 0) {
    char *tmp = (char *)lua_newuserdata(L, n);
    if (b->detached)
      return luaL_error(L, "InvalidStateError: the Buffer is detached");
    memcpy(tmp, b->data + start, n);
    lua_pushlstring(L, tmp, n);
    return 1;
  }
#endif
  lua_pushlstring(L, n ? (const char *)b->data + start : "", n);
  return 1;
}

static int buffer_byte (lua_State *L) {
  mc_Buffer *b = check_live(L);
  lua_Integer i = luaL_optinteger(L, 2, 1);
  size_t start, n, k;
  range(b->len, i, luaL_optinteger(L, 3, i), &start, &n);
  if (n >= (size_t)INT_MAX || !lua_checkstack(L, (int)n))
    return luaL_error(L, "string slice too long");
  for (k = 0; k < n; k++)
    lua_pushinteger(L, b->data[start + k]);
  return (int)n;
}

/* buf:write(pos, s): writes s over the bytes from pos (1-based, or negative
** from the end); raises when s does not fit inside the buffer. */
static int buffer_write (lua_State *L) {
  mc_Buffer *b = check_live(L);
  lua_Integer pos = luaL_checkinteger(L, 2);
  size_t n;
  const char *s = luaL_checklstring(L, 3, &n);
  lua_Integer l = (lua_Integer)b->len;
  if (b->lent)  /* the message reads these bytes: they stay as posted */
    luaL_error(L, "InvalidStateError: the Buffer is lent to a postMessage "
                  "that has not sent it yet");
  if (pos < 0)
    pos = pos < -l ? 0 : l + pos + 1;
  luaL_argcheck(L, pos >= 1 && (size_t)(pos - 1) <= b->len
                   && n <= b->len - (size_t)(pos - 1), 2,
                "write outside the buffer");
  if (n > 0)
    memcpy(b->data + (size_t)pos - 1, s, n);
  lua_settop(L, 1);
  return 1;
}

static int buffer__len (lua_State *L) {
  mc_Buffer *b = check_buffer(L);
  lua_pushinteger(L, (lua_Integer)b->len);
  return 1;
}

static int buffer__index (lua_State *L) {
  mc_Buffer *b = check_buffer(L);
  const char *k = lua_tostring(L, 2);
  if (k != NULL && strcmp(k, "detached") == 0) {
    lua_pushboolean(L, b->detached);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(3));
  return 1;
}

/* Raises "TypeError: cannot set field 'k' of Buffer", the key as
** tostring gives it (as a port's fields do). */
static int buffer__newindex (lua_State *L) {
  check_buffer(L);
  switch (lua_type(L, 2)) {
    case LUA_TSTRING:
    case LUA_TNUMBER:
      lua_pushvalue(L, 2);
      lua_tostring(L, -1);  /* the copy becomes the text */
      break;
    case LUA_TBOOLEAN:
      lua_pushstring(L, lua_toboolean(L, 2) ? "true" : "false");
      break;
    default:
      lua_pushfstring(L, "%s: %p", luaL_typename(L, 2), lua_topointer(L, 2));
      break;
  }
  return luaL_error(L, "TypeError: cannot set field '%s' of Buffer",
                    lua_tostring(L, -1));
}

static int buffer__tostring (lua_State *L) {
  mc_Buffer *b = check_buffer(L);
  char s[48];
  if (b->detached)
    lua_pushliteral(L, "Buffer (detached)");
  else {
    snprintf(s, sizeof s, "Buffer (%zu byte%s)", b->len,
             b->len == 1 ? "" : "s");
    lua_pushstring(L, s);
  }
  return 1;
}

static int buffer__gc (lua_State *L) {
  mc_Buffer *b = (mc_Buffer *)mc_testudata(L, 1, BUFFER_MT);
  /* not a Buffer: a call by hand; lent: the same, as the post that
  ** borrows the bytes still holds the Buffer (they go with it) */
  if (b == NULL || b->lent)
    return 0;
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->detached = 1;  /* a Buffer still reachable after its finalizer (a
                    ** resurrection, or a call by hand) holds nothing: it
                    ** reads as detached, not as an empty Buffer */
  return 0;
}


/*
** {======================================================
** The Buffer's mc_Type: copied as its bytes; moved by a transfer list as
** its allocation (a slot holds the pointer and the length).
** =======================================================
*/

static const char *buffer_uncloneable (void *obj) {
  return ((mc_Buffer *)obj)->detached ? "detached Buffer" : NULL;
}

static const void *buffer_bytes (void *obj, size_t *len) {
  mc_Buffer *b = (mc_Buffer *)obj;
  *len = b->len;
  return b->data;
}

static void buffer_make (lua_State *L, const void *p, size_t len) {
  push_buffer(L, p, len);
}

static const char *buffer_copy (lua_State *L, void *obj) {
  const mc_Buffer *src = (const mc_Buffer *)obj;
  mc_Buffer *b = new_buffer(L);
  const char *why = buffer_uncloneable(obj);
  if (why != NULL) {
    lua_pop(L, 1);
    return why;
  }
  fill_bytes(L, b, src->data, src->len);
  return NULL;
}

static const char *buffer_check (lua_State *L, void *obj,
                                 const mc_Group *from) {
  mc_Buffer *b = (mc_Buffer *)obj;
  (void)L;
  (void)from;
  if (b->lent)
    return "a Buffer that another transfer is moving";
  return b->detached ? "a detached Buffer" : NULL;
}

static void buffer_lend (lua_State *L, void *obj, mc_Xfer *x) {
  mc_Buffer *b = (mc_Buffer *)obj;
  (void)L;
  x->ptr = b->data;
  x->aux = b->len;
  b->lent = 1;
}

static void buffer_keep (lua_State *L, int idx) {
  void *obj = lua_touserdata(L, idx);
  ((mc_Buffer *)obj)->lent = 0;
}

/* The message owns the bytes now. */
static void buffer_commit (lua_State *L, int idx) {
  mc_Buffer *b = (mc_Buffer *)lua_touserdata(L, idx);
  b->data = NULL;
  b->len = 0;
  b->detached = 1;
  b->lent = 0;
}

static void buffer_drop (mc_Xfer *x, mc_Msg **freed) {
  (void)freed;
  free(x->ptr);
}

static void buffer_blank (lua_State *L, const mc_Xfer *x) {
  (void)x;
  push_buffer(L, NULL, 0);
}

/* A blank takes the bytes; so does a Buffer that gave them up for a
** message that could not be sent after all. */
static void buffer_fill (lua_State *L, int idx, mc_Xfer *x) {
  mc_Buffer *b = (mc_Buffer *)lua_touserdata(L, idx);
  b->data = (unsigned char *)x->ptr;
  b->len = x->aux;
  b->detached = 0;
  b->lent = 0;
}

static const mc_Type buffer_type = {
  "Buffer", BUFFER_MT, 0,
  BUFFER_TAG, buffer_uncloneable, buffer_bytes, buffer_make, buffer_copy,
  buffer_check, buffer_lend, NULL, buffer_keep, buffer_commit, buffer_drop,
  buffer_blank,
  buffer_fill
};

const mc_Type *mc_buffer_type (void) {
  return &buffer_type;
}

/* }====================================================== */


void mc_buffer_open (lua_State *L) {
  static const luaL_Reg methods[] = {
    {"sub", buffer_sub},
    {"byte", buffer_byte},
    {"write", buffer_write},
    {NULL, NULL}
  };
  static const luaL_Reg meta[] = {
    {"__len", buffer__len},
    {"__newindex", buffer__newindex},
    {"__tostring", buffer__tostring},
    {"__gc", buffer__gc},
    {NULL, NULL}
  };
  static const luaL_Reg funcs[] = {
    {"Buffer", buffer_new},
    {NULL, NULL}
  };
  int ctx = lua_gettop(L);
  luaL_newmetatable(L, BUFFER_MT);
  mc_setfuncs(L, meta, mc_ctx_upvalues(L, ctx));
  mc_ctx_upvalues(L, ctx);
  lua_newtable(L);
  mc_setfuncs(L, methods, mc_ctx_upvalues(L, ctx));
  lua_pushcclosure(L, buffer__index, 3);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "Buffer");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  mc_ctx_add_type(L, &buffer_type);
  mc_ctx_setfuncs(L, funcs);
}
