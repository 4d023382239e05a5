/*
** pipe.c: the state two entangled ports share. Pure C, no Lua: a pipe is
** two FIFOs of encoded messages under one lock, refcounted by the ports
** and by the messages that carry a port in transit. close() appends a
** close marker to both FIFOs, so that each side sees it after every
** message queued before it. Each side knows its owner (a hub and an id),
** and tells that hub when something is queued for it from elsewhere.
** A pipe's lock is never held while a hub's is taken, nor the other way.
*/
#include <stdlib.h>
#include <string.h>

#include "mc.h"

struct mc_Msg {
  struct mc_Msg *next;
  size_t len;  /* MC_CLOSE_MARK for the close marker */
  size_t nx;   /* transfers, at x; the bytes follow them */
  mc_Xfer x[1];
};

#define MC_CLOSE_MARK ((size_t)-1)

static unsigned char *msg_bytes (const mc_Msg *m) {
  return (unsigned char *)(m->x + m->nx);
}

mc_Msg *mc_msg_new (const void *data, size_t len, size_t nx) {
  mc_Msg *m;
  size_t head;
  if (nx > ((size_t)-1 / 4) / sizeof(mc_Xfer))
    return NULL;
  head = offsetof(mc_Msg, x) + (nx > 0 ? nx : 1) * sizeof(mc_Xfer);
  if (len > (size_t)-1 / 2 - head)
    return NULL;
  m = (mc_Msg *)malloc(head + len);
  if (m != NULL) {
    size_t i;
    m->next = NULL;
    m->len = len;
    m->nx = nx;
    for (i = 0; i < nx; i++) {
      m->x[i].ptr = NULL;
      m->x[i].len = 0;
      m->x[i].kind = 0;
    }
    if (len > 0)
      memcpy(msg_bytes(m), data, len);
  }
  return m;
}

const unsigned char *mc_msg_data (const mc_Msg *m, size_t *len) {
  *len = m->len == MC_CLOSE_MARK ? 0 : m->len;
  return msg_bytes(m);
}

mc_Xfer *mc_msg_xfer (mc_Msg *m, size_t *nx) {
  *nx = m->nx;
  return m->x;
}

int mc_msg_is_close (const mc_Msg *m) {
  return m->len == MC_CLOSE_MARK;
}

void mc_msg_free (mc_Msg *m) {
  size_t i;
  for (i = 0; i < m->nx; i++) {
    mc_Xfer *x = &m->x[i];
    if (x->kind == 0)
      continue;
    if (x->kind == MC_XPORT) {
      mc_Pipe *p = (mc_Pipe *)x->ptr;
      uint32_t local[2];
      mc_pipe_close(p, 1 - (int)x->len, NULL, local);
      mc_pipe_decref(p);
    }
    else
      free(x->ptr);
  }
  free(m);
}

static void fifo_push (mc_Fifo *q, mc_Msg *m) {
  if (q->tail != NULL)
    q->tail->next = m;
  else
    q->head = m;
  q->tail = m;
}

static void fifo_free (mc_Fifo *q) {
  mc_Msg *m = q->head;
  q->head = q->tail = NULL;
  q->count = 0;
  while (m != NULL) {
    mc_Msg *next = m->next;
    mc_msg_free(m);
    m = next;
  }
}

mc_Pipe *mc_pipe_new (void) {
  mc_Pipe *p = (mc_Pipe *)calloc(1, sizeof(mc_Pipe));
  mc_Msg *marks[2];
  if (p == NULL)
    return NULL;
  /* the close markers are made now, so that close() cannot fail */
  marks[0] = mc_msg_new(NULL, 0, 0);
  marks[1] = mc_msg_new(NULL, 0, 0);
  if (marks[0] == NULL || marks[1] == NULL
      || pthread_mutex_init(&p->lock, NULL) != 0) {
    free(marks[0]);
    free(marks[1]);
    free(p);
    return NULL;
  }
  marks[0]->len = marks[1]->len = MC_CLOSE_MARK;
  p->mark[0] = marks[0];
  p->mark[1] = marks[1];
  p->refs = 1;
  p->entangled = 1;
  return p;
}

void mc_pipe_incref (mc_Pipe *p) {
  pthread_mutex_lock(&p->lock);
  p->refs++;
  pthread_mutex_unlock(&p->lock);
}

void mc_pipe_decref (mc_Pipe *p) {
  int last, i;
  pthread_mutex_lock(&p->lock);
  last = --p->refs == 0;
  pthread_mutex_unlock(&p->lock);
  if (last) {
    for (i = 0; i < 2; i++)
      if (p->side[i].hub != NULL)
        mc_hub_decref(p->side[i].hub);
    fifo_free(&p->q[0]);
    fifo_free(&p->q[1]);
    free(p->mark[0]);
    free(p->mark[1]);
    pthread_mutex_destroy(&p->lock);
    free(p);
  }
}

/* Whom to tell that something was queued: a hub (referenced) and an id,
** told once the pipe's lock is released, so that the woken thread does
** not find it held. */
typedef struct Tell {
  mc_Hub *hub;
  uint32_t id;
} Tell;

/* Something was queued for side s (lock held): returns its owner's id
** when the owner is self; else 0, and fills *t when the owner is to be
** told. */
static uint32_t tell (mc_Pipe *p, int s, mc_Hub *self, Tell *t) {
  mc_Side *d = &p->side[s];
  t->hub = NULL;
  if (d->hub == NULL)
    return 0;
  if (d->hub == self)
    return d->id;
  if (!d->notified) {
    d->notified = 1;
    mc_hub_incref(d->hub);
    t->hub = d->hub;
    t->id = d->id;
  }
  return 0;
}

static void told (Tell *t) {
  if (t->hub != NULL) {
    mc_hub_notify(t->hub, t->id);
    mc_hub_decref(t->hub);
  }
}

int mc_pipe_push (mc_Pipe *p, int to, mc_Msg *m, mc_Hub *self,
                  uint32_t *local) {
  int ok;
  Tell t;
  t.hub = NULL;
  *local = 0;
  pthread_mutex_lock(&p->lock);
  ok = p->entangled;
  if (ok) {
    fifo_push(&p->q[to], m);
    p->q[to].count++;
    *local = tell(p, to, self, &t);
  }
  pthread_mutex_unlock(&p->lock);
  told(&t);
  return ok;
}

int mc_pipe_close (mc_Pipe *p, int first, mc_Hub *self, uint32_t local[2]) {
  int was;
  Tell t[2];
  t[0].hub = t[1].hub = NULL;
  local[0] = local[1] = 0;
  pthread_mutex_lock(&p->lock);
  was = p->entangled;
  if (was) {
    p->entangled = 0;
    fifo_push(&p->q[first], p->mark[first]);
    fifo_push(&p->q[1 - first], p->mark[1 - first]);
    p->mark[0] = p->mark[1] = NULL;
    local[first] = tell(p, first, self, &t[0]);
    local[1 - first] = tell(p, 1 - first, self, &t[1]);
  }
  pthread_mutex_unlock(&p->lock);
  told(&t[0]);
  told(&t[1]);
  return was;
}

int mc_pipe_entangled (mc_Pipe *p) {
  int e;
  pthread_mutex_lock(&p->lock);
  e = p->entangled;
  pthread_mutex_unlock(&p->lock);
  return e;
}

void mc_pipe_attach (mc_Pipe *p, int s, mc_Hub *h, uint32_t id) {
  mc_Hub *old;
  mc_hub_incref(h);
  pthread_mutex_lock(&p->lock);
  old = p->side[s].hub;
  p->side[s].hub = h;
  p->side[s].id = id;
  p->side[s].notified = 0;
  pthread_mutex_unlock(&p->lock);
  if (old != NULL)
    mc_hub_decref(old);
}

void mc_pipe_detach (mc_Pipe *p, int s, mc_Hub *h) {
  mc_Hub *old = NULL;
  pthread_mutex_lock(&p->lock);
  if (p->side[s].hub == h) {
    old = h;
    p->side[s].hub = NULL;
    p->side[s].id = 0;
  }
  pthread_mutex_unlock(&p->lock);
  if (old != NULL)
    mc_hub_decref(old);
}

uint32_t mc_pipe_local_peer (mc_Pipe *p, int s, mc_Hub *h) {
  uint32_t id;
  pthread_mutex_lock(&p->lock);
  id = p->entangled && p->side[1 - s].hub == h ? p->side[1 - s].id : 0;
  pthread_mutex_unlock(&p->lock);
  return id;
}

int mc_pipe_head (mc_Pipe *p, int side, size_t *count, int *marked) {
  int h;
  mc_Fifo *q = &p->q[side];
  pthread_mutex_lock(&p->lock);
  h = q->head == NULL ? MC_EMPTY
      : q->head->len == MC_CLOSE_MARK ? MC_CLOSED : MC_MESSAGE;
  *count = q->count;
  *marked = q->tail != NULL && q->tail->len == MC_CLOSE_MARK;
  p->side[side].notified = 0;  /* the owner is looking now */
  pthread_mutex_unlock(&p->lock);
  return h;
}

mc_Msg *mc_pipe_take (mc_Pipe *p, int side, int what) {
  mc_Msg *m;
  mc_Fifo *q = &p->q[side];
  pthread_mutex_lock(&p->lock);
  m = q->head;
  if (m != NULL
      && (what & (m->len == MC_CLOSE_MARK ? MC_TAKE_CLOSE : MC_TAKE_MESSAGE))) {
    q->head = m->next;
    if (q->head == NULL)
      q->tail = NULL;
    if (m->len != MC_CLOSE_MARK)
      q->count--;
    m->next = NULL;
  }
  else
    m = NULL;
  pthread_mutex_unlock(&p->lock);
  return m;
}
