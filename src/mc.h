/*
** mc.h: the internal interface between the sources of messagechannel.core.
** It does not include lua.h: the pure C helpers (bytes.c) use only the
** first part; the Lua-facing parts take a struct lua_State *.
*/
#ifndef mc_h
#define mc_h

#include <stddef.h>
#include <stdint.h>

#define MC_BUFFER_MT "messagechannel.Buffer"

/* ---- bytes.c: growable byte string and pointer -> id map (no Lua) ---- */

typedef struct mc_Bytes {
  unsigned char *p;
  size_t n, cap;
} mc_Bytes;

/* Makes room for `extra` more bytes; returns 0 when out of memory. */
int mc_bytes_reserve_slow (mc_Bytes *b, size_t extra);
#define mc_bytes_reserve(b, extra) \
  ((b)->cap - (b)->n >= (extra) || mc_bytes_reserve_slow((b), (extra)))
void mc_bytes_free (mc_Bytes *b);

/* Open addressing, keys are object addresses; ids are dense from 0. */
typedef struct mc_PtrMap {
  const void **keys;
  uint32_t *ids;
  size_t mask, count;  /* mask + 1 is the capacity, a power of two */
} mc_PtrMap;

#define MC_NOID UINT32_MAX
uint32_t mc_ptrmap_get (const mc_PtrMap *m, const void *k);
/* Adds k -> id (k must be absent); returns 0 when out of memory. */
int mc_ptrmap_add (mc_PtrMap *m, const void *k, uint32_t id);
void mc_ptrmap_clear (mc_PtrMap *m);
void mc_ptrmap_free (mc_PtrMap *m);

/* ---- Lua-facing parts ---- */

struct lua_State;

typedef struct mc_Buffer {
  unsigned char *data;  /* malloc'd, NULL when empty or detached */
  size_t len;
  int detached;
} mc_Buffer;

/* buffer.c */
void mc_buffer_open (struct lua_State *L);
/* Pushes a new Buffer holding a copy of len bytes of src (zeros if NULL). */
mc_Buffer *mc_buffer_push (struct lua_State *L, const void *src, size_t len);
mc_Buffer *mc_buffer_test (struct lua_State *L, int idx);
int mc_buffer_new (struct lua_State *L);

/* codec.c: all take the module state table as upvalue 1 */
void mc_codec_open (struct lua_State *L);
int mc_structured_clone (struct lua_State *L);
int mc_serialize (struct lua_State *L);
int mc_deserialize (struct lua_State *L);
int mc_register (struct lua_State *L);

#endif
