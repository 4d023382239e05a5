/*
** hub.c: the wake-up point of one Lua state's scheduler. Pure C, no Lua.
** Other threads (and finalizers anywhere) tell a hub that one of its
** objects has news by queueing that object's id; the hub's own thread
** takes the ids and sleeps on the condition variable while there are none.
** Waiting and notifying share one mutex, so no wake-up is lost.
*/
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "mc.h"

mc_Hub *mc_hub_new (void) {
  mc_Hub *h = (mc_Hub *)calloc(1, sizeof(mc_Hub));
  pthread_condattr_t ca;
  if (h == NULL)
    return NULL;
  if (pthread_mutex_init(&h->lock, NULL) != 0) {
    free(h);
    return NULL;
  }
  /* timed waits measure the monotonic clock, as mc.now() does */
  if (pthread_condattr_init(&ca) != 0
      || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0
      || pthread_cond_init(&h->cond, &ca) != 0) {
    pthread_mutex_destroy(&h->lock);
    free(h);
    return NULL;
  }
  pthread_condattr_destroy(&ca);
  h->refs = 1;
  h->alive = 1;
  return h;
}

void mc_hub_incref (mc_Hub *h) {
  __atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
}

void mc_hub_decref (mc_Hub *h) {
  if (__atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    free(h->ids);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
  }
}

/* The waiter is signalled after the lock is released, so that it does not
** wake only to wait for the lock. */
void mc_hub_notify (mc_Hub *h, uint32_t id) {
  int wake;
  pthread_mutex_lock(&h->lock);
  wake = h->waiting;
  if (h->alive) {
    if (h->n == h->cap) {
      size_t cap = h->cap ? h->cap * 2 : 64;
      uint32_t *ids = (uint32_t *)realloc(h->ids, cap * sizeof *ids);
      if (ids != NULL) {
        h->ids = ids;
        h->cap = cap;
      }
    }
    if (h->n < h->cap)
      h->ids[h->n++] = id;
    else
      h->overflow = 1;  /* out of memory: the hub looks at everything */
  }
  pthread_mutex_unlock(&h->lock);
  if (wake)
    pthread_cond_signal(&h->cond);
}

void mc_hub_stop (mc_Hub *h) {
  pthread_mutex_lock(&h->lock);
  h->stop = 1;
  pthread_cond_signal(&h->cond);
  pthread_mutex_unlock(&h->lock);
}

void mc_hub_close (mc_Hub *h) {
  pthread_mutex_lock(&h->lock);
  h->alive = 0;
  h->n = 0;
  pthread_mutex_unlock(&h->lock);
}

/* Waits until there is news, the hub is stopped, or `seconds` pass (< 0:
** no limit; 0: no wait). Swaps the queued ids into *buf (of capacity
** *cap; the hub's old array takes its place, so no copy is made) and
** returns how many there are. *flags gets MC_HUB_STOP and MC_HUB_ALL. */
size_t mc_hub_wait (mc_Hub *h, double seconds, uint32_t **buf, size_t *cap,
                    int *flags) {
  size_t n;
  pthread_mutex_lock(&h->lock);
  if (seconds != 0 && h->n == 0 && !h->stop && !h->overflow) {
    h->waiting = 1;
    if (seconds < 0) {
      while (h->n == 0 && !h->stop && !h->overflow)
        pthread_cond_wait(&h->cond, &h->lock);
    }
    else {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      if (seconds > 1e9)
        seconds = 1e9;
      ts.tv_sec += (time_t)seconds;
      ts.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      while (h->n == 0 && !h->stop && !h->overflow
             && pthread_cond_timedwait(&h->cond, &h->lock, &ts) != ETIMEDOUT)
        ;
    }
    h->waiting = 0;
  }
  n = h->n;
  if (n > 0) {
    uint32_t *ids = h->ids;
    size_t c = h->cap;
    h->ids = *buf;
    h->cap = *cap;
    *buf = ids;
    *cap = c;
    h->n = 0;
  }
  *flags = (h->stop ? MC_HUB_STOP : 0) | (h->overflow ? MC_HUB_ALL : 0);
  h->overflow = 0;
  pthread_mutex_unlock(&h->lock);
  return n;
}
