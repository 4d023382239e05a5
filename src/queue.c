/*
** queue.c: what one receiving end holds. Pure C, no Lua, no lock of its
** own (the group's lock covers it). Messages wait in a ring of pointers
** rather than in a list threaded through them, so that a message could
** one day wait at several ends at once; the close comes after the last of
** them. The owner is the Lua state (its hub) and the object id that read
** the queue: it is told when something arrives from elsewhere. Each
** message is stamped with its arrival in the owner's state (the hub's
** count), so that a reader of several queues can take the oldest.
*/
#include <stdlib.h>

#include "mc.h"

/* The next arrival in the state of hub h (0 when in transit). */
static uint64_t next_arrival (mc_Hub *h) {
  return h == NULL ? 0 : __atomic_add_fetch(&h->arrivals, 1,
                                            __ATOMIC_RELAXED);
}

int mc_queue_push (mc_Queue *q, mc_Msg *m) {
  mc_Slot *slot;
  size_t len;
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 8, i;
    mc_Slot *ring;
    if (cap > (size_t)-1 / sizeof *ring)
      return 0;
    ring = (mc_Slot *)malloc(cap * sizeof *ring);
    if (ring == NULL)
      return 0;
    for (i = 0; i < q->n; i++)  /* unwrapped, oldest first */
      ring[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
  }
  slot = &q->ring[(q->head + q->n) % q->cap];
  slot->m = m;
  slot->arrival = next_arrival(q->owner.hub);
  mc_msg_data(m, &len);
  q->bytes += len;
  q->n++;
  return 1;
}

int mc_queue_head (const mc_Queue *q) {
  if (q->n > 0)
    return MC_MESSAGE;
  return q->closed && !q->closetaken ? MC_CLOSED : MC_EMPTY;
}

mc_Msg *mc_queue_shift (mc_Queue *q) {
  mc_Msg *m;
  size_t len;
  if (q->n == 0)
    return NULL;
  m = q->ring[q->head].m;
  mc_msg_data(m, &len);
  q->bytes -= len;
  q->head = (q->head + 1) % q->cap;
  if (--q->n == 0 && q->cap > 64) {  /* a burst's ring goes with it */
    free(q->ring);
    q->ring = NULL;
    q->cap = q->head = 0;
  }
  return m;
}

mc_Msg *mc_queue_at (const mc_Queue *q, size_t i) {
  return q->ring[(q->head + i) % q->cap].m;
}

uint64_t mc_queue_arrival (const mc_Queue *q, size_t i) {
  return q->ring[(q->head + i) % q->cap].arrival;
}

void mc_queue_remove (mc_Queue *q, size_t i) {
  for (; i > 0; i--)  /* the ones before it move up one */
    q->ring[(q->head + i) % q->cap] = q->ring[(q->head + i - 1) % q->cap];
  mc_queue_shift(q);
}

void mc_queue_drop (mc_Queue *q, mc_Msg **freed) {
  mc_Msg *m;
  while ((m = mc_queue_shift(q)) != NULL)
    mc_msg_push(freed, m);
}

void mc_queue_clear (mc_Queue *q, mc_Msg **freed) {
  mc_Writer *w;
  size_t n;
  mc_queue_drop(q, freed);
  free(q->ring);
  q->ring = NULL;
  q->cap = q->head = 0;
  mc_owner_set(&q->owner, NULL, 0);
  n = mc_queue_take_writers(q, &w);
  while (n > 0)
    mc_hub_decref(w[--n].hub);
  free(w);
}

int mc_queue_want_room (mc_Queue *q, mc_Hub *hub, uint32_t id) {
  size_t i;
  for (i = 0; i < q->nwriters; i++)
    if (q->writers[i].hub == hub && q->writers[i].id == id)
      return 1;
  if (q->nwriters == q->capwriters) {
    size_t cap = q->capwriters ? q->capwriters * 2 : 4;
    mc_Writer *w = (mc_Writer *)realloc(q->writers, cap * sizeof *w);
    if (w == NULL)
      return 0;
    q->writers = w;
    q->capwriters = cap;
  }
  mc_hub_incref(hub);
  q->writers[q->nwriters].hub = hub;
  q->writers[q->nwriters].id = id;
  q->nwriters++;
  return 1;
}

size_t mc_queue_take_writers (mc_Queue *q, mc_Writer **w) {
  size_t n = q->nwriters;
  *w = q->writers;
  q->writers = NULL;
  q->nwriters = q->capwriters = 0;
  return n;
}

void mc_tell_writers (mc_Writer *w, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    mc_hub_notify(w[i].hub, w[i].id);
    mc_hub_decref(w[i].hub);
  }
  free(w);
}

uint32_t mc_queue_arrived (mc_Queue *q, mc_Hub *self, mc_Tell *t) {
  mc_Owner *o = &q->owner;
  t->hub = NULL;
  if (o->hub == NULL)
    return 0;
  if (o->hub == self)
    return o->id;
  if (!o->notified) {  /* once until the owner looks */
    o->notified = 1;
    mc_hub_incref(o->hub);
    t->hub = o->hub;
    t->id = o->id;
  }
  return 0;
}

void mc_tell (mc_Tell *t) {
  if (t->hub != NULL) {
    mc_hub_notify(t->hub, t->id);
    mc_hub_decref(t->hub);
    t->hub = NULL;
  }
}

void mc_queue_moved (mc_Queue *q, mc_Hub *h) {
  size_t i;
  for (i = 0; i < q->n; i++)
    q->ring[(q->head + i) % q->cap].arrival = next_arrival(h);
}

void mc_owner_set (mc_Owner *o, mc_Hub *h, uint32_t id) {
  mc_Hub *old = o->hub;
  if (h != NULL)
    mc_hub_incref(h);
  o->hub = h;
  o->id = id;
  o->notified = 0;
  if (old != NULL)
    mc_hub_decref(old);
}
