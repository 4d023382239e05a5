/*
** wire.c: the frames a link between two processes carries (API.md 12,
** docs/FORMAT.md "Links"). Pure C, no Lua, no sockets: the network thread
** (net.c) feeds it bytes as they come, and the fuzzer feeds it anything.
**
** A frame is a u32 length, little-endian, of what follows it, a type
** byte, then the body. A message travels as its clone-format bytes (which
** the receiving state decodes with its usual defences) and a copy of each
** Buffer of its transfer list; nothing else can be in the list.
*/
#include <stdlib.h>
#include <string.h>

#include "mc.h"

#define MAGIC "mcl1"
#define MAXTOKEN 4096

static void put_u32 (unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32 (const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16
         | (uint32_t)p[3] << 24;
}

static void put_u64 (unsigned char *p, uint64_t v) {
  put_u32(p, (uint32_t)v);
  put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_u64 (const unsigned char *p) {
  return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

long mc_wire_next (const unsigned char *p, size_t n, size_t max,
                   mc_Frame *f) {
  uint32_t len;
  if (n < 4)
    return 0;
  len = get_u32(p);
  if (len < 1 || len - 1 > max)
    return -1;
  if (n < (size_t)len + 4) {
    if (n >= MC_WIRE_HEAD)  /* the type is known before the body */
      switch (p[4]) {
        case MC_WIRE_HELLO: case MC_WIRE_MSG: case MC_WIRE_CLOSE:
        case MC_WIRE_PING: break;
        default: return -1;
      }
    return 0;
  }
  f->type = p[4];
  f->p = p + MC_WIRE_HEAD;
  f->n = len - 1;
  switch (f->type) {
    case MC_WIRE_HELLO: case MC_WIRE_MSG: break;
    case MC_WIRE_CLOSE: if (f->n != 1) return -1; break;
    case MC_WIRE_PING: if (f->n != 0) return -1; break;
    default: return -1;
  }
  return (long)len + 4;
}

/* Appends a frame's head for a body of n bytes; returns where the body
** goes, or NULL when out of memory (or n too large for a frame). */
static unsigned char *put_head (mc_Bytes *b, int type, size_t n) {
  unsigned char *p;
  if (n >= UINT32_MAX || !mc_bytes_reserve(b, MC_WIRE_HEAD + n))
    return NULL;
  p = b->p + b->n;
  put_u32(p, (uint32_t)(n + 1));
  p[4] = (unsigned char)type;
  b->n += MC_WIRE_HEAD + n;
  return p + MC_WIRE_HEAD;
}

int mc_wire_put_hello (mc_Bytes *b, const char *token, size_t toklen,
                       uint32_t heartbeat_ms) {
  unsigned char *p;
  if (toklen > MAXTOKEN)
    return 0;
  p = put_head(b, MC_WIRE_HELLO, 8 + toklen);
  if (p == NULL)
    return 0;
  memcpy(p, MAGIC, 4);
  put_u32(p + 4, heartbeat_ms);
  if (toklen > 0)
    memcpy(p + 8, token, toklen);
  return 1;
}

int mc_wire_hello (const mc_Frame *f, const char **token, size_t *toklen,
                   uint32_t *heartbeat_ms) {
  if (f->type != MC_WIRE_HELLO || f->n < 8 || f->n - 8 > MAXTOKEN
      || memcmp(f->p, MAGIC, 4) != 0)
    return 0;
  *heartbeat_ms = get_u32(f->p + 4);
  *token = (const char *)f->p + 8;
  *toklen = f->n - 8;
  return *heartbeat_ms > 0;
}

int mc_wire_put_close (mc_Bytes *b, int reason) {
  unsigned char *p = put_head(b, MC_WIRE_CLOSE, 1);
  if (p == NULL)
    return 0;
  p[0] = (unsigned char)reason;
  return 1;
}

int mc_wire_put_ping (mc_Bytes *b) {
  return put_head(b, MC_WIRE_PING, 0) != NULL;
}

size_t mc_wire_size (mc_Msg *m) {
  size_t len, nx, i, size;
  mc_Xfer *x = mc_msg_xfer(m, &nx);
  mc_msg_data(m, &len);
  size = len;
  for (i = 0; i < nx; i++)
    if (x[i].type != NULL && !x[i].type->receiver)
      size += x[i].aux;
  return size;
}

int mc_wire_put_msg (mc_Bytes *b, mc_Msg *m) {
  size_t len, nx, i, body;
  mc_Xfer *x = mc_msg_xfer(m, &nx);
  const unsigned char *data = mc_msg_data(m, &len);
  unsigned char *p;
  for (i = 0; i < nx; i++)
    if (x[i].type == NULL || x[i].type->receiver)
      return -1;
  if (nx > (UINT32_MAX - 4) / 8)
    return 0;
  body = 4 + 8 * nx + mc_wire_size(m);
  p = put_head(b, MC_WIRE_MSG, body);
  if (p == NULL)
    return 0;
  put_u32(p, (uint32_t)nx);
  p += 4;
  for (i = 0; i < nx; i++, p += 8)
    put_u64(p, x[i].aux);
  memcpy(p, data, len);
  p += len;
  for (i = 0; i < nx; i++) {
    if (x[i].aux > 0)
      memcpy(p, x[i].ptr, x[i].aux);
    p += x[i].aux;
  }
  return 1;
}

mc_Msg *mc_wire_msg (const mc_Frame *f, const mc_Type *buffer, size_t max,
                     int *bad) {
  size_t nx, i, rest, len;
  const unsigned char *p = f->p, *lens;
  mc_Msg *m;
  mc_Xfer *x;
  *bad = 1;
  if (f->type != MC_WIRE_MSG || f->n < 4)
    return NULL;
  nx = get_u32(p);
  if (nx > (f->n - 4) / 8)
    return NULL;
  lens = p + 4;
  rest = f->n - 4 - 8 * nx;  /* the message's bytes and the Buffers' */
  for (i = 0; i < nx; i++) {
    uint64_t n = get_u64(lens + 8 * i);
    if (n > rest)
      return NULL;
    rest -= (size_t)n;
  }
  len = rest;  /* what is left is the message's */
  if (len == 0 || f->n - 4 - 8 * nx > max)
    return NULL;
  *bad = 0;
  m = mc_msg_new(lens + 8 * nx, len, nx);
  if (m == NULL)
    return NULL;
  x = mc_msg_xfer(m, &nx);
  p = lens + 8 * nx + len;
  for (i = 0; i < nx; i++) {
    size_t n = (size_t)get_u64(lens + 8 * i);
    void *copy = NULL;
    if (n > 0 && (copy = malloc(n)) == NULL) {
      mc_msg_free(m);
      return NULL;
    }
    if (n > 0) {
      mc_bytes_will_fill(copy, n);
      memcpy(copy, p, n);
    }
    p += n;
    x[i].type = buffer;
    x[i].ptr = copy;
    x[i].aux = n;
  }
  return m;
}

const char *mc_wire_reason (int code) {
  switch (code) {
    case MC_REASON_TIMEOUT: return "timeout";
    case MC_REASON_PROTOCOL: return "protocol";
    case MC_REASON_AUTH: return "auth";
    case MC_REASON_DISCONNECTED: return "disconnected";
    case MC_REASON_REFUSED: return "refused";
    default: return NULL;
  }
}

int mc_wire_code (const char *reason) {
  int code;
  if (reason != NULL)
    for (code = MC_REASON_TIMEOUT; code <= MC_REASON_REFUSED; code++)
      if (strcmp(reason, mc_wire_reason(code)) == 0)
        return code;
  return MC_REASON_NONE;
}
