/*
** broadcast.c: BroadcastChannel across the threads of the process (API.md
** 11, after the HTML standard's BroadcastChannel).
**
** Each BroadcastChannel object is a receiver (sched.c) that owns the one
** end of a group of its own (group.c), where what others broadcast waits,
** encoded; its listeners and handler fields are the Lua side's. A table
** shared by every Lua state of the process lists the open channels by
** name: a post encodes the message once and queues a copy at each other
** channel of the same name, in list order, under the table's lock, so
** that every receiver sees one sender's messages in the order posted.
** Locks: the table's, then a group's (mc_group_post), then a hub's after
** that (mc_tell); none is taken in the other order.
**
** A channel opened with {nats = url} also publishes its posts to the NATS
** subject of its name (nats.c), and what comes on that subject is queued
** at every open channel of the name in the process. A problem of the
** connection, or a post it lost, is queued as a note (mc_msg_note) in the
** channel's order of messages, which the scheduler dispatches as an error
** event.
*/
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "mc.h"

#define BC_MT "messagechannel.BroadcastChannel"

typedef struct Bc {
  mc_Recv r;      /* first: the object is a receiver */
  char *name;
  size_t len;
  char *url;      /* its NATS server's, or NULL */
  int joined;     /* it joined the NATS subject */
  int closed;     /* close() was called: it neither posts nor receives */
} Bc;

static const mc_Type bc_type;


/*
** {======================================================
** The process's open channels
** =======================================================
*/

typedef struct Entry {
  mc_Group *g;    /* referenced */
  const char *name;  /* the channel's (it outlives the entry) */
  size_t len;
  const char *url;   /* its NATS server's, or NULL (the same) */
  const mc_Hub *hub;  /* of its state, only compared: a channel never
                      ** moves, and leaves the list before its state ends */
  int dropping;       /* NATS arrivals are dropped, its queue full
                      ** (nats_queue); under the list's lock */
} Entry;

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static Entry *list;
static size_t nlist, caplist;

static int list_add (Bc *b, const mc_Hub *hub) {
  int ok = 1;
  pthread_mutex_lock(&list_lock);
  if (nlist == caplist) {
    size_t cap = caplist ? caplist * 2 : 16;
    Entry *e = (Entry *)realloc(list, cap * sizeof *e);
    if (e == NULL)
      ok = 0;
    else {
      list = e;
      caplist = cap;
    }
  }
  if (ok) {
    mc_group_incref(b->r.group);
    list[nlist].g = b->r.group;
    list[nlist].name = b->name;
    list[nlist].len = b->len;
    list[nlist].url = b->url;
    list[nlist].hub = hub;
    list[nlist].dropping = 0;
    nlist++;
  }
  pthread_mutex_unlock(&list_lock);
  return ok;
}

/* The channel whose group is g leaves the list (order kept). */
static void list_remove (mc_Group *g) {
  size_t i;
  int found = 0;
  pthread_mutex_lock(&list_lock);
  for (i = 0; i < nlist && !found; i++)
    found = list[i].g == g;
  if (found) {
    for (; i < nlist; i++)
      list[i - 1] = list[i];
    nlist--;
  }
  if (nlist == 0) {
    free(list);
    list = NULL;
    caplist = 0;
  }
  pthread_mutex_unlock(&list_lock);
  if (found)
    mc_group_decref(g);
}

/* }====================================================== */


static Bc *check_bc (lua_State *L, int idx) {
  return (Bc *)mc_ctx_checkudata(L, idx, &bc_type);
}

/* channel(name [, url]): a new BroadcastChannel, open and listed, that
** joined the NATS subject `name` at url when given. */
static int bc_new (lua_State *L) {
  size_t len, ulen = 0;
  const char *name = luaL_checklstring(L, 1, &len);
  const char *url = luaL_optlstring(L, 2, NULL, &ulen);
  Bc *b;
  mc_Group *g;
  char err[512];
  if (url != NULL && (strlen(name) != len || !mc_nats_subject(name, len)))
    return luaL_error(L, "bad argument #1 to 'BroadcastChannel' (a NATS "
                         "subject of at most %d bytes expected: tokens "
                         "separated by '.', no white space, '*' or '>')",
                      MC_NATS_MAXSUBJECT);
  if (url != NULL && (ulen == 0 || strlen(url) != ulen))
    return luaL_error(L, "bad argument #2 to 'BroadcastChannel' ('nats' "
                         "must be a server URL such as "
                         "nats://127.0.0.1:4222)");
  b = (Bc *)mc_recv_new(L, &bc_type, sizeof(Bc));
  if (url == NULL)  /* a NATS channel's error events must be told: its
                    ** tokens hold it */
    mc_recv_untie(L, -1);
  b->name = (char *)malloc(len + 1);
  if (b->name == NULL)
    return luaL_error(L, "not enough memory");
  memcpy(b->name, name, len + 1);
  b->len = len;
  if (url != NULL && (b->url = (char *)malloc(ulen + 1)) == NULL)
    return luaL_error(L, "not enough memory");
  if (url != NULL)
    memcpy(b->url, url, ulen + 1);
  if ((g = mc_group_new(1)) == NULL)
    return luaL_error(L, "not enough memory");
  mc_recv_attach(L, &b->r, g, 0);  /* g's reference is the object's */
  b->r.started = 1;  /* a listener receives at once (HTML) */
  if (url != NULL && mc_nats_join(url, b->name, err, sizeof err))
    return luaL_error(L, "BroadcastChannel: %s", err);
  b->joined = url != NULL;
  if (!list_add(b, mc_ctx_hub(L)))
    return luaL_error(L, "not enough memory");
  return 1;
}

/* Leaves the list and lets the end go with what waits there: nothing
** more is sent to it or dispatched from it. */
static void bc_shut (lua_State *L, Bc *b) {
  if (b->r.group != NULL) {
    list_remove(b->r.group);
    mc_recv_release(L, &b->r, 1);
  }
  if (b->joined)
    mc_nats_leave(b->url, b->name);
  b->joined = 0;
  b->closed = 1;
}

static int bc_close (lua_State *L) {
  Bc *b = check_bc(L, 1);
  bc_shut(L, b);
  mc_recv_repin(L, 1, &b->r);
  return 0;
}

static int bc__gc (lua_State *L) {
  Bc *b = (Bc *)mc_testudata(L, 1, BC_MT);
  if (b == NULL)
    return 0;
  bc_shut(L, b);
  mc_recv_finalized(L, 1, &b->r);
  free(b->name);
  b->name = NULL;
  b->len = 0;  /* a finalizer that sees it after this sees the name "" */
  free(b->url);
  b->url = NULL;
  return 0;
}

static int same_name (const Entry *e, const Bc *b) {
  return e->g != b->r.group && e->len == b->len
         && memcmp(e->name, b->name, b->len) == 0;
}

/* The ids of the receivers here that a post reached: a few on the C
** stack, more in a block of their own. */
typedef struct Local {
  uint32_t some[16];
  uint32_t *ids;
  size_t n, cap;
  int lost;  /* an id did not fit (out of memory) */
} Local;

static void local_add (Local *l, uint32_t id) {
  if (l->n == l->cap) {
    size_t cap = l->cap * 2;
    uint32_t *ids = l->ids == l->some ? NULL : l->ids;
    ids = (uint32_t *)realloc(ids, cap * sizeof *ids);
    if (ids == NULL) {
      l->lost = 1;
      return;
    }
    if (l->ids == l->some)
      memcpy(ids, l->some, sizeof l->some);
    l->ids = ids;
    l->cap = cap;
  }
  l->ids[l->n++] = id;
}

/* Queues m (taken: freed or queued) at every other open channel of b's
** name, a copy of its bytes for all but the last, which gets m itself;
** the ids of those that live in this state go to *local. Out of memory, a
** receiver misses the message, as a closed one would: the sender is not
** told (HTML's post never fails). */
static void fan_out (lua_State *L, Bc *b, mc_Msg *m, Local *local) {
  size_t i, last = 0, len;
  const unsigned char *data = mc_msg_data(m, &len);
  mc_Hub *self = mc_ctx_hub(L);
  pthread_mutex_lock(&list_lock);
  for (i = 0; i < nlist; i++)
    if (same_name(&list[i], b))
      last = i + 1;
  for (i = 0; i < last; i++) {
    mc_Msg *copy;
    uint32_t id = 0;
    if (!same_name(&list[i], b))
      continue;
    copy = i + 1 == last ? m : mc_msg_new(data, len, 0);
    if (copy == NULL)
      continue;
    if (mc_group_post(list[i].g, 0, copy, self, &id, 0) != 1) {
      if (copy == m)
        break;  /* freed below */
      mc_msg_free(copy);
    }
    else {
      if (copy == m)
        m = NULL;
      if (id != 0)
        local_add(local, id);
    }
  }
  pthread_mutex_unlock(&list_lock);
  mc_msg_free(m);
}

/* How many other open channels of b's name live in this state: as many
** as a post will kick. Channels never move between states, and only this
** thread opens one here, so the count holds until the post. */
static size_t count_local (lua_State *L, Bc *b) {
  size_t i, n = 0;
  mc_Hub *self = mc_ctx_hub(L);
  pthread_mutex_lock(&list_lock);
  for (i = 0; i < nlist; i++)
    if (same_name(&list[i], b) && list[i].hub == self)
      n++;
  pthread_mutex_unlock(&list_lock);
  return n;
}

/* Publishes m's bytes to b's NATS subject; a post the client could not
** take is an error event at b, after what b has queued. */
static void publish (lua_State *L, Bc *b, mc_Msg *m) {
  size_t len;
  const unsigned char *p = mc_msg_data(m, &len);
  char err[256];
  if (mc_nats_publish(b->url, b->name, p, len, err, sizeof err)) {
    mc_Msg *note = mc_msg_note(err);
    uint32_t id = 0;
    if (note != NULL
        && mc_group_post(b->r.group, 0, note, mc_ctx_hub(L), &id, 0) != 1)
      mc_msg_free(note);
    if (id != 0)
      mc_recv_kick_posted(L, 1, &b->r);
  }
}

static int named (const Entry *e, const char *name, size_t len) {
  return e->len == len && memcmp(e->name, name, len) == 0;
}

/* A channel whose state has not dispatched this much of what came over
** NATS (libnats's own default pending limits) drops what comes next,
** with an error event, until it has room again. */
#define NATS_PENDING_MESSAGES 65536
#define NATS_PENDING_BYTES (64 * 1024 * 1024)

/* Queues a copy of what came over NATS at entry e, unless e's queue is
** full (one message alone never is): then an error event, once until
** there is room again. */
static void nats_queue (Entry *e, const void *data, size_t len) {
  mc_Msg *copy;
  uint32_t id;
  size_t n, bytes;
  mc_group_load(e->g, 0, &n, &bytes);
  if (n >= NATS_PENDING_MESSAGES
      || (n > 0 && bytes + len > NATS_PENDING_BYTES)) {
    mc_Msg *note;
    if (e->dropping)
      return;
    e->dropping = 1;
    note = mc_msg_note("NATS: messages dropped: this channel holds 65536 "
                       "messages or 64 MB that its state has not "
                       "dispatched (a slow consumer)");
    if (note != NULL && mc_group_post(e->g, 0, note, NULL, &id, 0) != 1)
      mc_msg_free(note);
    return;
  }
  e->dropping = 0;
  copy = mc_msg_new(data, len, 0);
  if (copy != NULL && mc_group_post(e->g, 0, copy, NULL, &id, 0) != 1)
    mc_msg_free(copy);
}

/* What came on a NATS subject from the server at url, on a libnats
** thread: queued at every open channel of that name in the process that
** joined through url, and at those that joined no server when url is the
** first the name's channels joined (two URLs of one server are two
** connections that both hear every post: each channel hears it once).
** The posting process's own posts do not come back (nats.c). */
static void nats_deliver (const char *url, const char *subject,
                          const void *data, size_t len) {
  size_t i, n = strlen(subject);
  const char *first = NULL;
  pthread_mutex_lock(&list_lock);
  for (i = 0; i < nlist && first == NULL; i++)
    if (named(&list[i], subject, n))
      first = list[i].url;
  for (i = 0; i < nlist; i++) {
    const char *via = list[i].url != NULL ? list[i].url : first;
    if (named(&list[i], subject, n) && via != NULL && strcmp(via, url) == 0)
      nats_queue(&list[i], data, len);
  }
  pthread_mutex_unlock(&list_lock);
}

/* A problem of the connection to url (subject NULL: for all its
** channels), on a libnats thread: a note at each channel it concerns. */
static void nats_problem (const char *url, const char *subject,
                          const char *text) {
  size_t i;
  pthread_mutex_lock(&list_lock);
  for (i = 0; i < nlist; i++) {
    mc_Msg *note;
    uint32_t id;
    if (list[i].url == NULL || strcmp(list[i].url, url) != 0
        || (subject != NULL && (strlen(subject) != list[i].len
                                || memcmp(list[i].name, subject,
                                          list[i].len) != 0)))
      continue;
    note = mc_msg_note(text);
    if (note != NULL && mc_group_post(list[i].g, 0, note, NULL, &id, 0) != 1)
      mc_msg_free(note);
  }
  pthread_mutex_unlock(&list_lock);
}

/* postMessage(message): clones message (no transfer list) to every other
** open BroadcastChannel of the same name, in every thread. */
static int bc_postMessage (lua_State *L) {
  Bc *b = check_bc(L, 1);
  Local local;
  mc_Msg *m;
  luaL_argcheck(L, lua_isnoneornil(L, 3), 3,
                "a BroadcastChannel takes no transfer list");
  lua_settop(L, 2);
  if (b->closed)
    return luaL_error(L, "InvalidStateError: the BroadcastChannel is "
                         "closed");
  mc_ctx_check_stop(L);
  mc_ctx_reserve(L, count_local(L, b) + (size_t)b->joined);  /* the kicks
                        ** after the post must not fail: the other
                        ** channels' here, and b's own for an error event
                        ** (publish) */
  lua_pushnil(L);  /* no transfer list */
  m = mc_message_make(L, 2, 3, NULL);  /* bc, message, nil, list */
  if (b->joined)
    publish(L, b, m);
  local.ids = local.some;
  local.cap = sizeof local.some / sizeof local.some[0];
  local.n = 0;
  local.lost = 0;
  fan_out(L, b, m, &local);
  mc_recv_kick_posted_here(L, local.ids, local.n);
  if (local.ids != local.some)
    free(local.ids);
  if (local.lost)  /* the next poll looks at every object */
    mc_ctx(L)->lost = 1;
  return 0;
}

/* "BroadcastChannel (<name>[, closed])", the whole name (it may hold
** zero bytes). */
static int bc__tostring (lua_State *L) {
  Bc *b = check_bc(L, 1);
  lua_pushliteral(L, "BroadcastChannel (");
  lua_pushlstring(L, b->name != NULL ? b->name : "", b->len);
  lua_pushstring(L, b->closed ? ", closed)" : ")");
  lua_concat(L, 3);
  return 1;
}

/* name, then what every receiver has (mc_recv_index). */
static int bc__index (lua_State *L) {
  Bc *b = (Bc *)mc_testudata(L, 1, BC_MT);
  if (b != NULL && lua_type(L, 2) == LUA_TSTRING
      && strcmp(lua_tostring(L, 2), "name") == 0) {
    lua_pushlstring(L, b->name != NULL ? b->name : "", b->len);
    return 1;
  }
  return mc_recv_index(L);
}

/* A receiver that is never cloned or transferred. */
static const mc_Type bc_type = {
  "BroadcastChannel", BC_MT, 1,
  0, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
};

void mc_broadcast_open (lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", bc__gc},
    {"__close", bc_close},
    {"__tostring", bc__tostring},
    {NULL, NULL}
  };
  static const luaL_Reg methods[] = {
    {"postMessage", bc_postMessage},
    {"close", bc_close},
    {"ref", mc_recv_ref},
    {"unref", mc_recv_unref},
    {"hasRef", mc_recv_hasref},
    {NULL, NULL}
  };
  static const luaL_Reg funcs[] = {
    {"broadcast_channel", bc_new},
    {NULL, NULL}
  };
  int ctx = lua_gettop(L);
  mc_nats_hooks(nats_deliver, nats_problem);
  mc_recv_open_type(L, ctx, &bc_type, meta, methods, bc__index,
                    "broadcast");
  mc_ctx_setfuncs(L, funcs);
}
