/*
** mc.h: the internal interface between the sources of messagechannel.core.
** It does not include lua.h: the pure C helpers (bytes.c) use only the
** first part; the Lua-facing parts take a struct lua_State *.
*/
#ifndef mc_h
#define mc_h

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define MC_BUFFER_MT "messagechannel.Buffer"
#define MC_PORT_MT "messagechannel.MessagePort"

/* Slots of the module state table, upvalue 1 of every core function. */
#define MC_STATE_SCRATCH 1  /* codec scratch memory */
#define MC_STATE_NAME2MT 2  /* mc.register: name -> metatable */
#define MC_STATE_MT2NAME 3  /* and back */
#define MC_STATE_RUNQ    4  /* the scheduler's run queue (see port.c) */
#define MC_STATE_METHODS 5  /* port methods, filled by the Lua side */
#define MC_STATE_DECODE  6  /* the message decoder, for lua_pcall */
#define MC_STATE_WEAKMT  7  /* {__mode = "v"} */

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

/* ---- pipe.c: what two entangled ports share (no Lua) ---- */

typedef struct mc_Msg mc_Msg;  /* an encoded message, or a close marker */

typedef struct mc_Fifo {
  mc_Msg *head, *tail;
  size_t count;  /* messages, not counting a close marker */
} mc_Fifo;

typedef struct mc_Pipe {
  pthread_mutex_t lock;
  int refs;
  int entangled;
  mc_Fifo q[2];     /* q[i]: messages for the port on side i */
  mc_Msg *mark[2];  /* the close markers, until close() queues them */
} mc_Pipe;

/* What is at the head of a side's FIFO. */
#define MC_EMPTY 0
#define MC_MESSAGE 1
#define MC_CLOSED 2

mc_Pipe *mc_pipe_new (void);  /* NULL when out of memory; refs is 1 */
void mc_pipe_incref (mc_Pipe *p);
void mc_pipe_decref (mc_Pipe *p);
/* Queues a copy of len bytes for side `to`: 1 when queued, 0 when the
** pipe is closed, -1 when out of memory. */
int mc_pipe_post (mc_Pipe *p, int to, const void *data, size_t len);
/* Disentangles; the close marker goes to side `first` first. Returns 1 if
** the pipe was entangled. Never fails. */
int mc_pipe_close (mc_Pipe *p, int first);
int mc_pipe_entangled (mc_Pipe *p);
/* The kind of the head of side's FIFO; *count gets its message count and
** *marked whether a close marker is still queued. */
int mc_pipe_head (mc_Pipe *p, int side, size_t *count, int *marked);
/* Removes and returns the head of side's FIFO if it is of a kind in
** `what`, else returns NULL. */
#define MC_TAKE_MESSAGE 1
#define MC_TAKE_CLOSE 2
mc_Msg *mc_pipe_take (mc_Pipe *p, int side, int what);
const unsigned char *mc_msg_data (const mc_Msg *m, size_t *len);
int mc_msg_is_close (const mc_Msg *m);
void mc_msg_free (mc_Msg *m);

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
/* Encodes the value at idx (raising DataCloneError) and pushes the codec
** scratch that holds the bytes; mc_encode_done gives it back. */
const unsigned char *mc_encode (struct lua_State *L, int idx, size_t *len);
void mc_encode_done (struct lua_State *L, int sidx);
/* Pushes the decoded value of n bytes at p, or raises DataCloneError. */
void mc_decode (struct lua_State *L, const unsigned char *p, size_t n);
int mc_structured_clone (struct lua_State *L);
int mc_serialize (struct lua_State *L);
int mc_deserialize (struct lua_State *L);
int mc_register (struct lua_State *L);

/* port.c: MessagePort and the C side of the scheduler */
void mc_port_open (struct lua_State *L);  /* takes the state table at top */
void mc_port_funcs (struct lua_State *L);  /* module table at -2, state -1 */
int mc_port_test (struct lua_State *L, int idx);

#endif
