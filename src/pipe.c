/*
** pipe.c: the state two entangled ports share. Pure C, no Lua: a pipe is
** two FIFOs of encoded messages under one lock, refcounted by the ports
** (and, later, by whatever holds a port in transit between threads).
** close() appends a close marker to both FIFOs, so that each side sees it
** after every message queued before it.
*/
#include <stdlib.h>
#include <string.h>

#include "mc.h"

struct mc_Msg {
  struct mc_Msg *next;
  size_t len;  /* MC_CLOSE_MARK for the close marker */
  unsigned char data[];
};

#define MC_CLOSE_MARK ((size_t)-1)

static mc_Msg *msg_new (const void *data, size_t len) {
  mc_Msg *m;
  if (len > (size_t)-1 / 2 - sizeof(mc_Msg))
    return NULL;
  m = (mc_Msg *)malloc(sizeof(mc_Msg) + len);
  if (m != NULL) {
    m->next = NULL;
    m->len = len;
    if (len > 0)
      memcpy(m->data, data, len);
  }
  return m;
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
  while (m != NULL) {
    mc_Msg *next = m->next;
    free(m);
    m = next;
  }
  q->head = q->tail = NULL;
  q->count = 0;
}

mc_Pipe *mc_pipe_new (void) {
  mc_Pipe *p = (mc_Pipe *)calloc(1, sizeof(mc_Pipe));
  mc_Msg *marks[2];
  if (p == NULL)
    return NULL;
  /* the close markers are made now, so that close() cannot fail */
  marks[0] = msg_new(NULL, 0);
  marks[1] = msg_new(NULL, 0);
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
  int last;
  pthread_mutex_lock(&p->lock);
  last = --p->refs == 0;
  pthread_mutex_unlock(&p->lock);
  if (last) {
    fifo_free(&p->q[0]);
    fifo_free(&p->q[1]);
    free(p->mark[0]);
    free(p->mark[1]);
    pthread_mutex_destroy(&p->lock);
    free(p);
  }
}

int mc_pipe_post (mc_Pipe *p, int to, const void *data, size_t len) {
  mc_Msg *m = msg_new(data, len);
  int ok;
  if (m == NULL)
    return -1;
  pthread_mutex_lock(&p->lock);
  ok = p->entangled;
  if (ok) {
    fifo_push(&p->q[to], m);
    p->q[to].count++;
  }
  pthread_mutex_unlock(&p->lock);
  if (!ok)
    free(m);
  return ok;
}

int mc_pipe_close (mc_Pipe *p, int first) {
  int was;
  pthread_mutex_lock(&p->lock);
  was = p->entangled;
  if (was) {
    p->entangled = 0;
    fifo_push(&p->q[first], p->mark[first]);
    fifo_push(&p->q[1 - first], p->mark[1 - first]);
    p->mark[0] = p->mark[1] = NULL;
  }
  pthread_mutex_unlock(&p->lock);
  return was;
}

int mc_pipe_entangled (mc_Pipe *p) {
  int e;
  pthread_mutex_lock(&p->lock);
  e = p->entangled;
  pthread_mutex_unlock(&p->lock);
  return e;
}

int mc_pipe_head (mc_Pipe *p, int side, size_t *count, int *marked) {
  int h;
  mc_Fifo *q = &p->q[side];
  pthread_mutex_lock(&p->lock);
  h = q->head == NULL ? MC_EMPTY
      : q->head->len == MC_CLOSE_MARK ? MC_CLOSED : MC_MESSAGE;
  *count = q->count;
  *marked = q->tail != NULL && q->tail->len == MC_CLOSE_MARK;
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
  }
  else
    m = NULL;
  pthread_mutex_unlock(&p->lock);
  return m;
}

const unsigned char *mc_msg_data (const mc_Msg *m, size_t *len) {
  *len = m->len == MC_CLOSE_MARK ? 0 : m->len;
  return m->data;
}

int mc_msg_is_close (const mc_Msg *m) {
  return m->len == MC_CLOSE_MARK;
}

void mc_msg_free (mc_Msg *m) {
  free(m);
}
