/*
** msg.c: a message: its encoded bytes and its transfer slots, in one
** allocation. Pure C, no Lua. A slot names the type of what it holds, so
** that a message freed undelivered can let each thing go the way its type
** says (a port in transit closes at its partner, a Buffer's bytes are
** freed) without knowing any type.
*/
#include <stdlib.h>
#include <string.h>

#include "mc.h"

struct mc_Msg {
  mc_Msg *next;  /* in a list of messages to free (mc_msg_free) */
  size_t len;
  size_t nx;    /* transfer slots, at x; the bytes follow them */
  unsigned char *own;  /* or the bytes are here, a block of their own */
  int note;     /* mc_msg_note's */
  mc_Xfer x[1];
};

static unsigned char *msg_bytes (const mc_Msg *m) {
  return m->own != NULL ? m->own
                        : (unsigned char *)(m->x + (m->nx > 0 ? m->nx : 1));
}

/* A message with nx slots and room for len bytes after them. */
static mc_Msg *msg_alloc (size_t len, size_t nx) {
  mc_Msg *m;
  size_t head;
  if (nx > ((size_t)-1 / 4) / sizeof(mc_Xfer))
    return NULL;
  head = offsetof(mc_Msg, x) + (nx > 0 ? nx : 1) * sizeof(mc_Xfer);
  if (len > (size_t)-1 / 2 - head)
    return NULL;
  m = (mc_Msg *)malloc(head + len);
  if (m != NULL) {
    m->next = NULL;
    m->len = len;
    m->nx = nx;
    m->own = NULL;
    m->note = 0;
    memset(m->x, 0, (nx > 0 ? nx : 1) * sizeof(mc_Xfer));
  }
  return m;
}

mc_Msg *mc_msg_new (const void *data, size_t len, size_t nx) {
  mc_Msg *m = msg_alloc(len, nx);
  if (m != NULL && len > 0) {
    mc_bytes_will_fill(msg_bytes(m), len);
    memcpy(msg_bytes(m), data, len);
  }
  return m;
}

mc_Msg *mc_msg_adopt (mc_Bytes *b, size_t nx) {
  mc_Msg *m;
  if (b->n < MC_MSG_ADOPT)
    return mc_msg_new(b->p, b->n, nx);
  m = msg_alloc(0, nx);
  if (m != NULL) {
    m->len = b->n;
    m->own = b->p;
    b->p = NULL;
    b->n = b->cap = 0;
  }
  return m;
}

const unsigned char *mc_msg_data (const mc_Msg *m, size_t *len) {
  *len = m->len;
  return msg_bytes(m);
}

mc_Xfer *mc_msg_xfer (mc_Msg *m, size_t *nx) {
  *nx = m->nx;
  return m->x;
}

void mc_msg_unlend (mc_Msg *m) {
  size_t i;
  for (i = 0; i < m->nx; i++) {
    mc_Xfer *x = &m->x[i];
    if (x->type != NULL && x->type->unlend != NULL)
      x->type->unlend(x);
  }
  free(m->own);
  free(m);
}

void mc_msg_push (mc_Msg **list, mc_Msg *m) {
  m->next = *list;
  *list = m;
}

void mc_msg_unlink (mc_Msg **list, mc_Msg *m) {
  for (; *list != NULL; list = &(*list)->next)
    if (*list == m) {
      *list = m->next;
      m->next = NULL;
      return;
    }
}

void mc_msg_free (mc_Msg *m) {
  while (m != NULL) {
    mc_Msg *rest = m->next;
    size_t i;
    for (i = 0; i < m->nx; i++) {
      mc_Xfer *x = &m->x[i];
      if (x->type != NULL)
        x->type->drop(x, &rest);
    }
    free(m->own);
    free(m);
    m = rest;
  }
}

mc_Msg *mc_msg_note (const char *text) {
  mc_Msg *m = mc_msg_new(text, strlen(text), 0);
  if (m != NULL)
    m->note = 1;
  return m;
}

int mc_msg_is_note (const mc_Msg *m) {
  return m->note;
}
