/*
** group.c: the state entangled ports share. Pure C, no Lua. A group is
** its ends' queues under one lock, refcounted by the objects that own an
** end and by the messages that carry one in transit. A MessageChannel's
** pair is a group of two ends: what is posted at one end is queued at the
** other, and close() disentangles both. Owners of other threads are told
** after the lock is released, so that the woken thread does not find it
** held.
**
** Messages queued at an end can only be read by the end's holder: the
** object that owns it, or, while the end is in transit, whoever opens the
** message that carries it. An end whose holder is gone for good (its
** object collected, or the message that carried it freed unread) closes
** the group and lets its queued messages go, and the ports they carry
** close in turn. An end in transit that is carried, through other such
** ends, by a message queued at itself can never be read either: a post
** that closes such a circle frees it (mc_group_sweep).
*/
#include <stdlib.h>
#include <string.h>

#include "mc.h"

mc_Group *mc_group_new (size_t nends) {
  mc_Group *g;
  if (nends == 0 || nends > 64)
    return NULL;
  g = (mc_Group *)calloc(1, sizeof(mc_Group) + nends * sizeof(mc_Queue));
  if (g == NULL)
    return NULL;
  if (mc_lock_init(&g->lock) != 0) {
    free(g);
    return NULL;
  }
  g->end = (mc_Queue *)(g + 1);
  g->nends = nends;
  g->refs = 1;
  g->entangled = 1;
  return g;
}

/* refs changes atomically: a walk (below) takes references while it holds
** another group's lock. */
void mc_group_incref (mc_Group *g) {
  __atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
}

/* Gives a reference back; the messages of a freed group go on *freed. */
static void group_decref (mc_Group *g, mc_Msg **freed) {
  size_t i;
  if (__atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    for (i = 0; i < g->nends; i++)
      mc_queue_clear(&g->end[i], freed);
    pthread_mutex_destroy(&g->lock);
    free(g);
  }
}

void mc_group_decref (mc_Group *g) {
  mc_Msg *freed = NULL;
  group_decref(g, &freed);
  mc_msg_free(freed);
}

size_t mc_group_partner (const mc_Group *g, size_t e) {
  (void)g;
  return 1 - e;
}

/* A ring of at least this many slots is made without the lock (queue.c):
** the reader is not held up for a time that grows with its backlog. */
#define BIG_RING 4096

/* Under g's lock: whether a post to q may go in (1), or its result. */
static int post_room (mc_Group *g, mc_Queue *q, mc_Hub *self,
                      uint32_t writer) {
  if (!g->entangled)
    return 0;
  if (g->capacity > 0 && q->n >= g->capacity)
    return writer == 0 || mc_queue_want_room(q, self, writer) ? MC_FULL : -1;
  return 1;
}

int mc_group_post (mc_Group *g, size_t to, mc_Msg *m, mc_Hub *self,
                   uint32_t *local, uint32_t writer) {
  int r;
  mc_Tell t;
  mc_Queue *q = &g->end[to];
  mc_Slot *ring = NULL;
  size_t cap = 0, want, tried = 0;
  t.hub = NULL;
  *local = 0;
  pthread_mutex_lock(&g->lock);
  for (;;) {  /* again while others grew the queue meanwhile */
    r = post_room(g, q, self, writer);
    want = r == 1 ? mc_queue_full(q) : 0;
    if (want < BIG_RING || want == cap || want == tried)
      break;  /* room, the ring made, or none could be: the push tries */
    pthread_mutex_unlock(&g->lock);
    free(ring);
    ring = mc_queue_ring(want);
    cap = ring != NULL ? want : 0;
    tried = want;
    pthread_mutex_lock(&g->lock);
  }
  if (r == 1) {
    ring = mc_queue_grow(q, ring, cap);  /* now the one to free */
    r = mc_queue_push(q, m) ? 1 : -1;
  }
  if (r == 1)
    *local = mc_queue_arrived(q, self, &t);
  pthread_mutex_unlock(&g->lock);
  free(ring);
  mc_tell(&t);
  return r;
}

void mc_group_load (mc_Group *g, size_t e, size_t *n, size_t *bytes) {
  pthread_mutex_lock(&g->lock);
  *n = g->end[e].n;
  *bytes = g->end[e].bytes;
  pthread_mutex_unlock(&g->lock);
}

/* Under g's lock: disentangles g, filling local[] and t[] as
** mc_group_close says; returns how many of t[] to tell. */
static size_t close_locked (mc_Group *g, size_t from, mc_Hub *self,
                            uint32_t *local, mc_Tell *t) {
  size_t i, k = 0;
  for (i = 0; i < g->nends; i++)
    local[i] = 0;
  if (g->entangled) {
    g->entangled = 0;
    for (i = 0; i < g->nends; i++) {
      size_t e = (from + 1 + i) % g->nends;  /* `from` comes last */
      g->end[e].closed = 1;
      local[e] = mc_queue_arrived(&g->end[e], self, &t[k]);
      if (t[k].hub != NULL)
        k++;
    }
  }
  return k;
}

/* Writers waiting at a closed group's ends: they learn it is closed. */
typedef struct Waiting {
  mc_Writer *w[64];
  size_t n[64];
} Waiting;

static void take_all_writers (mc_Group *g, Waiting *wt) {
  size_t i;
  for (i = 0; i < g->nends; i++)
    wt->n[i] = mc_queue_take_writers(&g->end[i], &wt->w[i]);
}

static void tell_all_writers (mc_Group *g, Waiting *wt) {
  size_t i;
  for (i = 0; i < g->nends; i++)
    mc_tell_writers(wt->w[i], wt->n[i]);
}

int mc_group_close (mc_Group *g, size_t from, mc_Hub *self,
                    uint32_t *local) {
  int was;
  size_t i, k;
  mc_Tell t[64];
  Waiting wt;
  pthread_mutex_lock(&g->lock);
  was = g->entangled;
  k = close_locked(g, from, self, local, t);
  take_all_writers(g, &wt);
  pthread_mutex_unlock(&g->lock);
  for (i = 0; i < k; i++)
    mc_tell(&t[i]);
  tell_all_writers(g, &wt);
  return was;
}

void mc_group_release (mc_Group *g, size_t e, mc_Msg **freed) {
  size_t i, k;
  uint32_t local[64];
  mc_Tell t[64];
  Waiting wt;
  pthread_mutex_lock(&g->lock);
  k = close_locked(g, e, NULL, local, t);
  take_all_writers(g, &wt);
  mc_queue_clear(&g->end[e], freed);
  pthread_mutex_unlock(&g->lock);
  for (i = 0; i < k; i++)
    mc_tell(&t[i]);
  tell_all_writers(g, &wt);
  group_decref(g, freed);
}

int mc_group_entangled (mc_Group *g) {
  int e;
  pthread_mutex_lock(&g->lock);
  e = g->entangled;
  pthread_mutex_unlock(&g->lock);
  return e;
}

void mc_group_attach (mc_Group *g, size_t e, mc_Hub *h, uint32_t id) {
  pthread_mutex_lock(&g->lock);
  if (g->end[e].owner.hub != h)
    mc_queue_moved(&g->end[e], h);
  mc_owner_set(&g->end[e].owner, h, id);
  pthread_mutex_unlock(&g->lock);
}

void mc_group_detach (mc_Group *g, size_t e, mc_Hub *h) {
  pthread_mutex_lock(&g->lock);
  if (g->end[e].owner.hub == h)
    mc_owner_set(&g->end[e].owner, NULL, 0);
  pthread_mutex_unlock(&g->lock);
}

int mc_group_owner (mc_Group *g, size_t e, mc_Hub *self) {
  mc_Hub *h;
  pthread_mutex_lock(&g->lock);
  h = g->end[e].owner.hub;
  pthread_mutex_unlock(&g->lock);
  return h == NULL ? MC_OWNER_NONE : h == self ? MC_OWNER_SELF
                                                : MC_OWNER_OTHER;
}

mc_Hub *mc_group_owner_hub (mc_Group *g, size_t e, uint64_t *serial) {
  mc_Hub *h;
  pthread_mutex_lock(&g->lock);
  h = g->end[e].owner.hub;
  if (h != NULL)
    *serial = h->serial;
  pthread_mutex_unlock(&g->lock);
  return h;
}

int mc_group_ended (mc_Group *g, size_t e) {
  int r;
  pthread_mutex_lock(&g->lock);
  r = g->end[e].closetaken;
  pthread_mutex_unlock(&g->lock);
  return r;
}

uint32_t mc_group_local_peer (mc_Group *g, size_t e, mc_Hub *h) {
  uint32_t id = 0;
  size_t i;
  pthread_mutex_lock(&g->lock);
  for (i = 0; g->entangled && i < g->nends && id == 0; i++)
    if (i != e && g->end[i].owner.hub == h)
      id = g->end[i].owner.id;
  pthread_mutex_unlock(&g->lock);
  return id;
}

int mc_group_head (mc_Group *g, size_t e, size_t *count, int *closing) {
  int h;
  mc_Queue *q = &g->end[e];
  pthread_mutex_lock(&g->lock);
  h = mc_queue_head(q);
  *count = q->n;
  *closing = q->closed && !q->closetaken;
  q->owner.notified = 0;  /* the owner is looking now */
  pthread_mutex_unlock(&g->lock);
  return h;
}

int mc_group_head_upto (mc_Group *g, size_t e, size_t from, uint64_t bound,
                        mc_Hub *self, uint64_t *out, size_t room,
                        size_t *count, size_t *due, int *closing) {
  int h;
  size_t i;
  mc_Queue *q = &g->end[e];
  pthread_mutex_lock(&g->lock);
  if (self != NULL && g->nends == 2
      && g->end[mc_group_partner(g, e)].owner.hub == self)
    bound = (uint64_t)-1;  /* posted here: each is in order already */
  h = mc_queue_head(q);
  *count = q->n;
  *closing = q->closed && !q->closetaken;
  q->owner.notified = 0;  /* the owner is looking now */
  for (i = from; i < q->n && i - from < room
                 && mc_queue_arrival(q, i) <= bound; i++)
    if (out != NULL)
      out[i - from] = mc_queue_arrival(q, i);
  *due = i;
  pthread_mutex_unlock(&g->lock);
  return h;
}

int mc_group_peek (mc_Group *g, size_t e, mc_Msg **m, uint64_t *arrival,
                   int *done) {
  int h;
  mc_Queue *q = &g->end[e];
  pthread_mutex_lock(&g->lock);
  h = mc_queue_head(q);
  *m = h == MC_MESSAGE ? mc_queue_at(q, 0) : NULL;
  if (arrival != NULL)
    *arrival = h == MC_MESSAGE ? mc_queue_arrival(q, 0) : 0;
  *done = h != MC_MESSAGE && !g->entangled;
  pthread_mutex_unlock(&g->lock);
  return h;
}

int mc_group_drop (mc_Group *g, size_t e, int all) {
  mc_Msg *freed = NULL;
  mc_Queue *q = &g->end[e];
  mc_Writer *w = NULL;
  size_t i = 0, nw = 0;
  pthread_mutex_lock(&g->lock);
  while (i < q->n) {
    mc_Msg *m = mc_queue_at(q, i);
    if (mc_msg_is_note(m))
      i++;
    else {
      mc_queue_remove(q, i);
      mc_msg_push(&freed, m);
    }
    if (!all)
      break;
  }
  if (freed != NULL)
    nw = mc_queue_take_writers(q, &w);  /* there is room now */
  pthread_mutex_unlock(&g->lock);
  mc_tell_writers(w, nw);
  mc_msg_free(freed);
  return freed != NULL;
}

/* Taking a message makes room: the writers waiting for it are told. */
int mc_group_take (mc_Group *g, size_t e, int what, mc_Msg **m) {
  int h;
  mc_Queue *q = &g->end[e];
  mc_Writer *w = NULL;
  size_t nw = 0;
  *m = NULL;
  pthread_mutex_lock(&g->lock);
  h = mc_queue_head(q);
  if (h == MC_MESSAGE && (what & MC_TAKE_MESSAGE)) {
    *m = mc_queue_shift(q);
    nw = mc_queue_take_writers(q, &w);  /* there is room now */
  }
  else if (h == MC_CLOSED && (what & MC_TAKE_CLOSE))
    q->closetaken = 1;
  else
    h = MC_EMPTY;
  pthread_mutex_unlock(&g->lock);
  mc_tell_writers(w, nw);
  return h;
}


/*
** {======================================================
** Walking what queued messages carry
** =======================================================
*/

/* The ends of a walk, each with a reference to its group; seen maps an
** end's queue to its index. */
static int reach_add (mc_Reach *r, mc_Group *g, size_t e) {
  const void *key = &g->end[e];
  if (mc_ptrmap_get(&r->seen, key) != MC_NOID)
    return 1;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    mc_Group **gs = (mc_Group **)realloc(r->g, cap * sizeof *gs);
    size_t *es;
    if (gs == NULL)
      return 0;
    r->g = gs;
    es = (size_t *)realloc(r->e, cap * sizeof *es);
    if (es == NULL)
      return 0;
    r->e = es;
    r->cap = cap;
  }
  if (r->n >= MC_NOID || !mc_ptrmap_add(&r->seen, key, (uint32_t)r->n))
    return 0;
  mc_group_incref(g);
  r->g[r->n] = g;
  r->e[r->n] = e;
  r->n++;
  return 1;
}

/* Visits the ends that the messages queued at the walk's ends carry, and
** so on, one group's lock at a time. When the walk meets end `te` of tg,
** the message that carries it is taken out of its queue and returned
** (sweep); else NULL, with *ok 0 if memory ran out. */
static mc_Msg *reach_walk (mc_Reach *r, mc_Group *tg, size_t te, int *ok) {
  *ok = 1;
  for (; r->done < r->n; r->done++) {
    mc_Group *g = r->g[r->done];
    mc_Queue *q = &g->end[r->e[r->done]];
    size_t k, j, nx;
    pthread_mutex_lock(&g->lock);
    for (k = 0; k < q->n; k++) {
      mc_Msg *m = mc_queue_at(q, k);
      mc_Xfer *x = mc_msg_xfer(m, &nx);
      for (j = 0; j < nx; j++) {
        if (x[j].type == NULL || !x[j].type->receiver)
          continue;
        if ((mc_Group *)x[j].ptr == tg && x[j].aux == te) {
          mc_queue_remove(q, k);
          pthread_mutex_unlock(&g->lock);
          return m;
        }
        if (!reach_add(r, (mc_Group *)x[j].ptr, x[j].aux)) {
          pthread_mutex_unlock(&g->lock);
          *ok = 0;
          return NULL;
        }
      }
    }
    pthread_mutex_unlock(&g->lock);
  }
  return NULL;
}

void mc_reach_init (mc_Reach *r) {
  memset(r, 0, sizeof *r);
}

int mc_reach_from (mc_Reach *r, mc_Group *g, size_t e) {
  int ok;
  if (!reach_add(r, g, e))
    return 0;
  reach_walk(r, NULL, 0, &ok);
  return ok;
}

int mc_reach_has (const mc_Reach *r, mc_Group *g, size_t e) {
  return mc_ptrmap_get(&r->seen, &g->end[e]) != MC_NOID;
}

void mc_reach_free (mc_Reach *r) {
  mc_Msg *freed = NULL;
  size_t i;
  for (i = 0; i < r->n; i++)
    group_decref(r->g[i], &freed);
  free(r->g);
  free(r->e);
  mc_ptrmap_free(&r->seen);
  mc_msg_free(freed);
  mc_reach_init(r);
}

/* A post to an end in transit may close a circle: that end is then
** carried, through ends in transit, by a message queued at itself. A
** post to an owned end cannot: the owner's own post closes it, and sweeps
** from there after its commit. Of two posts that close one circle
** together, the later finds it whole. */
void mc_group_sweep (mc_Group *g, size_t e) {
  mc_Reach r;
  mc_Msg *m;
  int ok;
  if (mc_group_owner(g, e, NULL) != MC_OWNER_NONE)
    return;
  mc_reach_init(&r);
  m = reach_add(&r, g, e) ? reach_walk(&r, g, e, &ok) : NULL;
  mc_reach_free(&r);
  mc_msg_free(m);  /* and all the circle with it */
}

/* }====================================================== */

void mc_group_set_reason (mc_Group *g, const char *reason) {
  pthread_mutex_lock(&g->lock);
  if (g->entangled)
    g->reason = reason;
  pthread_mutex_unlock(&g->lock);
}

const char *mc_group_reason (mc_Group *g) {
  const char *r;
  pthread_mutex_lock(&g->lock);
  r = g->entangled ? NULL : g->reason;
  pthread_mutex_unlock(&g->lock);
  return r;
}
