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
** block of one of four sizes, the smallest it fits (so that a queue of
** tiny messages costs about what malloc's blocks did), and a freed one
** goes back to that size's pool: each thread keeps a magazine it takes
** blocks from and one it fills, and full magazines pass between threads
** through a depot, under one lock per MAGAZINE blocks (magazines and
** depot as in Bonwick and Adams' allocator, 2001). A thread's own freed
** blocks are taken first, so a message posted and read in one thread
** never reaches the depot.
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
  int pooled;   /* 0, or its block is of size class pooled - 1 */
  mc_Xfer x[1];
};

/*
** {======================================================
** The pool of small blocks
** =======================================================
*/

/* The block sizes: a block is at most 1.4 times what malloc would take
** for its message (a number posted takes 73 bytes, a small table 135). */
#define POOL_CLASSES 4
static const size_t class_size[POOL_CLASSES] = {96, 128, 192, 256};
#define CLASS_SIZE(k) (class_size[k])
#define POOL_BLOCK 256
#define MAGAZINE 32   /* blocks a magazine holds */
#define DEPOT_MAX 32  /* full magazines a depot keeps; more are freed */

/* A block in a magazine, which is a list; a magazine in the depot, by
** its first block. While a block waits only these links are readable
** (under ASan). */
typedef struct Block {
  struct Block *next;
  struct Block *magazine;
} Block;

typedef struct Cache {  /* a thread's, of one size class */
  Block *take;  /* the magazine blocks are taken from */
  Block *fill;  /* the magazine freed blocks go to */
  int nfill;
} Cache;

/* A thread's caches, on cache lines of their own. */
typedef struct Caches {
  Cache c[POOL_CLASSES];
  int known;  /* 1: the thread gives them back as it ends (pool_key);
              ** -1: it has (a message freed later goes to free()) */
} Caches;

static __thread union {
  Caches t;
  char lines[(sizeof(Caches) + 63) / 64 * 64];
} pool __attribute__((aligned(64)));
static pthread_mutex_t depot_lock = PTHREAD_MUTEX_INITIALIZER;
static Block *depot[POOL_CLASSES];  /* full magazines, under depot_lock */
static int ndepot[POOL_CLASSES];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t pool_key;
static int key_made;

static void free_magazine (Block *b, int k) {
  while (b != NULL) {
    Block *next = b->next;
    UNPOISON(b, CLASS_SIZE(k));
    free(b);
    b = next;
  }
}

/* Puts magazine b of class k in its depot, or frees it when that is
** full. */
static void give_magazine (Block *b, int k) {
  if (b == NULL)
    return;
  pthread_mutex_lock(&depot_lock);
  if (ndepot[k] < DEPOT_MAX) {
    b->magazine = depot[k];
    depot[k] = b;
    ndepot[k]++;
    b = NULL;
  }
  pthread_mutex_unlock(&depot_lock);
  free_magazine(b, k);
}

/* A thread that ends gives its magazines to the depots: a destructor of
** pool_key, which the thread sets before it holds blocks. The C library
** calls it once; a destructor run after it that frees a message must not
** fill the caches again, as nothing would give them back. */
static void thread_ends (void *unused) {
  int k;
  (void)unused;
  for (k = 0; k < POOL_CLASSES; k++) {
    Cache *c = &pool.t.c[k];
    give_magazine(c->take, k);
    give_magazine(c->fill, k);
    c->take = c->fill = NULL;
    c->nfill = 0;
  }
  pool.t.known = -1;
}

static void make_key (void) {
  key_made = pthread_key_create(&pool_key, thread_ends) == 0;
}

/* Whether this thread may hold blocks: once its end will give them
** back. That destructor's code must outlive the thread, so the library
** stays loaded from then on. */
static int thread_known (void) {
  if (pool.t.known <= 0) {
    if (pool.t.known < 0)  /* ending */
      return 0;
    pthread_once(&key_once, make_key);
    if (!key_made || pthread_setspecific(pool_key, &pool) != 0)
      return 0;
    mc_keep_loaded();
    pool.t.known = 1;
  }
  return 1;
}

/* The size class of a block of n bytes, or -1 when it is not pooled. */
static int pool_class (size_t n) {
  int k;
  if (n > POOL_BLOCK)
    return -1;
  for (k = 0; n > CLASS_SIZE(k); k++)
    ;
  return k;
}

/* A block of class k. */
static void *pool_take (int k) {
  Cache *c = &pool.t.c[k];
  Block *b = c->take;
  if (b == NULL) {
    if (c->fill != NULL) {  /* this thread's own, first */
      b = c->fill;
      c->fill = NULL;
      c->nfill = 0;
    }
    else if (thread_known()) {
      pthread_mutex_lock(&depot_lock);
      if ((b = depot[k]) != NULL) {
        depot[k] = b->magazine;
        ndepot[k]--;
      }
      pthread_mutex_unlock(&depot_lock);
    }
    if (b == NULL)
      return malloc(CLASS_SIZE(k));
  }
  c->take = b->next;
  UNPOISON(b, CLASS_SIZE(k));
  return b;
}

static void pool_give (void *p, int k) {
  Cache *c = &pool.t.c[k];
  Block *b = (Block *)p;
  if (!thread_known()) {
    free(p);
    return;
  }
  if (c->nfill == MAGAZINE) {
    give_magazine(c->fill, k);
    c->fill = NULL;
    c->nfill = 0;
  }
  b->next = c->fill;
  b->magazine = NULL;
  c->fill = b;
  c->nfill++;
  POISON(b + 1, CLASS_SIZE(k) - sizeof *b);
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
  int k;
  if (nx > ((size_t)-1 / 4) / sizeof(mc_Xfer))
    return NULL;
  head = offsetof(mc_Msg, x) + (nx > 0 ? nx : 1) * sizeof(mc_Xfer);
  if (len > (size_t)-1 / 2 - head)
    return NULL;
  k = pool_class(head + len);
  m = (mc_Msg *)(k >= 0 ? pool_take(k) : malloc(head + len));
  if (m != NULL) {
    m->pooled = k + 1;
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
    pool_give(m, m->pooled - 1);
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
