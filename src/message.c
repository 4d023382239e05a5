/*
** message.c: the one way a message is made and opened, for ports and
** workers alike; structuredClone with a transfer list moves its objects
** the same way.
**
** Sending: mc_message_make checks the transfer list (API 4.3), encodes the
** value (an object of the list is written as its index there) and makes a
** message whose slots borrow the payloads of the list's objects (their
** type's lend). The caller queues it somewhere, then commits it (each
** object's type detaches it) or gives it back (mc_msg_unlend). Nothing is
** detached before the message is queued, so a post that raises or finds
** its port closed leaves every object as it was.
**
** Receiving: mc_message_read makes a blank object for each slot and
** decodes the bytes with them; mc_message_fill then hands each slot's
** payload to its object. A message that cannot be decoded is left whole,
** for its owner to keep or to free.
**
** What a transferable is, this file learns only from its mc_Type.
*/
#include <string.h>

#include "compat.h"
#include "mc.h"

static int clone_error (lua_State *L, int i, const char *what) {
  lua_pushfstring(L, "DataCloneError: transfer list entry %d %s", i, what);
  return lua_error(L);
}

/* Raises the error for entry i, a value of no transferable type. */
static int not_transferable (lua_State *L, int i) {
  mc_Ctx *c = mc_ctx(L);
  luaL_Buffer b;
  int k, n = 0;
  const char *tname = mc_ctx_typename(L, -1);  /* the module's name */
  luaL_buffinit(L, &b);
  for (k = 0; k < c->ntypes; k++) {
    if (c->types[k]->check == NULL)
      continue;
    luaL_addstring(&b, n++ == 0 ? "a " : " or ");
    luaL_addstring(&b, c->types[k]->name);
  }
  luaL_pushresult(&b);
  lua_pushfstring(L, "DataCloneError: transfer list entry %d is a %s, not %s",
                  i, tname, lua_tostring(L, -1));
  return lua_error(L);
}

/* Whether the key at the top is the string `name`. */
static int is_key (lua_State *L, const char *name) {
  return lua_type(L, -1) == LUA_TSTRING
         && strcmp(lua_tostring(L, -1), name) == 0;
}

/* Raises for a key of the options at idx other than `transfer` and
** `timeout`, an array entry too: a misspelt option would be silently
** ignored. */
static void check_options (lua_State *L, int idx) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (is_key(L, "transfer") || is_key(L, "timeout"))
      continue;
    luaL_argerror(L, idx, lua_pushfstring(L, "unknown option %s",
                                          mc_ctx_keyname(L, -1)));
  }
}

/* Checks the transfer list at `list`, the top, which it replaces with
** the map check_list pushes; the key `timeout` is let pass when
** `timeout`. */
static int check_array (lua_State *L, int list, int timeout,
                        const mc_Group *from) {
  lua_Integer n, i, count = 0;
  int map;
  lua_newtable(L);
  map = lua_gettop(L);
  n = (lua_Integer)mc_rawlen(L, list);
  lua_pushnil(L);  /* named: the first string key */
  lua_pushnil(L);
  while (lua_next(L, list)) {
    lua_pop(L, 1);
    if (timeout && is_key(L, "timeout"))
      continue;
    count++;
    if (lua_type(L, -1) == LUA_TSTRING && lua_isnil(L, -2)) {
      lua_pushvalue(L, -1);
      lua_replace(L, -3);
    }
  }
  if (count != n) {
    if (lua_isnil(L, -1))
      lua_pushliteral(L, "DataCloneError: the transfer list must be an "
                         "array (entries 1..n, no holes)");
    else  /* a misspelt option, when the argument is the list */
      lua_pushfstring(L, "DataCloneError: the transfer list must be an "
                         "array (entries 1..n, no holes), not have key "
                         "'%s'", lua_tostring(L, -1));
    lua_error(L);
  }
  lua_pop(L, 1);
  for (i = 1; i <= n; i++) {
    const mc_Type *t;
    const char *why;
    lua_rawgeti(L, list, (int)i);
    t = mc_ctx_type(L, -1);
    if (t == NULL || t->check == NULL)
      not_transferable(L, (int)i);
    why = t->check(L, lua_touserdata(L, -1), from);
    if (why != NULL)
      clone_error(L, (int)i, lua_pushfstring(L, "is %s", why));
    lua_pushvalue(L, -1);
    lua_rawget(L, map);
    if (!lua_isnil(L, -1))
      clone_error(L, (int)i, "appears twice");
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushinteger(L, i);
    lua_rawset(L, map);  /* t[entry] = i */
    lua_rawseti(L, map, (int)i);  /* t[i] = entry */
  }
  lua_settop(L, map);
  lua_replace(L, list);
  return (int)n;
}

/* Reads postMessage's transfer argument at idx: an array; or options, a
** table with a field `transfer` (an array) or `timeout`, and no other
** key, but that the entries of one with only a timeout are its transfer
** list ({buf, timeout = 1}). Then checks every entry for a message posted
** through group `from`. Pushes the list (t[i] = entry, t[entry] = i) or
** nil when idx holds none, and returns the number of entries. */
static int check_list (lua_State *L, int idx, const mc_Group *from) {
  int transfer, timeout;
  if (lua_isnoneornil(L, idx)) {  /* the common case: no table made */
    lua_pushnil(L);
    return 0;
  }
  mc_ctx_checktable(L, idx);
  lua_getfield(L, idx, "transfer");
  lua_getfield(L, idx, "timeout");
  transfer = !lua_isnil(L, -2);
  timeout = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (transfer) {
    if (!lua_istable(L, -1))
      luaL_argerror(L, idx, "'transfer' must be an array");
    check_options(L, idx);
    return check_array(L, lua_gettop(L), 0, from);
  }
  lua_pop(L, 1);
  if (timeout && mc_rawlen(L, idx) == 0) {
    check_options(L, idx);
    lua_pushnil(L);
    return 0;
  }
  lua_pushvalue(L, idx);
  return check_array(L, lua_gettop(L), timeout, from);
}

/* The objects of the list at index `list` are their own again (see
** mc_Type.lend). */
static void keep_all (lua_State *L, int list, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, list, (int)i + 1);
    mc_ctx_type(L, -1)->keep(L, lua_gettop(L));
    lua_pop(L, 1);
  }
}

/* A message of len bytes whose slots borrow the payloads of the n objects
** of the list at index `list`. Any allocation since check_list may have
** run a finalizer that moved or closed one of them, so each is checked
** again here, where nothing is allocated between its check and its lend:
** from then on it is marked lent, and no other transfer can take it. */
static mc_Msg *lend (lua_State *L, int list, int n, mc_Bytes *bytes,
                     const mc_Group *from) {
  mc_Msg *m = mc_msg_adopt(bytes, (size_t)n);
  size_t nx, i;
  mc_Xfer *x;
  if (m == NULL)
    return NULL;
  x = mc_msg_xfer(m, &nx);
  for (i = 0; i < nx; i++) {
    const mc_Type *t;
    const char *why;
    lua_rawgeti(L, list, (int)i + 1);
    t = mc_ctx_type(L, -1);
    why = t->check(L, lua_touserdata(L, -1), from);
    if (why != NULL) {
      lua_pop(L, 1);
      mc_msg_unlend(m);
      keep_all(L, list, i);
      lua_pushfstring(L, "DataCloneError: transfer list entry %d changed "
                      "during the call: it is now %s", (int)i + 1, why);
      lua_error(L);
    }
    x[i].type = t;
    t->lend(L, lua_touserdata(L, -1), &x[i]);
    lua_pop(L, 1);
  }
  return m;
}

void mc_message_unlend (lua_State *L, int list, mc_Msg *m) {
  size_t nx;
  mc_msg_xfer(m, &nx);
  mc_msg_unlend(m);
  if (nx > 0)
    keep_all(L, mc_absindex(L, list), nx);
}

mc_Msg *mc_message_make (lua_State *L, int value, int transfer,
                         const mc_Group *from) {
  mc_Bytes *bytes;
  mc_Msg *m;
  int n, list;
  value = mc_absindex(L, value);
  n = check_list(L, mc_absindex(L, transfer), from);
  list = lua_gettop(L);
  bytes = mc_encode(L, value, n > 0 ? list : 0);  /* list, scratch */
  m = lend(L, list, n, bytes, from);
  mc_encode_done(L, list + 1);
  if (m == NULL)
    luaL_error(L, "not enough memory");
  return m;
}

void mc_message_commit (lua_State *L, int list) {
  lua_Integer i, n;
  if (lua_isnil(L, list))
    return;
  n = (lua_Integer)mc_rawlen(L, list);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, (int)i);
    mc_ctx_type(L, -1)->commit(L, lua_gettop(L));
    lua_pop(L, 1);
  }
}

/* Runs under lua_pcall: blanks for the slots of message m (a light
** userdata), then its value: decoded, or with a value at 2 and its
** transfer list at 3 (structuredClone), a copy of that value. */
static int read_protected (lua_State *L) {
  mc_Msg *m = (mc_Msg *)lua_touserdata(L, 1);
  int objs = lua_gettop(L) + 1;
  size_t nx, i, len;
  mc_Xfer *x = mc_msg_xfer(m, &nx);
  const unsigned char *bytes = mc_msg_data(m, &len);
  if (nx > 0) {
    lua_createtable(L, (int)nx, 0);
    for (i = 0; i < nx; i++) {
      x[i].type->blank(L, &x[i]);
      lua_rawseti(L, objs, (int)i + 1);
    }
  }
  else
    lua_pushnil(L);
  if (objs > 2)
    mc_copy(L, 2, 3, objs);
  else
    mc_decode(L, bytes, len, nx > 0 ? objs : 0);  /* ..., objs, value */
  lua_insert(L, objs);
  return 2;
}

int mc_message_read (lua_State *L, mc_Msg *m) {
  int status;
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_READ);
  lua_pushlightuserdata(L, m);
  status = lua_pcall(L, 1, 2, 0);
  if (status != 0)
    lua_pushnil(L);
  return status;
}

/* Runs under lua_pcall: hands the payloads of message m (a light
** userdata) to the objects of the array at 2. A slot is emptied before
** its object takes it, so that m, freed after an error, drops only what
** is still its own. */
static int fill_protected (lua_State *L) {
  mc_Msg *m = (mc_Msg *)lua_touserdata(L, 1);
  size_t nx, i;
  mc_Xfer *x = mc_msg_xfer(m, &nx);
  for (i = 0; i < nx; i++) {
    mc_Xfer slot = x[i];
    x[i].type = NULL;
    lua_rawgeti(L, 2, (int)i + 1);
    slot.type->fill(L, lua_gettop(L), &slot);
    lua_pop(L, 1);
  }
  return 0;
}

int mc_message_fill (lua_State *L, mc_Msg *m) {
  size_t nx;
  int status = 0;
  mc_msg_xfer(m, &nx);
  if (nx > 0) {
    lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_FILL);
    lua_pushlightuserdata(L, m);
    lua_pushvalue(L, -3);
    status = lua_pcall(L, 2, 0, 0);
  }
  mc_msg_free(m);
  return status;
}

/* structuredClone(value [, options]): a direct copy. With a transfer list,
** the objects lend their payloads to a message without bytes, the copy is
** made with blanks in their place, and only then are the old objects
** detached and the blanks filled, so that a failure changes nothing. */
int mc_structured_clone (lua_State *L) {
  mc_Bytes none = {NULL, 0, 0};  /* a copy needs no bytes */
  mc_Msg *m;
  int n;
  luaL_checkany(L, 1);
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) {  /* only options.transfer is the list */
    mc_ctx_checktable(L, 2);
    lua_getfield(L, 2, "transfer");  /* as the web's: others are ignored */
    if (!lua_isnil(L, -1) && !lua_istable(L, -1))
      luaL_argerror(L, 2, "'transfer' must be an array");
    lua_replace(L, 2);
  }
  if (lua_isnil(L, 2)) {
    mc_copy(L, 1, 0, 0);
    return 1;
  }
  lua_pushvalue(L, 2);
  n = check_array(L, 3, 0, NULL);  /* v, transfer, list */
  if ((m = lend(L, 3, n, &none, NULL)) == NULL)
    return luaL_error(L, "not enough memory");
  lua_rawgeti(L, lua_upvalueindex(1), MC_CTX_READ);
  lua_pushlightuserdata(L, m);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 3);
  if (lua_pcall(L, 3, 2, 0) != 0) {
    mc_message_unlend(L, 3, m);
    return lua_error(L);
  }
  mc_message_commit(L, 3);  /* v, transfer, list, copy, objs */
  if (mc_message_fill(L, m) != 0)
    return lua_error(L);
  lua_pop(L, 1);
  return 1;
}

void mc_message_open_ctx (lua_State *L) {
  lua_pushcclosure(L, read_protected, mc_ctx_upvalues(L, -1));
  lua_rawseti(L, -2, MC_CTX_READ);
  lua_pushcclosure(L, fill_protected, mc_ctx_upvalues(L, -1));
  lua_rawseti(L, -2, MC_CTX_FILL);
}
