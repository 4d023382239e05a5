/*
** queue.c: what one receiving end holds. Pure C, no Lua, no lock of its
** own (the group's lock covers it). Messages wait in a ring of pointers
** rather than in a list threaded through them, so that a message could
** one day wait at several ends at once; the close comes after the last of
** them. The owner is the Lua state (its hub) and the object id that read
** the queue: it is told when something arrives from elsewhere.
*/
#include <stdlib.h>

#include "mc.h"

int mc_queue_push (mc_Queue *q, mc_Msg *m) {
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 8, i;
    mc_Msg **ring;
    if (cap > (size_t)-1 / sizeof *ring)
      return 0;
    ring = (mc_Msg **)malloc(cap * sizeof *ring);
    if (ring == NULL)
      return 0;
    for (i = 0; i < q->n; i++)  /* unwrapped, oldest first */
      ring[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
  }
  q->ring[(q->head + q->n) % q->cap] = m;
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
  if (q->n == 0)
    return NULL;
  m = q->ring[q->head];
  q->head = (q->head + 1) % q->cap;
  if (--q->n == 0 && q->cap > 64) {  /* a burst's ring goes with it */
    free(q->ring);
    q->ring = NULL;
    q->cap = q->head = 0;
  }
  return m;
}

mc_Msg *mc_queue_at (const mc_Queue *q, size_t i) {
  return q->ring[(q->head + i) % q->cap];
}

void mc_queue_remove (mc_Queue *q, size_t i) {
  for (; i > 0; i--)  /* the ones before it move up one */
    q->ring[(q->head + i) % q->cap] = q->ring[(q->head + i - 1) % q->cap];
  mc_queue_shift(q);
}

void mc_queue_clear (mc_Queue *q, mc_Msg **freed) {
  mc_Msg *m;
  while ((m = mc_queue_shift(q)) != NULL)
    mc_msg_push(freed, m);
  free(q->ring);
  q->ring = NULL;
  q->cap = q->head = 0;
  mc_owner_set(&q->owner, NULL, 0);
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
