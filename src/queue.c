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
#include <string.h>

#include "mc.h"

/* The next arrival in the state of hub h (0 when in transit). */
static uint64_t next_arrival (mc_Hub *h) {
  return h == NULL ? 0 : __atomic_add_fetch(&h->arrivals, 1,
                                            __ATOMIC_RELAXED);
}

size_t mc_queue_full (const mc_Queue *q) {
  if (q->n < q->cap)
    return 0;
  return q->cap == 0 ? 8 : q->cap > (size_t)-1 / 2 / sizeof(mc_Slot)
                           ? (size_t)-1 : q->cap * 2;
}

mc_Slot *mc_queue_ring (size_t cap) {
  mc_Slot *ring;
  size_t len, i;
  if (cap > (size_t)-1 / sizeof *ring)
    return NULL;
  len = cap * sizeof *ring;
  ring = (mc_Slot *)malloc(len);
  if (ring != NULL) {
    mc_bytes_will_fill(ring, len);
    for (i = 0; i < len; i += 4096)  /* a write in each page (of 4 KiB
                                     ** or more): its fault is taken now */
      ((volatile unsigned char *)ring)[i] = 0;
  }
  return ring;
}

/* Moves q's messages into ring, of cap slots, oldest first; returns the
** old ring. */
static mc_Slot *move_to (mc_Queue *q, mc_Slot *ring, size_t cap) {
  mc_Slot *old = q->ring;
  if (q->n > 0) {
    size_t first = q->cap - q->head;  /* from the head to the ring's end */
    if (first > q->n)
      first = q->n;
    memcpy(ring, q->ring + q->head, first * sizeof *ring);
    memcpy(ring + first, q->ring, (q->n - first) * sizeof *ring);
  }
  q->ring = ring;
  q->cap = cap;
  q->head = 0;
  return old;
}

mc_Slot *mc_queue_grow (mc_Queue *q, mc_Slot *ring, size_t cap) {
  if (cap == 0 || cap != mc_queue_full(q))
    return ring;
  return move_to(q, ring, cap);
}

int mc_queue_push (mc_Queue *q, mc_Msg *m) {
  mc_Slot *slot;
  size_t len, cap = mc_queue_full(q);
  if (cap > 0) {
    mc_Slot *ring = cap != (size_t)-1 ? (mc_Slot *)malloc(cap * sizeof *ring)
                                      : NULL;
    if (ring == NULL)
      return 0;
    free(move_to(q, ring, cap));
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
