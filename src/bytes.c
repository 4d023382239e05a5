/*
** bytes.c: pure C helpers for the codec: a growable byte string and a map
** from object addresses to dense ids. No Lua here.
*/
#include <stdlib.h>
#include <string.h>

#include "mc.h"

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
  size_t i;
  if (m->count == 0)
    return MC_NOID;
  for (i = ptrhash(k) & m->mask; m->keys[i] != NULL; i = (i + 1) & m->mask) {
    if (m->keys[i] == k)
      return m->ids[i];
  }
  return MC_NOID;
}

static void rawadd (mc_PtrMap *m, const void *k, uint32_t id) {
  size_t i = ptrhash(k) & m->mask;
  while (m->keys[i] != NULL)
    i = (i + 1) & m->mask;
  m->keys[i] = k;
  m->ids[i] = id;
  m->count++;
}

int mc_ptrmap_add (mc_PtrMap *m, const void *k, uint32_t id) {
  /* keep the load at most 1/2 */
  if (m->keys == NULL || (m->count + 1) * 2 > m->mask + 1) {
    mc_PtrMap big;
    size_t cap = m->keys ? (m->mask + 1) * 2 : 64, i;
    if (cap > (size_t)-1 / sizeof(const void *) / 2)
      return 0;
    big.keys = (const void **)calloc(cap, sizeof(const void *));
    big.ids = (uint32_t *)malloc(cap * sizeof(uint32_t));
    if (big.keys == NULL || big.ids == NULL) {
      free(big.keys);
      free(big.ids);
      return 0;
    }
    big.mask = cap - 1;
    big.count = 0;
    if (m->count > 0) {
      for (i = 0; i <= m->mask; i++)
        if (m->keys[i] != NULL)
          rawadd(&big, m->keys[i], m->ids[i]);
    }
    mc_ptrmap_free(m);
    *m = big;
  }
  rawadd(m, k, id);
  return 1;
}

void mc_ptrmap_clear (mc_PtrMap *m) {
  if (m->count > 0) {
    memset(m->keys, 0, (m->mask + 1) * sizeof(const void *));
    m->count = 0;
  }
}

void mc_ptrmap_free (mc_PtrMap *m) {
  free(m->keys);
  free(m->ids);
  m->keys = NULL;
  m->ids = NULL;
  m->mask = m->count = 0;
}
