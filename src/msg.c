/*
** msg.c: a message: its encoded bytes and its transfer slots, in one
** allocation. Pure C, no Lua. A slot names the type of what it holds, so
** that a message freed undelivered can let each thing go the way its type
** says (a port in transit closes at its partner, a Buffer's bytes are
** freed) without knowing any type.
**
** Small messages are recycled. Across threads one thread allocates the
** blocks and another frees them, and through malloc each block then
** crossed the allocator's lock both ways: a one-way stream of small
** messages spent nearly half its time in malloc, free and their locks.
** So a message of at most POOL_BLOCK bytes (header and bytes) takes a
** block of exactly that size, and a freed one goes back to a pool: each
** thread keeps a magazine it takes blocks from and one it fills, and
** full magazines pass between threads through a depot, under one lock
** per MAGAZINE blocks (magazines and depot as in Bonwick and Adams'
** allocator, 2001). A thread's own freed blocks are taken first, so a
** message posted and read in one thread never reaches the depot.
*/
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mc.h"

#if defined(__SANITIZE_ADDRESS__)
#define MC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MC_ASAN 1
#endif
#endif
#if defined(MC_ASAN)  /* a block waiting in the pool is poisoned */
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct mc_Msg {
  mc_Msg *next;  /* in a list of messages to free (mc_msg_free) */
  size_t len;
  size_t nx;    /* transfer slots, at x; the bytes follow them */
  unsigned char *own;  /* or the bytes are here, a block of their own */
  int note;     /* mc_msg_note's */
  int pooled;   /* its block is POOL_BLOCK bytes, from the pool */
  mc_Xfer x[1];
};

/*
** {======================================================
** The pool of small blocks
** =======================================================
*/

#define POOL_BLOCK 256
#define MAGAZINE 64   /* blocks a magazine holds */
#define DEPOT_MAX 64  /* full magazines the depot keeps; more are freed */

/* A block in a magazine, which is a list; a magazine in the depot, by
** its first block. While a block waits only these links are readable
** (under ASan). */
typedef struct Block {
  struct Block *next;
  struct Block *magazine;
} Block;

typedef struct Cache {
  Block *take;  /* the magazine blocks are taken from */
  Block *fill;  /* the magazine freed blocks go to */
  int nfill;
  int known;    /* its thread gives it back as it ends (pool_key) */
} Cache;

static __thread Cache cache;
static pthread_mutex_t depot_lock = PTHREAD_MUTEX_INITIALIZER;
static Block *depot;  /* full magazines, under depot_lock */
static int ndepot;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t pool_key;
static int key_made;

static void free_magazine (Block *b) {
  while (b != NULL) {
    Block *next = b->next;
    UNPOISON(b, POOL_BLOCK);
    free(b);
    b = next;
  }
}

/* Puts magazine b in the depot, or frees it when the depot is full. */
static void give_magazine (Block *b) {
  if (b == NULL)
    return;
  pthread_mutex_lock(&depot_lock);
  if (ndepot < DEPOT_MAX) {
    b->magazine = depot;
    depot = b;
    ndepot++;
    b = NULL;
  }
  pthread_mutex_unlock(&depot_lock);
  free_magazine(b);
}

/* A thread that ends gives its magazines to the depot: a destructor of
** pool_key, which the thread sets before it holds blocks. */
static void thread_ends (void *unused) {
  Cache *c = &cache;
  (void)unused;
  give_magazine(c->take);
  give_magazine(c->fill);
  c->take = c->fill = NULL;
  c->nfill = 0;
  c->known = 0;
}

static void make_key (void) {
  key_made = pthread_key_create(&pool_key, thread_ends) == 0;
}

/* Whether this thread may hold blocks: once its end will give them
** back. That destructor's code must outlive the thread, so the library
** stays loaded from then on. */
static int cache_known (Cache *c) {
  if (!c->known) {
    pthread_once(&key_once, make_key);
    if (!key_made || pthread_setspecific(pool_key, c) != 0)
      return 0;
    mc_keep_loaded();
    c->known = 1;
  }
  return 1;
}

static void *pool_take (void) {
  Cache *c = &cache;
  Block *b = c->take;
  if (b == NULL) {
    if (c->fill != NULL) {  /* this thread's own, first */
      b = c->fill;
      c->fill = NULL;
      c->nfill = 0;
    }
    else if (cache_known(c)) {
      pthread_mutex_lock(&depot_lock);
      if ((b = depot) != NULL) {
        depot = b->magazine;
        ndepot--;
      }
      pthread_mutex_unlock(&depot_lock);
    }
    if (b == NULL)
      return malloc(POOL_BLOCK);
  }
  c->take = b->next;
  UNPOISON(b, POOL_BLOCK);
  return b;
}

static void pool_give (void *p) {
  Cache *c = &cache;
  Block *b = (Block *)p;
  if (!cache_known(c)) {
    free(p);
    return;
  }
  if (c->nfill == MAGAZINE) {
    give_magazine(c->fill);
    c->fill = NULL;
    c->nfill = 0;
  }
  b->next = c->fill;
  b->magazine = NULL;
  c->fill = b;
  c->nfill++;
  POISON(b + 1, POOL_BLOCK - sizeof *b);
}

/* }====================================================== */

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
  m = (mc_Msg *)(head + len <= POOL_BLOCK ? pool_take()
                                          : malloc(head + len));
  if (m != NULL) {
    m->pooled = head + len <= POOL_BLOCK;
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

static void msg_release (mc_Msg *m) {
  free(m->own);
  if (m->pooled)
    pool_give(m);
  else
    free(m);
}

void mc_msg_unlend (mc_Msg *m) {
  size_t i;
  for (i = 0; i < m->nx; i++) {
    mc_Xfer *x = &m->x[i];
    if (x->type != NULL && x->type->unlend != NULL)
      x->type->unlend(x);
  }
  msg_release(m);
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
    msg_release(m);
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
