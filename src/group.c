/*
** group.c: the state entangled ports share. Pure C, no Lua. A group is
** its ends' queues under one lock, refcounted by the objects that own an
** end and by the messages that carry one in transit. A MessageChannel's
** pair is a group of two ends: what is posted at one end is queued at the
** other, and close() disentangles both. Owners of other threads are told
** after the lock is released, so that the woken thread does not find it
** held.
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
  if (pthread_mutex_init(&g->lock, NULL) != 0) {
    free(g);
    return NULL;
  }
  g->end = (mc_Queue *)(g + 1);
  g->nends = nends;
  g->refs = 1;
  g->entangled = 1;
  return g;
}

void mc_group_incref (mc_Group *g) {
  pthread_mutex_lock(&g->lock);
  g->refs++;
  pthread_mutex_unlock(&g->lock);
}

void mc_group_decref (mc_Group *g) {
  int last;
  size_t i;
  pthread_mutex_lock(&g->lock);
  last = --g->refs == 0;
  pthread_mutex_unlock(&g->lock);
  if (last) {
    for (i = 0; i < g->nends; i++)
      mc_queue_free(&g->end[i]);
    pthread_mutex_destroy(&g->lock);
    free(g);
  }
}

size_t mc_group_partner (const mc_Group *g, size_t e) {
  (void)g;
  return 1 - e;
}

int mc_group_post (mc_Group *g, size_t to, mc_Msg *m, mc_Hub *self,
                   uint32_t *local) {
  int r;
  mc_Tell t;
  t.hub = NULL;
  *local = 0;
  pthread_mutex_lock(&g->lock);
  r = !g->entangled ? 0 : mc_queue_push(&g->end[to], m) ? 1 : -1;
  if (r == 1)
    *local = mc_queue_arrived(&g->end[to], self, &t);
  pthread_mutex_unlock(&g->lock);
  mc_tell(&t);
  return r;
}

int mc_group_close (mc_Group *g, size_t from, mc_Hub *self,
                    uint32_t *local) {
  int was;
  size_t i, k = 0;
  mc_Tell t[64];
  pthread_mutex_lock(&g->lock);
  was = g->entangled;
  for (i = 0; i < g->nends; i++)
    local[i] = 0;
  if (was) {
    g->entangled = 0;
    for (i = 0; i < g->nends; i++) {
      size_t e = (from + 1 + i) % g->nends;  /* `from` comes last */
      g->end[e].closed = 1;
      local[e] = mc_queue_arrived(&g->end[e], self, &t[k]);
      if (t[k].hub != NULL)
        k++;
    }
  }
  pthread_mutex_unlock(&g->lock);
  for (i = 0; i < k; i++)
    mc_tell(&t[i]);
  return was;
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
  mc_owner_set(&g->end[e].owner, h, id);
  pthread_mutex_unlock(&g->lock);
}

void mc_group_detach (mc_Group *g, size_t e, mc_Hub *h) {
  pthread_mutex_lock(&g->lock);
  if (g->end[e].owner.hub == h)
    mc_owner_set(&g->end[e].owner, NULL, 0);
  pthread_mutex_unlock(&g->lock);
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

/* When writers can wait for room, this is where the reader makes it and
** tells them. */
int mc_group_take (mc_Group *g, size_t e, int what, mc_Msg **m) {
  int h;
  mc_Queue *q = &g->end[e];
  *m = NULL;
  pthread_mutex_lock(&g->lock);
  h = mc_queue_head(q);
  if (h == MC_MESSAGE && (what & MC_TAKE_MESSAGE))
    *m = mc_queue_shift(q);
  else if (h == MC_CLOSED && (what & MC_TAKE_CLOSE))
    q->closetaken = 1;
  else
    h = MC_EMPTY;
  pthread_mutex_unlock(&g->lock);
  return h;
}
