/*
** mc.h: the internal interface between the sources of messagechannel.core.
**
** Layers, lowest first. A file calls only files on the lines above its
** own; `make layers` (.ci/layers) checks that with nm, and that the module
** exports nothing but luaopen_messagechannel_core.
**   bytes.c    pure C: growable byte string, pointer -> id map
**   hub.c      pure C: where a Lua state's scheduler sleeps and is woken
**   msg.c      pure C: a message, its bytes and its transfer slots;
**              small ones in blocks recycled between threads
**   queue.c    pure C: one receiving end's FIFO of messages and its owner
**   group.c    pure C: entangled ends under one lock (a channel's pair)
**   wire.c     pure C: the frames a link between processes carries
**   net.c      pure C: the network thread, which links ends to sockets
**   nats.c     pure C: NATS subjects for BroadcastChannel (libnats)
**   ctx.c      the per-state context: hub, ids, pinned objects, run
**              queue, the types of the module's objects
**   codec.c    structured clone: byte format, direct copy, register
**   message.c  transfer lists and the one message pipeline
**   sched.c    the C half of the scheduler: receivers, tokens, poll
**   timers.c   the scheduler's timer heap, changed whole
**   buffer.c   the Buffer type
**   port.c     the MessagePort type and MessageChannel
**   broadcast.c  the BroadcastChannel type, across the process
**   remote.c   mc.listen and mc.connect: ports linked to other processes
**   worker.c   worker threads (mc.Worker)
**   core.c     luaopen_messagechannel_core
**
** One message path, for every sender: message.c makes a message from a
** value and a transfer list (the objects only lend their payloads to it),
** the sender queues it at a group's end, then commits (the objects are
** detached) or undoes it. The receiving state takes it from the end
** (sched.c), and message.c opens it: new objects for its transfer slots,
** the value decoded, then the payloads handed to the new objects. What a
** transferable is, message.c and codec.c learn only from its type's
** mc_Type, found through its metatable (ctx.c).
**
** The pure C files do not include lua.h; the others take a
** struct lua_State * and, but for buffer.c's own functions, run inside a
** C function that has the context (ctx.c) as upvalues 1 and 2.
*/
#ifndef mc_h
#define mc_h

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Nothing declared here is exported from the shared library. */
#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

struct lua_State;
struct lua_Debug;

/* ---- bytes.c: growable byte string and pointer -> id map ---- */

typedef struct mc_Bytes {
  unsigned char *p;
  size_t n, cap;
} mc_Bytes;

/* Makes room for `extra` more bytes; returns 0 when out of memory. */
int mc_bytes_reserve_slow (mc_Bytes *b, size_t extra);
#define mc_bytes_reserve(b, extra) \
  ((b)->cap - (b)->n >= (extra) || mc_bytes_reserve_slow((b), (extra)))
void mc_bytes_free (mc_Bytes *b);
/* The caller is about to write the block of len bytes at p, new, from
** its start: a large one gets huge pages where the system offers them
** (fewer page faults). Only a hint; it cannot fail. */
void mc_bytes_will_fill (void *p, size_t len);

/* Open addressing, keys are object addresses; ids are dense from 0. A
** slot is in use when its stamp is the map's: clearing takes a new stamp,
** so that it costs nothing however large an earlier use left the map. */
typedef struct mc_PtrSlot {
  const void *k;
  uint32_t id, stamp;
} mc_PtrSlot;

typedef struct mc_PtrMap {
  mc_PtrSlot *slots;
  size_t mask, count;  /* mask + 1 is the capacity, a power of two */
  uint32_t stamp;
} mc_PtrMap;

#define MC_NOID UINT32_MAX
uint32_t mc_ptrmap_get (const mc_PtrMap *m, const void *k);
/* Adds k -> id (k must be absent); returns 0 when out of memory. */
int mc_ptrmap_add (mc_PtrMap *m, const void *k, uint32_t id);
void mc_ptrmap_clear (mc_PtrMap *m);
void mc_ptrmap_free (mc_PtrMap *m);

/* ---- hub.c: where a Lua state's scheduler sleeps and is woken ---- */

typedef struct mc_Hub {
  pthread_mutex_t lock;
  uint64_t serial;  /* one per hub made in the process: a hub made where
                    ** a freed one was is told apart */
  int refs;      /* changed atomically */
  int alive;     /* its Lua state still exists */
  int stop;      /* the thread is to end (Worker terminate): set under
                 ** the lock, atomically, so that it may be read without */
  int overflow;  /* an id was lost for want of memory */
  int waiting;   /* its thread sleeps: 1 in poll(2) on fd[0], 2 on news, 3 on
                 ** news and woken already */
  int exposed;   /* a host loop may wait on fd[0] (mc.pollfd) */
  unsigned long netwaits;  /* waits its state began (mc_net_wait); its own
                           ** thread alone uses it */
  int signalled; /* fd[0] is readable: written and not yet drained */
  int fd[2];     /* read and write ends (one eventfd on Linux); -1 closed */
  int stopfd[2]; /* the same, readable once stopped (mc_hub_stopfd); -1
                 ** until asked for and once closed */
  uint32_t *ids; /* objects with news, in notification order */
  size_t n, cap;
  int news;      /* n > 0 or stop or overflow: set and cleared under the
                 ** lock, read atomically by a spinning mc_hub_wait */
  int warm;      /* its last wait ended soon: the next one spins first */
  int misses;    /* spins in a row that saw no news */
  unsigned skip; /* waits to go before the next spin */
  uint64_t arrivals;  /* messages queued at its objects: changed
                      ** atomically (mc_Slot) */
  uint64_t bound;     /* arrivals when mc_hub_wait last took the ids: a
                      ** message that came after them may have its id
                      ** still to come (its own thread alone uses it,
                      ** and its poll may lower it: sched.c) */
  uint64_t taken;     /* the bound as mc_hub_wait set it: while bound is
                      ** lower, older messages wait for a poll (sched.c) */
} mc_Hub;

#define MC_HUB_STOP 1
#define MC_HUB_ALL 2  /* look at every object: some news was lost */

/* A lock for short critical sections between awake threads (adaptive
** where the C library has it); 0 or an errno. */
int mc_lock_init (pthread_mutex_t *m);
mc_Hub *mc_hub_new (void);  /* NULL on failure (errno says why); refs is 1 */
void mc_hub_incref (mc_Hub *h);
void mc_hub_decref (mc_Hub *h);
void mc_hub_notify (mc_Hub *h, uint32_t id);
/* A wake-up from the hub's own thread for a host loop waiting on the
** descriptor: local work to run. Nothing unless the descriptor is exposed. */
void mc_hub_ping (mc_Hub *h);
/* How many object ids wait to be taken (at most a few thousand: past
** that the hub asks for a look at every object). */
size_t mc_hub_queued (mc_Hub *h);
/* Whether news waits to be taken by mc_hub_wait. */
int mc_hub_pending (mc_Hub *h);
/* Returns the descriptor; from now on every news makes it readable. */
int mc_hub_expose (mc_Hub *h);
void mc_hub_stop (mc_Hub *h);
int mc_hub_stopped (mc_Hub *h);  /* whether mc_hub_stop was called */
/* A descriptor readable once mc_hub_stop is called, never before, for a
** host loop that nothing else wakes then; made at the first call, open
** until mc_hub_close_stopfd (once that loop is gone: after its state is
** closed) or until the hub is freed; -1 when it cannot be made. */
int mc_hub_stopfd (mc_Hub *h);
void mc_hub_close_stopfd (mc_Hub *h);
void mc_hub_close (mc_Hub *h);  /* its state is gone: drop news from now on */
/* How long, in nanoseconds, mc_hub_wait watches for news before it
** sleeps, in every thread; 0: it sleeps at once. */
long mc_hub_spin (long ns);  /* sets it when ns >= 0; returns the old one */
double mc_hub_now (void);  /* the monotonic clock, in seconds */
/* Waits until there is news, a wake-up, a signal, the hub is stopped, or
** `seconds` pass (< 0: no limit; 0: no wait). Swaps the queued ids into
** *buf (of capacity *cap; the hub's old array takes its place, so no copy
** is made), clears the descriptor and returns how many ids there are.
** *flags gets MC_HUB_STOP and MC_HUB_ALL. */
size_t mc_hub_wait (mc_Hub *h, double seconds, uint32_t **buf, size_t *cap,
                    int *flags);
/* The wait of mc_hub_wait alone, news left queued, that also ends when
** one of the n descriptors at extra is readable (their revents say which
** when it returns; extra has room for one more pollfd at its end). */
struct pollfd;
void mc_hub_sleep (mc_Hub *h, double seconds, struct pollfd *extra,
                   size_t n);
/* A thread that runs this library's code is about to start: the library
** stays loaded from now on. */
void mc_keep_loaded (void);

/* ---- the types of the module's objects (used from msg.c up) ---- */

typedef struct mc_Type mc_Type;
typedef struct mc_Msg mc_Msg;
struct mc_Group;

/* A transfer slot of a message: what one object of its transfer list
** moved (a port's end of a group, a Buffer's bytes). type is NULL while
** the slot holds nothing. */
typedef struct mc_Xfer {
  const mc_Type *type;
  void *ptr;
  size_t aux;
} mc_Xfer;

/*
** What the generic code (codec.c, message.c, sched.c, msg.c) knows of a
** userdata type of the module, found through the object's metatable
** (mc_ctx_type). A field the type does not have is 0 or NULL. Functions
** that take a lua_State run inside a C function that has the context.
*/
struct mc_Type {
  const char *name;   /* as messages name it: "MessagePort" */
  const char *tname;  /* its metatable's registry name */
  /* The userdata starts with an mc_Recv (sched.c): it receives
  ** messages, and its news from other threads queue run-queue tokens. */
  int receiver;
  /* Copied by the clone, as a byte string. */
  int clone_tag;  /* its tag in the format (docs/FORMAT.md); 0: never */
  const char *(*uncloneable) (void *obj);  /* why not now ("detached
                                          ** Buffer"), or NULL */
  const void *(*bytes) (void *obj, size_t *len);
  void (*make) (struct lua_State *L, const void *p, size_t len);  /* push */
  /* Pushes a copy of obj itself (structuredClone), whose bytes it reads
  ** only after what may run the collector: a finalizer run then may have
  ** detached obj (its __gc called by hand). Returns why it cannot copy
  ** obj now, with nothing pushed, or NULL. */
  const char *(*copy) (struct lua_State *L, void *obj);
  /* Moved by a transfer list (API 4.3); check is NULL when it cannot be. */
  const char *(*check) (struct lua_State *L, void *obj,
                        const struct mc_Group *from);  /* what is wrong,
                                                       ** or NULL */
  /* lend marks the object lent until commit or keep: another transfer
  ** (from a finalizer that runs meanwhile) finds it so in check. */
  void (*lend) (struct lua_State *L, void *obj, mc_Xfer *x);
  void (*unlend) (mc_Xfer *x);  /* not sent: give the reference back */
  void (*keep) (struct lua_State *L, int idx);  /* not sent: the object
                                                 ** is its own again */
  void (*commit) (struct lua_State *L, int idx);  /* sent: detach it */
  /* Never delivered: let the payload go; messages that this releases
  ** (those queued at a port's end) are pushed on *freed (mc_msg_push). */
  void (*drop) (mc_Xfer *x, mc_Msg **freed);
  void (*blank) (struct lua_State *L, const mc_Xfer *x);  /* push a new,
                                                          ** empty object */
  void (*fill) (struct lua_State *L, int idx, mc_Xfer *x);  /* it takes
                                                            ** the payload */
};

/* ---- msg.c: a message ---- */

/* Encoded bytes (docs/FORMAT.md) and nx transfer slots. A message owns
** what its slots hold once the sender has committed it; freed before it
** is opened, it drops them (a port in it closes at its partner). */

/* A message of len bytes (copied from data) with nx empty slots; NULL
** when out of memory. */
mc_Msg *mc_msg_new (const void *data, size_t len, size_t nx);
/* The same with the bytes of b; from MC_MSG_ADOPT bytes on, the message
** takes b's block instead of a copy, and b is left empty. */
#define MC_MSG_ADOPT ((size_t)1 << 16)
mc_Msg *mc_msg_adopt (mc_Bytes *b, size_t nx);
const unsigned char *mc_msg_data (const mc_Msg *m, size_t *len);
mc_Xfer *mc_msg_xfer (mc_Msg *m, size_t *nx);
void mc_msg_unlend (mc_Msg *m);  /* not sent: slots given back, m freed */
/* Frees m and the messages linked after it (a list that mc_msg_push
** made, or NULL), dropping what their slots hold, and so on for what
** that releases, in a loop. A message alone has no next. */
void mc_msg_free (mc_Msg *m);
void mc_msg_push (mc_Msg **list, mc_Msg *m);
/* Takes m out of the list, if it is there (its owner frees it later). */
void mc_msg_unlink (mc_Msg **list, mc_Msg *m);
/* A note rather than a value: its bytes are the text of an error event
** (a BroadcastChannel's NATS problem), made only here, never decoded. */
mc_Msg *mc_msg_note (const char *text);
int mc_msg_is_note (const mc_Msg *m);

/* ---- queue.c: one receiving end ---- */

/* Who reads a queue: the hub of the Lua state its object lives in and the
** object's id there; no hub while the object is in transit. */
typedef struct mc_Owner {
  mc_Hub *hub;    /* referenced */
  uint32_t id;
  int notified;   /* the hub has been told and has not looked yet */
} mc_Owner;

/* A FIFO of message pointers in a ring (a message is not linked into the
** queue, so one message could sit in several), then the close: once
** `closed`, nothing more is pushed and the close is seen after the last
** message. The lock is the group's. */
typedef struct mc_Slot {
  mc_Msg *m;
  uint64_t arrival;  /* the owner's count when it arrived; 0: in transit */
} mc_Slot;

/* A writer waiting for room at a bounded queue: the hub of its state and
** its port's id there, told when a message is taken or the pair closes. */
typedef struct mc_Writer {
  mc_Hub *hub;    /* referenced */
  uint32_t id;
} mc_Writer;

typedef struct mc_Queue {
  mc_Slot *ring;
  size_t head, n, cap;
  size_t bytes;  /* the bytes of the n messages (mc_msg_data's length,
                 ** fixed when a message is made) */
  int closed;
  int closetaken;
  mc_Owner owner;
  mc_Writer *writers;  /* waiting for room; NULL when none */
  size_t nwriters, capwriters;
} mc_Queue;

/* What is at the head of a queue. */
#define MC_EMPTY 0
#define MC_MESSAGE 1
#define MC_CLOSED 2

/* A hub to tell that something arrived, once the lock is released. */
typedef struct mc_Tell {
  mc_Hub *hub;  /* referenced, or NULL */
  uint32_t id;
} mc_Tell;

int mc_queue_push (mc_Queue *q, mc_Msg *m);  /* 0 when out of memory */
/* A full queue's ring is moved to one twice as large as a message is
** pushed. For a large one the writer makes it first, without the lock
** (its pages touched: their faults are taken then), so that the lock is
** held for the copy alone. mc_queue_full: the slots q's next ring needs
** now, 0 when it has room (or (size_t)-1: too many); mc_queue_ring: a
** ring of cap slots, its pages touched, NULL when out of memory;
** mc_queue_grow: moves q into ring when cap is still what q needs, and
** returns the ring to free once the lock is released (q's old one, or
** ring itself). */
size_t mc_queue_full (const mc_Queue *q);
mc_Slot *mc_queue_ring (size_t cap);
mc_Slot *mc_queue_grow (mc_Queue *q, mc_Slot *ring, size_t cap);
int mc_queue_head (const mc_Queue *q);
mc_Msg *mc_queue_shift (mc_Queue *q);  /* NULL when empty */
mc_Msg *mc_queue_at (const mc_Queue *q, size_t i);  /* i < q->n, 0: head */
void mc_queue_remove (mc_Queue *q, size_t i);       /* the i-th taken out */
uint64_t mc_queue_arrival (const mc_Queue *q, size_t i);  /* as mc_queue_at */
/* q's end came to the state of hub h (NULL: in transit) with its
** messages: they arrive there now, in their order. */
void mc_queue_moved (mc_Queue *q, mc_Hub *h);
/* Adds a writer to wait for room (once per hub and id); 0 when out of
** memory. */
int mc_queue_want_room (mc_Queue *q, mc_Hub *hub, uint32_t id);
/* Hands the waiting writers over to *w (n of them, to tell and free with
** mc_tell_writers once the lock is released). */
size_t mc_queue_take_writers (mc_Queue *q, mc_Writer **w);
void mc_tell_writers (mc_Writer *w, size_t n);
/* Takes q's messages out, pushed on *freed (mc_msg_push). */
void mc_queue_drop (mc_Queue *q, mc_Msg **freed);
/* Empties q and lets its owner go; its messages are pushed on *freed. */
void mc_queue_clear (mc_Queue *q, mc_Msg **freed);
/* Something arrived at q: returns the owner's id when it is `self` (the
** caller kicks it); else 0, and fills *t when the owner is to be told. */
uint32_t mc_queue_arrived (mc_Queue *q, mc_Hub *self, mc_Tell *t);
void mc_tell (mc_Tell *t);
void mc_owner_set (mc_Owner *o, mc_Hub *h, uint32_t id);  /* h may be NULL */

/* ---- group.c: entangled ends ---- */

/* The state entangled ports share: their ends' queues under one lock,
** refcounted by the objects that own an end and by the messages that
** carry one in transit. A channel's pair is a group of two ends; what is
** posted at one end is queued at the other. A group's lock is never held
** while a hub's is taken, nor the other way. */
typedef struct mc_Group {
  pthread_mutex_t lock;
  int refs;        /* changed atomically */
  int entangled;
  size_t capacity; /* messages each end holds at most; 0: no bound */
  size_t maxsize;  /* the largest message it carries, in bytes (its
                   ** wire size, mc_wire_size); 0: no bound */
  int remote;      /* an end is linked to another process (net.c): no
                   ** port travels through it */
  const char *reason;  /* why a link closed it ("timeout"), or NULL */
  void *link;      /* remote: its open link (net.c), under the lock */
  size_t nends;
  mc_Queue *end;  /* nends of them */
} mc_Group;

mc_Group *mc_group_new (size_t nends);  /* NULL when out of memory; refs 1 */
void mc_group_incref (mc_Group *g);
void mc_group_decref (mc_Group *g);
size_t mc_group_partner (const mc_Group *g, size_t e);  /* of a pair */
/* Queues m at end `to`: 1 when queued, 0 when the group is closed, -1
** when out of memory, MC_FULL when the end holds `capacity` messages (m
** stays the caller's but for 1). When that end belongs to hub self,
** *local gets its id (the caller kicks it); else its owner is told, and
** *local is 0. When full and `writer` is not 0, the port with that id in
** hub self is told (mc_hub_notify) once a message is taken there or the
** group closes. */
#define MC_FULL 2
int mc_group_post (mc_Group *g, size_t to, mc_Msg *m, mc_Hub *self,
                   uint32_t *local, uint32_t writer);
/* How many messages, and of how many bytes, end e holds now. */
void mc_group_load (mc_Group *g, size_t e, size_t *n, size_t *bytes);
/* Disentangles: every end gets its close, those other than `from` first.
** Returns 1 if the group was entangled; never fails. Ends owned by self
** get their ids in local[] (nends of them, 0 for the others); other
** owners are told. */
int mc_group_close (mc_Group *g, size_t from, mc_Hub *self,
                    uint32_t *local);
/* End e's holder is gone for good (its object collected, or the message
** that carried it freed unread): the group is closed (owners told), e's
** queued messages, which nobody can read now, are pushed on *freed, and
** the holder's reference is given back. */
void mc_group_release (mc_Group *g, size_t e, mc_Msg **freed);
int mc_group_entangled (mc_Group *g);
int mc_group_ended (mc_Group *g, size_t e);  /* e has taken its close */
/* Who owns end e: the state of hub self, another, or none (in transit). */
#define MC_OWNER_NONE 0
#define MC_OWNER_SELF 1
#define MC_OWNER_OTHER 2
int mc_group_owner (mc_Group *g, size_t e, mc_Hub *self);
/* The hub of the state that owns end e, or NULL (in transit, closed);
** *serial is its serial. */
mc_Hub *mc_group_owner_hub (mc_Group *g, size_t e, uint64_t *serial);
void mc_group_attach (mc_Group *g, size_t e, mc_Hub *h, uint32_t id);
void mc_group_detach (mc_Group *g, size_t e, mc_Hub *h);
/* The id of another end owned by hub h, while entangled; else 0. */
uint32_t mc_group_local_peer (mc_Group *g, size_t e, mc_Hub *h);
/* The kind at the head of end e's queue; *count gets its messages and
** *closing whether its close is still to be taken. */
int mc_group_head (mc_Group *g, size_t e, size_t *count, int *closing);
/* As mc_group_head, and *due: the messages from the head up to the first
** one, at or after position `from`, that arrived after `bound` (mc_Slot),
** or all of them when the partner's owner is `self` (not NULL), but
** `room` at most from `from` on (the lock is held for that many at
** most); their arrivals go to out[0], out[1], ... unless out is NULL. */
int mc_group_head_upto (mc_Group *g, size_t e, size_t from, uint64_t bound,
                        mc_Hub *self, uint64_t *out, size_t room,
                        size_t *count, size_t *due, int *closing);
/* Takes the head of end e's queue if its kind is in `what`: returns
** MC_MESSAGE (with *m), MC_CLOSED, or MC_EMPTY when nothing was taken. */
#define MC_TAKE_MESSAGE 1
#define MC_TAKE_CLOSE 2
int mc_group_take (mc_Group *g, size_t e, int what, mc_Msg **m);
/* The kind at the head of end e's queue, its message in *m, left queued:
** only the end's owner takes from it; its arrival (mc_Slot) in *arrival
** unless that is NULL. *done is whether nothing is queued at e and the
** group is disentangled, so that nothing more can come: seen under the
** same lock as the head, since between two looks the partner's thread may
** post a message and then close. */
int mc_group_peek (mc_Group *g, size_t e, mc_Msg **m, uint64_t *arrival,
                   int *done);
/* Frees the messages queued at end e, unread, but its notes (a
** BroadcastChannel's error events are still reported); only the head,
** if a message, unless all. The writers waiting for room are told.
** Returns whether it freed any. */
int mc_group_drop (mc_Group *g, size_t e, int all);
/* The reason of the close to come (a static string), unless the group is
** closed already; and the reason it closed with, or NULL. */
void mc_group_set_reason (mc_Group *g, const char *reason);
const char *mc_group_reason (mc_Group *g);

/* Ends in transit, as the messages queued at other ends carry them: a
** slot of a receiver type holds its group in ptr and its end in aux. A
** reach is the set of ends carried, directly or through other carried
** ends, by what waits at the ends it was started from. */
typedef struct mc_Reach {
  struct mc_Group **g;  /* referenced */
  size_t *e;
  size_t n, cap, done;
  mc_PtrMap seen;       /* an end's queue -> its index */
} mc_Reach;

void mc_reach_init (mc_Reach *r);
int mc_reach_from (mc_Reach *r, mc_Group *g, size_t e);  /* 0: no memory */
int mc_reach_has (const mc_Reach *r, mc_Group *g, size_t e);
void mc_reach_free (mc_Reach *r);
/* After a post to end e of g has committed: frees the message queued
** there if it closed a circle of ends in transit (see group.c). */
void mc_group_sweep (mc_Group *g, size_t e);

/* ---- wire.c: frames on a link between processes ---- */

/* A frame is a u32 length (of what follows, little-endian), a type byte
** and its body (docs/FORMAT.md, "Links"). */
#define MC_WIRE_HELLO 'H'  /* "mcl1", u32 heartbeat (ms), the token */
#define MC_WIRE_MSG   'M'  /* u32 nbuf, nbuf u64 lengths, the message's
                           ** bytes, then each Buffer's */
#define MC_WIRE_CLOSE 'C'  /* u8 reason (mc_wire_reason) */
#define MC_WIRE_PING  'P'  /* nothing: the link is alive */
#define MC_WIRE_HEAD  5    /* length and type */

typedef struct mc_Frame {
  int type;
  const unsigned char *p;  /* its body */
  size_t n;
} mc_Frame;

/* The frame at the start of the n bytes at p: returns its whole size
** (> 0) and fills *f, 0 when more bytes are needed, or -1 when it cannot
** be a frame (an unknown type, or a body over `max` bytes). */
long mc_wire_next (const unsigned char *p, size_t n, size_t max,
                   mc_Frame *f);
/* Appending a frame to b; each returns 0 when out of memory. */
int mc_wire_put_hello (mc_Bytes *b, const char *token, size_t toklen,
                       uint32_t heartbeat_ms);
int mc_wire_put_close (mc_Bytes *b, int reason);
int mc_wire_put_ping (mc_Bytes *b);
/* A message's frame: its bytes, and a copy of each Buffer of its transfer
** list; -1 when a slot holds something else (a port). */
int mc_wire_put_msg (mc_Bytes *b, mc_Msg *m);
/* The most Buffers a message on a link has: their table of lengths (8
** bytes each) fits in the room a reader allows beyond maxMessageSize. */
#define MC_WIRE_MAXBUFFERS 511
/* What a message costs on the wire: its bytes and its Buffers'. */
size_t mc_wire_size (mc_Msg *m);
/* Reading a HELLO: 0 when malformed. The token points into the frame. */
int mc_wire_hello (const mc_Frame *f, const char **token, size_t *toklen,
                   uint32_t *heartbeat_ms);
/* The message of a MSG frame, its Buffers' slots of type `buffer`: NULL
** with *bad set when malformed or over `max` bytes (mc_wire_size), with
** *bad 0 when out of memory. */
mc_Msg *mc_wire_msg (const mc_Frame *f, const mc_Type *buffer, size_t max,
                     int *bad);
/* Close reasons: 0 is a normal close, NULL; the others name why. */
#define MC_REASON_NONE 0
#define MC_REASON_TIMEOUT 1
#define MC_REASON_PROTOCOL 2
#define MC_REASON_AUTH 3
#define MC_REASON_DISCONNECTED 4
#define MC_REASON_REFUSED 5
const char *mc_wire_reason (int code);  /* NULL for 0 and unknown codes */
int mc_wire_code (const char *reason);  /* its code; 0 for NULL and others */

/* ---- nats.c: NATS core subjects, through libnats loaded at run time ---- */

/* What the connections' threads call: a message that came on a subject,
** and a problem (subject NULL: every subject of that server). */
typedef void (*mc_NatsDeliver) (const char *url, const char *subject,
                                const void *data, size_t len);
typedef void (*mc_NatsProblem) (const char *url, const char *subject,
                                const char *text);
void mc_nats_hooks (mc_NatsDeliver deliver, mc_NatsProblem problem);
/* Whether s is a subject one may publish to (no wildcards), short enough
** for the server's protocol line (4 KiB with "SUB", the id and more). */
#define MC_NATS_MAXSUBJECT 1024
/* Whether s is a subject one may publish to (no wildcards). */
int mc_nats_subject (const char *s, size_t len);
/* Joins subject at the server url: one connection per url in the process,
** one subscription per url and subject, counted. Returns 0, or 1 with
** why in err (n bytes). */
int mc_nats_join (const char *url, const char *subject, char *err,
                  size_t n);
void mc_nats_leave (const char *url, const char *subject);
/* Publishes; returns 0, or 1 with why in err (a post the client could
** not buffer while disconnected, say). */
int mc_nats_publish (const char *url, const char *subject, const void *p,
                     size_t len, char *err, size_t n);

/* ---- net.c: the network thread ---- */

/* An address a connect goes on to when the one before refused it. */
typedef struct mc_NetAddr {
  socklen_t len;
  struct sockaddr_storage sa;
} mc_NetAddr;

/* What each side of a link applies (API.md 12). */
typedef struct mc_NetOptions {
  char *token;      /* malloc'd, or NULL: none */
  size_t toklen;
  double heartbeat; /* seconds */
  size_t capacity;  /* messages */
  size_t maxsize;   /* bytes */
  mc_NetAddr *alts; /* a connect's: malloc'd, or NULL: the other */
  size_t nalts;     /* addresses its host name resolved to, in order */
} mc_NetOptions;

/* The types whose objects the network thread makes (a listener's new
** ports, the Buffers a message brings); set before the first link. */
void mc_net_types (const mc_Type *port, const mc_Type *buffer);
/* Hands a socket to the network thread (started the first time), which
** owns it from now on, with the options (their token and addresses
** too; o is left without them). A link: fd connects (connecting: 1, the
** connect is under way; MC_NET_AGAIN, a Unix listener's backlog is full:
** the thread connects it to o->alts[0] again) and end e of g is its
** partner's. A listener: fd listens, and each new link
** that passes the token is posted to end e of g as a message that
** transfers a port; `path` is a Unix socket's, removed when it closes.
** Returns 0 (errno set) on failure, having closed fd and given up
** nothing else. */
#define MC_NET_AGAIN 2
int mc_net_link (int fd, int connecting, mc_Group *g, size_t e,
                 mc_NetOptions *o);
int mc_net_listen (int fd, const char *path, mc_Group *g, size_t e,
                   mc_NetOptions *o);
/* A post to end `to` of remote pair g from the state of hub `self`,
** written straight to its link's socket by the posting thread when
** nothing waits before it: returns 2 when m went that way and the link
** has no output left, 1 when m went that way and output is left (m is
** still the caller's to free either way), else 0 (post it as usual). */
int mc_net_send (mc_Group *g, size_t to, mc_Msg *m, mc_Hub *self);
/* mc_hub_wait for a Lua state's scheduler: while it sleeps, the state
** also watches the sockets of the links whose ports it holds, and reads
** them itself when they are readable (one wake-up rather than the
** network thread's and then its own). */
size_t mc_net_wait (mc_Hub *h, double seconds, uint32_t **buf, size_t *cap,
                    int *flags);
/* Waits until every link has written what it had to send (a closed
** pair's link: its close too; or failed) and connects under way are up
** or refused: returns how many are left after `seconds`
** (< 0: no limit). With h, only the links whose port the state of hub h
** owns (or owned last); NULL: every link of the process. */
size_t mc_net_drain (double seconds, mc_Hub *h);
/* The same without waiting, for a state (of hub h) that steps: 1 while
** links may still have output to write, then, once a turn of the
** network thread begun after the first call (or the last with `renew`:
** see mc_Ctx's drains) found none (h is pinged then), 0 at the next
** call. With `own`, only the links of h's state count, as for
** mc_net_drain. */
int mc_net_watch (mc_Hub *h, int renew, int own);
/* h watches no more (mc.run drained everything, or its state is gone). */
void mc_net_unwatch (mc_Hub *h);
/* Waits until the thread has seen everything done before this call (a
** listener's pair closed: its socket is closed when this returns). */
void mc_net_sync (void);

/* ---- ctx.c: the per-state context ---- */

/* Slots of the context table, upvalue 1 of every C function that needs
** the context (upvalue 2 is its mc_Ctx, slot MC_CTX_C). The table is kept
** in the registry: every load of the module in a Lua state shares it. */
#define MC_CTX_C         1  /* the mc_Ctx userdata */
#define MC_CTX_OBJECTS   2  /* id -> port or Worker handle, weak values */
#define MC_CTX_PINNED    3  /* id -> object kept alive for another
                            ** thread, or false: every registered id
                            ** has its slot, so pinning never allocates */
#define MC_CTX_RUNQ      4  /* the run queue, tail at [0]: C appends (the
                            ** scheduler through core.enqueue), the
                            ** scheduler takes from the front */
#define MC_CTX_SCRATCH   5  /* codec scratch memory (codec.c) */
#define MC_CTX_NAME2MT   6  /* mc.register: name -> metatable */
#define MC_CTX_MT2NAME   7  /* and back */
#define MC_CTX_READ      8  /* message.c's protected reader */
#define MC_CTX_FILL      9  /* and filler */
#define MC_CTX_WAKER    10  /* a function mc_ctx_wake calls (an adapter's) */
#define MC_CTX_EVENT_MT 11  /* the metatable of events (eventtarget.lua) */
#define MC_CTX_EVENTS   12  /* 12, 13, 14, 15: sched.c's event type names */
#define MC_CTX_WAITROOM 16  /* the scheduler's wait for room (port.c) */
#define MC_CTX_OWN_MT   17  /* metatable -> name: the module's own objects
                            ** made in Lua, which are not cloneable */
#define MC_CTX_MERGE    18  /* sched.c's protected merge for a post */
#define MC_CTX_KEYS     19  /* 19, 20, ...: sched.c's field names */

#define MC_MAXTYPES 8

/* A message a poll queues a token for, in the order of arrival
** (sched.c): its arrival (mc_Slot), its receiver's id, and the order met. */
typedef struct mc_Due {
  uint64_t arrival;
  uint32_t id, seq;
} mc_Due;

/* Something of a state to let go when its context is collected, if it has
** not been by then: a state closing runs no finalizer of an object made
** in another finalizer (Lua 5.4 registers none, 5.1 to 5.3 free it
** unrun; LuaJIT runs it, maybe after the context's). */
typedef struct mc_CtxLink {
  struct mc_CtxLink *prev, *next;
  void (*close) (struct mc_CtxLink *l);
} mc_CtxLink;

typedef struct mc_Ctx {
  mc_Hub *hub;      /* NULL once the context is collected */
  uint32_t next_id;
  uint32_t *freed;  /* ids of collected objects, to use again */
  size_t nfreed, capfreed;
  size_t nlive;     /* ids registered and not collected */
  size_t pinslots;  /* slots of the pinned table (mc_ctx_trim_ids) */
  uint32_t *news;   /* ids taken from the hub */
  size_t capnews;
  uint32_t *held;   /* ids a post's merge took from the hub that the next
                    ** poll returns (Worker handles, writers: sched.c) */
  size_t nheld, capheld;
  unsigned polls;   /* polls that merged (never 0: mc_Recv.polled) */
  mc_Due *due;      /* a poll's messages, to sort (sched.c) */
  size_t capdue;
  uint64_t *arrived;  /* and their arrivals, as read */
  size_t caparrived;
  const mc_Type *types[MC_MAXTYPES];
  const void *typemt[MC_MAXTYPES];  /* their metatables (kept in the
                                    ** context table at -1, -2, ...) */
  int ntypes;
  int exposed;      /* mc.pollfd was asked: a host loop may wait on it */
  int waker;        /* MC_CTX_WAKER holds a function */
  int looping;      /* a scheduler loop (run, step, ...) is running */
  int drains;       /* a remote port was closed here, arrived here, or
                    ** was posted to and its link had output left: 2
                    ** since the last mc_net_watch, 1 while it says
                    ** output may still be written (remote.c) */
  int lost;         /* enqueues an error cut short: poll looks at every
                    ** object, so that their tokens are queued again */
  int noalloc;      /* enqueue only into slots that exist (a kick after
                    ** a change it must not fail) */
  int merging;      /* a poll's merge runs (sched.c): one a finalizer's
                    ** post would start inside it kicks instead */
  long long merged_upto;  /* the run queue's tail after the last merge
                          ** queued tokens (sched.c) */
  long long tail;   /* the run queue's tail, as at its [0], which only C
                    ** writes (ctx.c's enqueue, sched.c's runq_empty and
                    ** runq_front): a token is queued, and the tail
                    ** looked at, without reading it */
  long long room;   /* the run queue's slots tail + 1 .. room exist
                    ** (mc_ctx_reserve made them): the Lua side empties
                    ** only slots up to the head, so they stay until a
                    ** token takes them or the queue starts over */
  int interactive;  /* SIGINT reaches this thread (its waits are sliced) */
  int worker;       /* a Worker's state: its drain waits for the links of
                    ** its own ports only (the process goes on) */
  struct lua_State *main;  /* the state's main thread, or NULL (unknown) */
  /* a worker's hook that raises while its thread is to stop, or NULL */
  void (*stophook) (struct lua_State *L, struct lua_Debug *ar);
  mc_CtxLink links;  /* the list's head */
  mc_CtxLink later;  /* the head of what the next poll does first */
} mc_Ctx;

/* Pushes the state's context table, making it the first time, around hub
** (a worker's, made before its state) or a new hub when hub is NULL. */
void mc_ctx_open (struct lua_State *L, mc_Hub *hub);
mc_Ctx *mc_ctx (struct lua_State *L);
/* Pushes the two upvalues of the module's C functions, from the context
** table at ctx; returns 2. */
int mc_ctx_upvalues (struct lua_State *L, int ctx);
/* Sets the functions of l in the module table at -2, each with the
** context (from the table at -1) as its upvalues. */
struct luaL_Reg;
void mc_ctx_setfuncs (struct lua_State *L, const struct luaL_Reg *l);
/* The state's hub. Raises once the context is collected: the state is
** closing, and a finalizer that runs after the context's may still call
** the module. */
mc_Hub *mc_ctx_hub (struct lua_State *L);
/* Lists l, to be closed by the context's finalizer unless unlinked first
** (unlinking twice does nothing). */
void mc_ctx_link (struct lua_State *L, mc_CtxLink *l,
                  void (*close) (mc_CtxLink *l));
void mc_ctx_unlink (mc_CtxLink *l);
/* Lists l for the state's next poll (sched.c), which unlinks it and calls
** close(l) before it takes the news, or for the context's finalizer,
** whichever comes first; wakes a host loop to step. */
void mc_ctx_later (struct lua_State *L, mc_CtxLink *l,
                   void (*close) (mc_CtxLink *l));
/* Does what mc_ctx_later listed. */
void mc_ctx_run_later (mc_Ctx *c);
/* Gives the object at idx an id: another thread's news for it find it. */
uint32_t mc_ctx_register (struct lua_State *L, int idx);
void mc_ctx_unregister (struct lua_State *L, uint32_t id);  /* collected */
void mc_ctx_push (struct lua_State *L, uint32_t id);  /* the object, or nil */
void mc_ctx_pin (struct lua_State *L, int idx, uint32_t id, int on);
void mc_ctx_trim_ids (struct lua_State *L);
/* Appends the value at idx to the run queue n times. */
/* Queues n tokens of the object at idx; returns how many it queued: in
** `noalloc` mode it stops (and sets `lost`) where a slot would have to be
** made, so that it never raises. */
size_t mc_ctx_enqueue (struct lua_State *L, int idx, size_t n);
/* Makes the next n run-queue slots exist (false), so that n tokens queue
** without allocating: called before a change whose kick must not fail. */
void mc_ctx_reserve (struct lua_State *L, size_t n);
/* Something may now keep the scheduler going, or is ready to run: unless a
** scheduler loop runs already, a host loop waiting on the descriptor is
** woken to step, and the waker (an adapter's) is called. */
void mc_ctx_wake (struct lua_State *L);
/* Raises "the worker was terminated" when this state's thread is to stop:
** module calls a compiled LuaJIT loop makes are where terminate() can
** stop it (a count hook never runs in compiled code), and so are those of
** a worker that took its count hook off (debug.sethook()). */
void mc_ctx_check_stop (struct lua_State *L);
/* Before an error raised because the thread is to stop: sets the worker's
** stop hook on L again, to run at L's next instruction, so that code that
** catches the error is stopped there. */
void mc_ctx_arm_stop (struct lua_State *L);
/* The error a worker's code gets where terminate() stops it. */
#define MC_TERMINATED "messagechannel: the worker was terminated"
/* Raises MC_TERMINATED, the stop hook set first. */
int mc_ctx_raise_stop (struct lua_State *L);
/* After co's hook was put back (sched.c's raise_at): sets the worker's
** stop hook on co again when the thread is to stop, in case the stop
** signal's hook was what the putting back replaced. Callable from a hook
** (it finds the context through the registry). */
void mc_ctx_rearm_stop (struct lua_State *L, struct lua_State *co);
/* Adds a type (the same type again is a no-op); mc_ctx_type tries them
** in the order they were added. */
void mc_ctx_add_type (struct lua_State *L, const mc_Type *t);
const mc_Type *mc_ctx_type (struct lua_State *L, int idx);  /* or NULL */
/* What the value at idx is, for an argument error: the module's name for
** one of its objects ("BroadcastChannel", "MessageChannel"), "light
** userdata", else its Lua type's name. A static string either way. */
const char *mc_ctx_typename (struct lua_State *L, int idx);
/* Pushes and returns how an error names the key at idx of a table: 'k'
** for a string (a control byte in it as \<decimal code>), [k] for a
** number or a boolean (as Lua writes such a key), else (a T key) with T
** its mc_ctx_typename. */
const char *mc_ctx_keyname (struct lua_State *L, int idx);
/* The object at idx when it is of type t, else NULL. */
void *mc_ctx_testudata (struct lua_State *L, int idx, const mc_Type *t);
/* The same, or raises `bad argument` naming t and what idx holds. */
void *mc_ctx_checkudata (struct lua_State *L, int idx, const mc_Type *t);
/* Raises "table expected, got <what>" unless idx is a table that is none
** of the module's objects (an options table, a metatable). */
void mc_ctx_checktable (struct lua_State *L, int idx);
const mc_Type *mc_ctx_type_by_tag (struct lua_State *L, int tag);

/* ---- codec.c: structured clone ---- */

void mc_codec_open (struct lua_State *L);
/* Encodes the value at idx (raising DataCloneError) and pushes the codec
** scratch that holds the bytes, returned (mc_msg_adopt may take them);
** mc_encode_done gives the scratch back. xmap, if not 0, is a transfer
** list (object -> its index from 1). */
mc_Bytes *mc_encode (struct lua_State *L, int idx, int xmap);
void mc_encode_done (struct lua_State *L, int sidx);
/* Pushes the decoded value of n bytes at p, or raises DataCloneError.
** xarr, if not 0, is the array of the objects the message transferred. */
void mc_decode (struct lua_State *L, const unsigned char *p, size_t n,
                int xarr);
/* Pushes a clone of the value at idx. xmap, if not 0, is a transfer list
** (as for mc_encode) and blanks the array of the new objects that stand
** for its entries in the clone. */
void mc_copy (struct lua_State *L, int idx, int xmap, int blanks);
int mc_serialize (struct lua_State *L);
int mc_deserialize (struct lua_State *L);
int mc_register (struct lua_State *L);
/* not_cloneable(mt, name): tables with metatable mt are the module's own
** objects called name (made in Lua), and raise DataCloneError as
** MessagePort does. */
int mc_not_cloneable (struct lua_State *L);

/* ---- message.c: transfer lists and the message pipeline ---- */

void mc_message_open_ctx (struct lua_State *L);
/* Checks the transfer argument at `transfer` (none, nil, an array or
** {transfer = array}) for a message posted through group `from` (may be
** NULL), encodes the value at `value`, and returns a new message whose
** slots borrow the payloads of the list's objects. Pushes the list
** (object -> index as well as index -> object), or nil when there is
** none. Raises DataCloneError, or "not enough memory", having lent
** nothing. */
mc_Msg *mc_message_make (struct lua_State *L, int value, int transfer,
                         const struct mc_Group *from);
/* The message was queued: detaches the objects of the list at index
** `list` (nil: none). */
void mc_message_commit (struct lua_State *L, int list);
/* It was not: the objects of that list are their own again, and m is
** freed. */
void mc_message_unlend (struct lua_State *L, int list, mc_Msg *m);
/* Pushes the value of message m and the array of new, still empty
** objects for its slots (nil when none), and returns 0; or, when m cannot
** be decoded, pushes the error and nil and returns non-zero. m stays as it
** was either way. */
int mc_message_read (struct lua_State *L, mc_Msg *m);
/* After a read, with its objects at the top: hands each slot's payload to
** its object, frees m and returns 0; or, when an object cannot take its
** payload (no memory), frees m, pushes the error and returns non-zero. */
int mc_message_fill (struct lua_State *L, mc_Msg *m);
int mc_structured_clone (struct lua_State *L);

/* ---- sched.c: the C half of the scheduler ---- */

/* The start of every receiver's userdata: an object that owns an end of a
** group and dispatches what arrives there as events. The run queue holds
** one token per entry of its queue that can be dispatched (kick). Its
** uservalue U is shared with the Lua side: U.lists (event type -> array
** of listener records, absent when empty) and U.waiters (tasks waiting in
** receive); mc_recv_changed reads them. */
typedef struct mc_Recv {
  mc_Group *group;  /* NULL once collected or moved away */
  size_t end;
  uint32_t id;      /* in the context */
  int started;
  int listening;    /* has a message listener */
  int waiting;      /* tasks wait in receive */
  int wants;        /* listeners of its event types, or waiting tasks */
  int unref;
  int lent;         /* MC_LENT_READ: its head message is being read
                    ** (take); MC_LENT_MOVED: a message being made
                    ** borrows its end (a transfer list), and
                    ** MC_LENT_CLOSED once close() came meanwhile: done
                    ** if the transfer is undone (port.c) */
  mc_Msg *reading;  /* while MC_LENT_READ: the message read, which a
                    ** release meanwhile leaves to the read to free */
  int writing;      /* posts wait for room at its partner: news for it
                    ** goes to the Lua side (poll returns it) */
  size_t tokens;    /* its entries in the run queue */
  unsigned takes;   /* counts the entries taken off its queue here: a
                    ** read that no take came after need not look at the
                    ** head again (sched.c's head_event) */
  unsigned gen;     /* counts the rereads of its listeners and waiters:
                    ** a dispatch that reads them once checks it */
  unsigned polled;  /* the poll that last took its messages in arrival
                    ** order (sched.c's merge): once a poll is enough */
  int deferred;     /* messages of its wait for a later merge (sched.c's
                    ** defer): 1, or 2 once a merge took them all */
} mc_Recv;

#define MC_LENT_READ 1
#define MC_LENT_MOVED 2
#define MC_LENT_CLOSED 3

void mc_sched_open (struct lua_State *L);
/* The scheduler's timer heap (timers.c). */
void mc_timers_open (struct lua_State *L);
/* Pushes a new receiver userdata of type t (size bytes, starting with an
** mc_Recv), with its uservalue and its id, holding no end yet. */
mc_Recv *mc_recv_new (struct lua_State *L, const mc_Type *t, size_t size);
/* r takes end e of g (g's reference becomes r's). */
void mc_recv_attach (struct lua_State *L, mc_Recv *r, mc_Group *g, size_t e);
/* r lets go of its end: collected, or moved to another state. */
void mc_recv_release (struct lua_State *L, mc_Recv *r, int for_good);
/* The end of the __gc of the receiver at idx, which let go of its end: its
** id goes back, unless the call is by hand while tasks wait in its
** receive (they hold it): they are then woken to get the close. */
void mc_recv_finalized (struct lua_State *L, int idx, mc_Recv *r);
/* Pushes the object with the given id in this state; returns it when it
** is a receiver that holds an end, else NULL. */
mc_Recv *mc_recv_push (struct lua_State *L, uint32_t id);
/* Queues tokens for what r (at idx) can dispatch now: MC_TAKE_MAX of its
** messages at most, the rest at the next polls (sched.c: "Global post
** order"). */
#define MC_TAKE_MAX 1024
void mc_recv_kick (struct lua_State *L, int idx, mc_Recv *r);
/* The same after a change that must not be undone: it queues only into
** slots reserved before the change (mc_ctx_reserve) and leaves the rest
** to the next poll, so it never raises. */
void mc_recv_kick_safe (struct lua_State *L, int idx, mc_Recv *r);
/* mc_recv_kick_safe after a message was queued at r's end by this state:
** it is due at once unless something ahead of it waits for a poll. */
void mc_recv_kick_posted (struct lua_State *L, int idx, mc_Recv *r);
/* The n receivers here (ids) that one post made here has just queued a
** message at (the channels of a broadcast, each pinned while it has a
** listener): each is kicked as mc_recv_kick_posted when nothing from
** another thread can be ahead of that message anywhere in this state,
** else a poll's merge runs at once, without a wait, so that the post's
** messages are due after what arrived before them, at every receiver
** (sched.c: "Global post order"). Never raises. */
void mc_recv_kick_posted_here (struct lua_State *L, const uint32_t *ids,
                               size_t n);
/* The receiver here (id) whose partner, here too, has just posted it a
** message: kicked as mc_recv_kick_posted when it cannot dispatch or when
** nothing from another thread can be ahead of that message in this
** state, else left for the next poll's merge (told to the hub, pinned
** meanwhile), which queues it after what arrived before it: then it uses
** no run-queue slot and allocates nothing from Lua. Never raises. */
void mc_recv_kick_posted_port (struct lua_State *L, uint32_t id);
/* The receiver at idx (a BroadcastChannel not joined to NATS, whose
** error events must be told) gets run-queue tokens that do not keep it
** alive while it has no listener (its messages are then dispatched to no
** one): a channel that nothing references is collected with what is
** queued for it (API.md 11). Such a token is the table {false, object}
** with a weak value; the scheduler skips it once the object is gone. */
void mc_recv_untie (struct lua_State *L, int idx);
/* Decides what keeps r (at idx) alive: its partner when that lives in
** this state, else the pinned table while it wants events and may still
** get one (its close not yet taken). */
void mc_recv_repin (struct lua_State *L, int idx, mc_Recv *r);
/* The held post of the writer w (a table at index w, the first of port's
** U.writers; p the port at index port) was sent, or the pair closed
** while it waited: w is done, its timer
** dead, it leaves U.writers, and p->writing is what is left there.
** Allocates nothing: w's fields exist (scheduler.lua's waitroom), so that
** nothing can fail between the send and this. */
void mc_writer_sent (struct lua_State *L, int port, int w, mc_Recv *p);
/* The same for the receiver here that owns another end of g than e. */
void mc_recv_repin_peer (struct lua_State *L, mc_Group *g, size_t e);
/* Neither the receiver at idx nor its local partner holds the other. */
void mc_recv_unkeep (struct lua_State *L, int idx);
/* Makes the metatable of receiver type t (at the module table, ctx - 1,
** as <field>_metatable, with its methods table as <field>_methods): meta's
** metamethods, and an __index closure of `index` whose upvalue 3 is the
** methods table; mc_recv_index is the common one, which another may
** call. */
struct luaL_Reg;
void mc_recv_open_type (struct lua_State *L, int ctx, const mc_Type *t,
                        const struct luaL_Reg *meta,
                        const struct luaL_Reg *methods,
                        int (*index) (struct lua_State *L),
                        const char *field);
int mc_recv_index (struct lua_State *L);
/* Frees the messages queued at r unread but its notes, the head only
** unless all (mc_group_drop); whether it freed any. Code of this state
** removes from a receiver's queue only through this and sched.c's takes
** (r->takes counts them). */
int mc_recv_drop (mc_Recv *r, int all);
/* The methods ref(), unref() and hasRef() of a receiver type. */
int mc_recv_ref (struct lua_State *L);
int mc_recv_unref (struct lua_State *L);
int mc_recv_hasref (struct lua_State *L);

/* ---- buffer.c, port.c, broadcast.c, worker.c ---- */

void mc_buffer_open (struct lua_State *L);
void mc_port_open (struct lua_State *L);
void mc_broadcast_open (struct lua_State *L);
void mc_remote_open (struct lua_State *L);
/* The types remote.c hands to the network thread. */
const mc_Type *mc_port_type (void);
const mc_Type *mc_buffer_type (void);
/* Pushes a new port that holds no end yet (mc_recv_attach gives it one). */
mc_Recv *mc_port_new (struct lua_State *L);
/* Closes the port at idx as its collection does, allocating nothing
** Lua-side (its __gc); anything else there is left alone. */
void mc_port_discard (struct lua_State *L, int idx);
void mc_worker_open (struct lua_State *L);

#if defined(MC_FAULT_INJECTION)
/* A test build (spec/oom/host.c): the host program gives each worker's
** state its allocator (a lua_Alloc), to make its allocations fail. */
typedef void *(*mc_Alloc) (void *ud, void *ptr, size_t osize, size_t nsize);
mc_Alloc mc_fault_alloc (void **ud);
/* ... and sets up the worker's state made with it (its warnings) */
void mc_fault_state (struct lua_State *L);
#endif

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
