/*
** bytes.c: pure C helpers for the codec: a growable byte string and a map
** from object addresses to dense ids. No Lua here.
*/
#define _DEFAULT_SOURCE  /* madvise, MADV_HUGEPAGE */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "mc.h"

/* A fresh page costs a fault when first written, and on some machines
** the fault costs more than copying the page: 64 MiB copied into new
** memory took 190 ms in 4 KiB pages and 11 ms in 2 MiB ones. So the
** 2 MiB-aligned part of a large block about to be written from its start
** is offered to the kernel for huge pages (Linux MADV_HUGEPAGE; a hint,
** which changes nothing where transparent huge pages are off or
** "always"). Blocks that may stay sparse (a new zeroed Buffer) are not: a
** huge page is backed whole on its first write. The advice outlives the
** block in its address range, so only blocks of BIG bytes or more get
** it: glibc's malloc maps each of those on its own (its mmap threshold
** never exceeds 32 MiB), and the advice goes with the mapping when the
** block is freed, instead of staying on the heap for later small blocks. */
#define HUGE_PAGE ((uintptr_t)1 << 21)
#define BIG ((size_t)32 << 20)

void mc_bytes_will_fill (void *p, size_t len) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t z = ((uintptr_t)p + len) & ~(HUGE_PAGE - 1);
  if (len >= BIG && z > a)
    (void)madvise((void *)a, (size_t)(z - a), MADV_HUGEPAGE);
#else
  (void)p;
  (void)len;
#endif
}

int mc_bytes_reserve_slow (mc_Bytes *b, size_t extra) {
  size_t cap = b->cap ? b->cap : 256;
  unsigned char *p;
  if (extra > (size_t)-1 / 2 - b->n)
    return 0;
  while (cap - b->n < extra)
    cap *= 2;
  p = (unsigned char *)realloc(b->p, cap);
  if (p == NULL)
    return 0;
  mc_bytes_will_fill(p + b->n, cap - b->n);
  b->p = p;
  b->cap = cap;
  return 1;
}

void mc_bytes_free (mc_Bytes *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

/* Addresses are aligned, so drop the low bits before mixing. */
static size_t ptrhash (const void *k) {
  uint64_t h = (uint64_t)(uintptr_t)k >> 3;
  h *= UINT64_C(0x9E3779B97F4A7C15);
  return (size_t)(h >> 29);
}

uint32_t mc_ptrmap_get (const mc_PtrMap *m, const void *k) {
  const mc_PtrSlot *e;
  size_t i;
  if (m->count == 0)
    return MC_NOID;
  for (i = ptrhash(k) & m->mask; (e = &m->slots[i])->stamp == m->stamp;
       i = (i + 1) & m->mask) {
    if (e->k == k)
      return e->id;
  }
  return MC_NOID;
}

static void rawadd (mc_PtrMap *m, const void *k, uint32_t id) {
  size_t i = ptrhash(k) & m->mask;
  while (m->slots[i].stamp == m->stamp)
    i = (i + 1) & m->mask;
  m->slots[i].k = k;
  m->slots[i].id = id;
  m->slots[i].stamp = m->stamp;
  m->count++;
}

int mc_ptrmap_add (mc_PtrMap *m, const void *k, uint32_t id) {
  /* keep the load at most 1/2 */
  if (m->slots == NULL || (m->count + 1) * 2 > m->mask + 1) {
    mc_PtrMap big;
    size_t cap = m->slots ? (m->mask + 1) * 2 : 64, i;
    if (cap > (size_t)-1 / sizeof(mc_PtrSlot) / 2)
      return 0;
    big.slots = (mc_PtrSlot *)calloc(cap, sizeof(mc_PtrSlot));
    if (big.slots == NULL)
      return 0;
    big.mask = cap - 1;
    big.count = 0;
    big.stamp = 1;  /* calloc's slots have stamp 0: free */
    for (i = 0; m->count > 0 && i <= m->mask; i++)
      if (m->slots[i].stamp == m->stamp)
        rawadd(&big, m->slots[i].k, m->slots[i].id);
    mc_ptrmap_free(m);
    *m = big;
  }
  rawadd(m, k, id);
  return 1;
}

/* Constant time, but for one call in 2^32, which frees every stamp. */
void mc_ptrmap_clear (mc_PtrMap *m) {
  if (m->count > 0) {
    m->count = 0;
    if (++m->stamp == 0) {
      size_t i;
      for (i = 0; i <= m->mask; i++)
        m->slots[i].stamp = 0;
      m->stamp = 1;
    }
  }
}

void mc_ptrmap_free (mc_PtrMap *m) {
  free(m->slots);
  m->slots = NULL;
  m->mask = m->count = 0;
  m->stamp = 0;
}
