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
#define MC_WORKER_MT "messagechannel.WorkerHandle"
/* Registry keys: one per Lua state, kept across loads of the module. */
#define MC_THREAD_KEY "messagechannel.thread"
#define MC_WORKER_KEY "messagechannel.worker"

/* Slots of the module state table, upvalue 1 of every core function. */
#define MC_STATE_SCRATCH 1  /* codec scratch memory */
#define MC_STATE_NAME2MT 2  /* mc.register: name -> metatable */
#define MC_STATE_MT2NAME 3  /* and back */
#define MC_STATE_RUNQ    4  /* the scheduler's run queue (see port.c) */
#define MC_STATE_METHODS 5  /* port methods, filled by the Lua side */
#define MC_STATE_DECODE  6  /* the message decoder, for lua_pcall */
#define MC_STATE_WEAKMT  7  /* {__mode = "v"} */
#define MC_STATE_HUB     8  /* this Lua state's hub box (see port.c) */
#define MC_STATE_PORTS   9  /* id -> port or Worker handle, weak values */
#define MC_STATE_PINNED 10  /* ports kept alive for another thread */

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

/* ---- hub.c: where a Lua state's scheduler sleeps and is woken (no Lua) ---- */

typedef struct mc_Hub {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int refs;      /* changed atomically */
  int alive;     /* its Lua state still exists */
  int stop;      /* the thread is to end (Worker terminate) */
  int overflow;  /* an id was lost for want of memory */
  int waiting;   /* its thread sleeps on cond */
  uint32_t *ids; /* objects with news, in notification order */
  size_t n, cap;
} mc_Hub;

#define MC_HUB_STOP 1
#define MC_HUB_ALL 2  /* look at every object: some news was lost */

mc_Hub *mc_hub_new (void);  /* NULL when out of memory; refs is 1 */
void mc_hub_incref (mc_Hub *h);
void mc_hub_decref (mc_Hub *h);
void mc_hub_notify (mc_Hub *h, uint32_t id);
void mc_hub_stop (mc_Hub *h);
void mc_hub_close (mc_Hub *h);  /* its state is gone: drop news from now on */
size_t mc_hub_wait (mc_Hub *h, double seconds, uint32_t **buf, size_t *cap,
                    int *flags);

/* ---- pipe.c: what two entangled ports share (no Lua) ---- */

/* An encoded message, or a close marker. A message carries what its
** transfer list moved: ports (a pipe reference and a side) and Buffer
** bytes. It owns them until a receiver takes them. */
typedef struct mc_Msg mc_Msg;

#define MC_XPORT 1    /* ptr: the mc_Pipe, len: the side */
#define MC_XBUFFER 2  /* ptr: the bytes (malloc'd), len: their length */

typedef struct mc_Xfer {
  void *ptr;
  size_t len;
  int kind;  /* 0 once taken (or never filled) */
} mc_Xfer;

typedef struct mc_Fifo {
  mc_Msg *head, *tail;
  size_t count;  /* messages, not counting a close marker */
} mc_Fifo;

/* Who owns a side: the hub of the Lua state its port lives in and the
** port's id there; no hub while the port is in transit. */
typedef struct mc_Side {
  mc_Hub *hub;
  uint32_t id;
  int notified;  /* the hub has been told and has not looked yet */
} mc_Side;

typedef struct mc_Pipe {
  pthread_mutex_t lock;
  int refs;
  int entangled;
  mc_Fifo q[2];     /* q[i]: messages for the port on side i */
  mc_Msg *mark[2];  /* the close markers, until close() queues them */
  mc_Side side[2];
} mc_Pipe;

/* What is at the head of a side's FIFO. */
#define MC_EMPTY 0
#define MC_MESSAGE 1
#define MC_CLOSED 2

mc_Pipe *mc_pipe_new (void);  /* NULL when out of memory; refs is 1 */
void mc_pipe_incref (mc_Pipe *p);
void mc_pipe_decref (mc_Pipe *p);
/* Queues m for side `to`: 1 when queued, 0 when the pipe is closed (m
** stays the caller's). When the side belongs to hub `self`, *local gets
** its id (the caller wakes it); otherwise its hub is told, and *local
** is 0. */
int mc_pipe_push (mc_Pipe *p, int to, mc_Msg *m, mc_Hub *self,
                  uint32_t *local);
/* Disentangles; the close marker goes to side `first` first. Returns 1 if
** the pipe was entangled. Never fails. Sides of `self` get their ids in
** local[] (else 0); other owners are told. */
int mc_pipe_close (mc_Pipe *p, int first, mc_Hub *self, uint32_t local[2]);
int mc_pipe_entangled (mc_Pipe *p);
/* Side s now belongs to port id of hub h (h referenced by the pipe). */
void mc_pipe_attach (mc_Pipe *p, int s, mc_Hub *h, uint32_t id);
/* Side s no longer belongs to hub h (nothing if it belongs elsewhere). */
void mc_pipe_detach (mc_Pipe *p, int s, mc_Hub *h);
/* The id of the partner of side s if it belongs to hub h and the pipe is
** entangled, else 0. */
uint32_t mc_pipe_local_peer (mc_Pipe *p, int s, mc_Hub *h);
/* The kind of the head of side's FIFO; *count gets its message count and
** *marked whether a close marker is still queued. */
int mc_pipe_head (mc_Pipe *p, int side, size_t *count, int *marked);
/* Removes and returns the head of side's FIFO if it is of a kind in
** `what`, else returns NULL. */
#define MC_TAKE_MESSAGE 1
#define MC_TAKE_CLOSE 2
mc_Msg *mc_pipe_take (mc_Pipe *p, int side, int what);
/* A message of len bytes (copied from data) with room for nx transfers,
** all empty; NULL when out of memory. */
mc_Msg *mc_msg_new (const void *data, size_t len, size_t nx);
const unsigned char *mc_msg_data (const mc_Msg *m, size_t *len);
mc_Xfer *mc_msg_xfer (mc_Msg *m, size_t *nx);
int mc_msg_is_close (const mc_Msg *m);
/* Frees m and what it still carries: a port in it dies in transit, so its
** partner is closed. */
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
** scratch that holds the bytes; mc_encode_done gives it back. xmap, if
** not 0, is a transfer table (object -> index, see mc_transfer_check). */
const unsigned char *mc_encode (struct lua_State *L, int idx, int xmap,
                                size_t *len);
void mc_encode_done (struct lua_State *L, int sidx);
/* Pushes the decoded value of n bytes at p, or raises DataCloneError.
** xarr, if not 0, is the array of the objects the message transferred. */
void mc_decode (struct lua_State *L, const unsigned char *p, size_t n,
                int xarr);
int mc_structured_clone (struct lua_State *L);
int mc_serialize (struct lua_State *L);
int mc_deserialize (struct lua_State *L);
int mc_register (struct lua_State *L);

/* port.c: MessagePort and the C side of the scheduler. Functions that
** take a lua_State expect the module state table as upvalue 1. */
void mc_port_open (struct lua_State *L);  /* takes the state table at top */
void mc_port_funcs (struct lua_State *L);  /* module table at -2, state -1 */
int mc_port_test (struct lua_State *L, int idx);
mc_Hub *mc_state_hub (struct lua_State *L);
/* Gives the object at idx an id in this state's table; returns it. */
uint32_t mc_state_register (struct lua_State *L, int idx);
/* Reads the transfer argument at idx (nil, an array or {transfer =
** array}) and checks every entry (API 4.3) for a post through pipe
** `from` (may be NULL). Pushes the transfer table (t[i] = entry,
** t[entry] = i), or nil when idx holds nil, and returns the number of
** entries. */
int mc_transfer_check (struct lua_State *L, int idx, const mc_Pipe *from);
/* Fills m's transfer slots from the table at map, taking references. */
void mc_transfer_fill (struct lua_State *L, int map, mc_Msg *m);
/* m was not queued: gives the references back and frees it. */
void mc_transfer_undo (mc_Msg *m);
/* m was queued: detaches the entries of the table at map. */
void mc_transfer_commit (struct lua_State *L, int map);
/* Pushes an array of new objects for the entries of the table at map,
** not yet holding anything (structuredClone fills them by moving). */
void mc_transfer_blanks (struct lua_State *L, int map);
void mc_transfer_move (struct lua_State *L, int map, int blanks);
/* Makes the objects m carries (attached to this state) and pushes them as
** an array; m no longer owns them. */
void mc_transfer_take (struct lua_State *L, mc_Msg *m);

/* worker.c */
void mc_worker_open (struct lua_State *L);  /* takes the state table at top */
void mc_worker_funcs (struct lua_State *L);  /* module at -2, state -1 */
mc_Hub *mc_worker_hub (struct lua_State *L);  /* NULL outside a worker */

#endif
