/*
** net.c: the network thread (API.md 12). Pure C, no Lua. One thread per
** process, started by the first mc.listen or mc.connect, owns every
** socket the module opens and the far end of every remote port's pair:
** what a port posts is queued at that end like a post to any port in
** another thread, and this thread takes it, frames it (wire.c) and writes
** it; what it reads it posts to the port's end, waking the port's state
** through its hub. So a remote port is an ordinary port to the rest of the
** module, mc.pollfd() stays the one descriptor to wait on, and a Lua state
** that computes for minutes still answers its links' heartbeats.
**
** Flow control is the pairs' bound (section 11): the thread takes a port's
** messages only while little waits to be written to its socket, so a full
** socket leaves them queued and the port's postMessage waits at
** `capacity`; and it reads a socket only while the port's end has room, so
** a reader that does not keep up fills the TCP window back to the writer.
**
** A link starts with a HELLO each way (the token, the heartbeat). Either
** side closes it with a CLOSE frame after its last message; a side that
** gives up (timeout, protocol, auth) sends its reason first where it can.
** A link that ends otherwise is "disconnected". The pair then closes with
** that reason on this side; a link is never resumed.
*/
#define _GNU_SOURCE  /* accept4 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "mc.h"

#define OUT_HIGH (256 * 1024)  /* written bytes pending before a port's
                               ** messages are left queued */
#define READ_CHUNK (64 * 1024)
#define FRAME_SLACK 4096       /* a MSG frame's head beyond maxsize */
#define ACCEPTS 64             /* new links taken per turn and listener */
#define ACCEPT_PAUSE 0.1       /* seconds a listener out of descriptors waits */
#define CONNECT_PAUSE 0.01     /* and a Unix connect turned away for now */
#define PRE_AUTH (8 + 4096)    /* the largest frame before HELLO passed */

enum { LINK, LISTENER };
enum { CONNECTING, HELLO, OPEN, LINGER, DEAD };

typedef struct Conn {
  pthread_mutex_t wlock;  /* the thread holds it through a link's turn; a
                          ** posting thread, to write to it (mc_net_send) */
  int refs;               /* the thread's, and a posting thread's while it
                          ** writes; changed atomically */
  int kind, state, fd;
  uint32_t id;            /* in the thread's hub */
  mc_Group *g;            /* the pair (a reference), NULL once let go */
  size_t e;               /* this thread's end of it */
  mc_Group *lg;           /* a link accepted by a listener, until it has
                          ** passed the token: the listener's pair */
  size_t le;
  mc_NetOptions o;
  char *path;             /* a listener's Unix socket, removed at close
                          ** (absolute: a chdir meanwhile does not
                          ** matter) while it is still the file bound, */
  dev_t dev;              /* whose device */
  ino_t ino;              /* and inode these are */
  mc_Bytes in, out;
  size_t inpos, outpos;   /* read and written so far */
  mc_Msg *held;           /* read, waiting for room at the port */
  int full;               /* held is set: changed atomically, for
                          ** mc_net_wait, which must not watch it then */
  int wbroken;            /* a write failed: output is dropped, input is
                          ** still delivered up to the end */
  double heard, said, since;  /* last read, last write, state entered */
  double resume;          /* a listener out of descriptors, or a Unix
                          ** connect the listener's full backlog turned
                          ** away, is not polled until then (0: it is) */
  double every;           /* ping interval: the smaller heartbeat */
  int readable, eof, shut, retry;
  double watched;         /* a Lua state reads it while it waits, until
                          ** then (mc_net_wait); changed atomically */
  size_t nextalt;         /* a connect's next address (o.alts) */
  const void *burst;      /* the hub of the state that wrote a post to it
                          ** directly (mc_net_send), and how many waits */
  unsigned long bwaits;   /* that state had begun then: its next posts
                          ** before it waits again are written behind */
  const mc_Hub *home;     /* the hub of the state that owns its port, or
                          ** owned it last (compared, never used), */
  uint64_t homeserial;    /* and its serial */
  int dr;                 /* draining at the last turn */
} Conn;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int started;
  mc_Hub *hub;
  int fd;                  /* the hub's descriptor */
  uint32_t next_id;
  Conn **add;              /* handed over, not yet taken by the thread */
  size_t nadd, capadd;
  Conn **open;             /* open links, for mc_net_wait (each holds a
                           ** reference from here) */
  int linked;              /* a link was ever open: until then a state's
                           ** wait need not look (changed atomically) */
  size_t nopen, capopen;
  unsigned long asks, seen;  /* drain requests, the last one answered */
  size_t draining;
  struct Home {            /* the home of each link draining (all of */
    const mc_Hub *hub;     /* them count for every state when `allhomes`: */
    uint64_t serial;       /* the array could not grow) */
  } *homes;
  size_t caphomes;
  int allhomes;
  const mc_Type *port, *buffer;
  /* States that step without blocking (mc_net_watch), each told through
  ** its hub when a turn at or after its ask finds nothing to drain. */
  struct Watch {
    mc_Hub *hub;       /* a reference */
    unsigned long ask;
    int done;
    int own;           /* only the links of its own state count */
  } *watch;
  size_t nwatch, capwatch;
} net = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL, -1,
         0, NULL, 0, 0, NULL, 0, 0, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL,
         0, 0};

/* The thread's own: its links and listeners. */
static Conn **conns;
static size_t nconns, capconns;

/*
** The listeners with a socket file, still open: their files are removed at
** exit when the process ends without closing them (os.exit, or a state
** never closed). A forked child's exit leaves them (they are its
** parent's).
*/
static struct {
  pthread_mutex_t lock;
  pthread_once_t once;
  pid_t pid;       /* the process that listens */
  Conn **l;
  size_t n, cap;
} sockfiles = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_ONCE_INIT, 0, NULL, 0, 0};

/* Removes l's socket file if the file at its path is still the one its
** bind made: never another process's socket bound there since, nor
** anything else put there. */
static void remove_sockfile (const Conn *l) {
  struct stat st;
  if (lstat(l->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == l->dev
      && st.st_ino == l->ino)
    unlink(l->path);
}

static void remove_sockfiles (void) {
  size_t i;
  pthread_mutex_lock(&sockfiles.lock);
  if (getpid() == sockfiles.pid) {
    for (i = 0; i < sockfiles.n; i++)
      remove_sockfile(sockfiles.l[i]);
    sockfiles.n = 0;  /* their listeners do not remove them again */
  }
  pthread_mutex_unlock(&sockfiles.lock);
}

static void at_exit (void) {
  atexit(remove_sockfiles);  /* the module is never unloaded (hub.c) */
}

/* 0 when out of memory. */
static int keep_sockfile (Conn *l) {
  int ok = 0;
  pthread_once(&sockfiles.once, at_exit);
  pthread_mutex_lock(&sockfiles.lock);
  if (sockfiles.n == sockfiles.cap) {
    size_t cap = sockfiles.cap ? sockfiles.cap * 2 : 4;
    Conn **a = (Conn **)realloc(sockfiles.l, cap * sizeof *a);
    if (a != NULL) {
      sockfiles.l = a;
      sockfiles.cap = cap;
    }
  }
  if (sockfiles.pid != getpid()) {  /* a forked child's first */
    sockfiles.pid = getpid();
    sockfiles.n = 0;  /* its parent's */
  }
  if (sockfiles.n < sockfiles.cap) {
    sockfiles.l[sockfiles.n++] = l;
    ok = 1;
  }
  pthread_mutex_unlock(&sockfiles.lock);
  return ok;
}

/* Whether l's file was still to be removed (it is the caller's now). */
static int forget_sockfile (const Conn *l) {
  size_t i;
  int found = 0;
  pthread_mutex_lock(&sockfiles.lock);
  for (i = 0; i < sockfiles.n; i++)
    if (sockfiles.l[i] == l) {
      sockfiles.l[i] = sockfiles.l[--sockfiles.n];
      found = 1;
      break;
    }
  pthread_mutex_unlock(&sockfiles.lock);
  return found;
}

/* Removes l's socket file unless that was done (or exit does it). While
** l's socket is open its file's inode cannot be another's: so this comes
** before the close, which would let another process find the file stale,
** remove it and bind one that may reuse the inode number. */
static void drop_sockfile (Conn *l) {
  if (l->path != NULL && forget_sockfile(l))
    remove_sockfile(l);
}

static Conn *alloc_conn (void) {
  Conn *c = (Conn *)calloc(1, sizeof *c);
  if (c != NULL && pthread_mutex_init(&c->wlock, NULL) != 0) {
    free(c);
    c = NULL;
  }
  if (c != NULL)
    c->refs = 1;
  return c;
}

static size_t pending_out (const Conn *c) {
  return c->out.n - c->outpos;
}

/*
** {======================================================
** Ending a link
** =======================================================
*/

static void conn_decref (Conn *c) {
  if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  drop_sockfile(c);
  if (c->fd >= 0)
    close(c->fd);
  free(c->path);
  mc_bytes_free(&c->in);
  mc_bytes_free(&c->out);
  free(c->o.token);
  free(c->o.alts);
  pthread_mutex_destroy(&c->wlock);
  free(c);
}

/* The pair's end goes, and posting threads no longer write to c. */
static void unlink_group (Conn *c, mc_Msg **freed) {
  mc_Group *g = c->g;
  size_t i;
  pthread_mutex_lock(&net.lock);
  for (i = 0; i < net.nopen && net.open[i] != c; i++)
    ;
  if (i < net.nopen) {
    net.open[i] = net.open[--net.nopen];
    __atomic_sub_fetch(&c->refs, 1, __ATOMIC_RELAXED);  /* not the last */
  }
  pthread_mutex_unlock(&net.lock);
  pthread_mutex_lock(&g->lock);
  if (g->link == c)
    g->link = NULL;
  pthread_mutex_unlock(&g->lock);
  c->g = NULL;
  mc_group_release(g, c->e, freed);
}

/* The thread is done with c. */
static void free_conn (Conn *c) {
  mc_Msg *freed = NULL;
  if (c->g != NULL)
    unlink_group(c, &freed);
  if (c->lg != NULL)
    mc_group_decref(c->lg);
  c->lg = NULL;
  mc_msg_free(c->held);
  c->held = NULL;
  mc_msg_free(freed);
  conn_decref(c);
}

/* Lets the pair go: it closes with `code`'s reason at the port. */
static void let_go (Conn *c, int code) {
  mc_Msg *freed = NULL;
  if (c->g != NULL) {
    mc_group_set_reason(c->g, mc_wire_reason(code));
    unlink_group(c, &freed);
    mc_msg_free(freed);
  }
  if (c->lg != NULL) {
    mc_group_decref(c->lg);
    c->lg = NULL;
  }
  mc_msg_free(c->held);
  c->held = NULL;
  __atomic_store_n(&c->full, 0, __ATOMIC_RELAXED);
}

/* The link failed: the pair closes with `code`'s reason, which is told to
** the peer first when `tell` (the socket is then written to the end, for
** at most three heartbeats). */
static void fail (Conn *c, int code, int tell, double t) {
  let_go(c, code);
  if (tell && c->state != CONNECTING && !c->eof
      && mc_wire_put_close(&c->out, code)) {
    c->state = LINGER;
    c->since = t;
  }
  else
    c->state = DEAD;
}

/* }====================================================== */


/*
** {======================================================
** Reading
** =======================================================
*/

/* Compares every byte whatever the first difference, so that the time
** it takes tells a guesser nothing. */
static int same_token (const Conn *c, const char *tok, size_t n) {
  unsigned char diff = 0;
  size_t i;
  if (n != c->o.toklen)
    return 0;
  for (i = 0; i < n; i++)
    diff |= (unsigned char)(tok[i] ^ c->o.token[i]);
  return diff == 0;
}

/* A link a listener accepted passed the token: its new pair's end 0 goes
** to the listener's state as a port, in a message that transfers it.
** Returns 1 once posted, 0 when the listener is closed (the link is
** refused: no one listens any more), -1 when out of memory. */
static int accepted (Conn *c) {
  static const unsigned char bytes[] = {0x01, 0x0a, 0x00};  /* TRANSFER 0 */
  mc_Group *g = mc_group_new(2);
  mc_Msg *m;
  mc_Xfer *x;
  size_t nx;
  uint32_t local;
  int r;
  if (g == NULL)
    return -1;
  g->capacity = c->o.capacity;
  g->maxsize = c->o.maxsize;
  g->remote = 1;
  /* refused should the port never be handed over (the listener closed,
  ** collected, or its state ended first): remote.c's net_accept clears
  ** it at the hand-over */
  g->reason = mc_wire_reason(MC_REASON_REFUSED);
  m = mc_msg_new(bytes, sizeof bytes, 1);
  if (m == NULL) {
    mc_group_decref(g);
    return -1;
  }
  mc_group_incref(g);  /* the message's */
  x = mc_msg_xfer(m, &nx);
  x[0].type = net.port;
  x[0].ptr = g;
  x[0].aux = 0;
  mc_group_attach(g, 1, net.hub, c->id);
  c->g = g;
  c->e = 1;
  r = mc_group_post(c->lg, c->le, m, net.hub, &local, 0);
  if (r != 1) {
    mc_msg_free(m);  /* and with it the pair's end 0 */
    r = r == 0 ? 0 : -1;
  }
  mc_group_decref(c->lg);
  c->lg = NULL;
  return r;
}

/* The peer's HELLO. */
static void hello (Conn *c, const mc_Frame *f, double t) {
  const char *tok;
  size_t toklen;
  uint32_t ms;
  double peer;
  if (!mc_wire_hello(f, &tok, &toklen, &ms)) {
    fail(c, MC_REASON_PROTOCOL, 1, t);
    return;
  }
  if (!same_token(c, tok, toklen)) {
    fail(c, MC_REASON_AUTH, 1, t);
    return;
  }
  peer = ms / 1000.0;
  c->every = peer < c->o.heartbeat ? peer : c->o.heartbeat;
  if (c->lg != NULL) {  /* a listener's side answers only a peer that
                        ** knew the token, so that no one learns it by
                        ** asking */
    int r = mc_wire_put_hello(&c->out, c->o.token, c->o.toklen,
                              (uint32_t)(c->o.heartbeat * 1000 + 0.5))
            ? accepted(c) : -1;
    if (r != 1) {
      if (r == 0)
        fail(c, MC_REASON_REFUSED, 1, t);
      else
        fail(c, MC_REASON_DISCONNECTED, 0, t);  /* out of memory */
      return;
    }
  }
  c->state = OPEN;
  c->since = t;
  pthread_mutex_lock(&c->g->lock);
  c->g->link = c;  /* posting threads may write to it now */
  pthread_mutex_unlock(&c->g->lock);
  pthread_mutex_lock(&net.lock);  /* and its port's state may read it */
  if (net.nopen == net.capopen) {
    size_t cap = net.capopen ? net.capopen * 2 : 16;
    Conn **a = (Conn **)realloc(net.open, cap * sizeof *a);
    if (a != NULL) {
      net.open = a;
      net.capopen = cap;
    }
  }
  if (net.nopen < net.capopen) {  /* else only this thread reads it */
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    net.open[net.nopen++] = c;
    __atomic_store_n(&net.linked, 1, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&net.lock);
}

/* Posts a message read to the port's end: 0 while that is full (the
** thread hears when a message is taken there) or memory ran out. */
static int deliver (Conn *c, mc_Msg *m) {
  uint32_t local;
  int r = c->g != NULL ? mc_group_post(c->g, mc_group_partner(c->g, c->e), m,
                                       net.hub, &local, c->id)
                       : 0;
  if (r == MC_FULL || r < 0) {
    c->held = m;
    __atomic_store_n(&c->full, 1, __ATOMIC_RELAXED);
    c->retry = r < 0;
    return 0;
  }
  if (r == 0)
    mc_msg_free(m);  /* the port closed meanwhile: nobody reads it */
  return 1;
}

/* Handles one frame; 0 to stop reading for now. */
static int frame (Conn *c, const mc_Frame *f, double t) {
  if (c->state == HELLO && f->type != MC_WIRE_CLOSE) {  /* a peer that
                                                      ** refuses says why */
    if (f->type != MC_WIRE_HELLO) {
      fail(c, MC_REASON_PROTOCOL, 1, t);
      return 0;
    }
    hello(c, f, t);
    return c->state == OPEN;
  }
  switch (f->type) {
    case MC_WIRE_MSG: {
      int bad;
      mc_Msg *m = mc_wire_msg(f, net.buffer, c->o.maxsize, &bad);
      if (m == NULL) {
        fail(c, bad ? MC_REASON_PROTOCOL : MC_REASON_DISCONNECTED, bad, t);
        return 0;
      }
      return deliver(c, m);
    }
    case MC_WIRE_PING:
      return 1;
    case MC_WIRE_CLOSE: {
      int code = f->p[0];
      if (code != MC_REASON_NONE && mc_wire_reason(code) == NULL)
        code = MC_REASON_PROTOCOL;
      let_go(c, code);  /* the peer closed: nothing more to say */
      c->state = DEAD;
      return 0;
    }
    default:  /* a second HELLO */
      fail(c, MC_REASON_PROTOCOL, 1, t);
      return 0;
  }
}

/* Handles the whole frames read, while the port has room. Each frame's
** limit is the one of the state it is read in: the HELLO and the frames
** after it may come in one read. */
static void frames (Conn *c, double t) {
  while (c->held == NULL && (c->state == HELLO || c->state == OPEN)) {
    mc_Frame f;
    size_t max = c->state == HELLO ? PRE_AUTH  /* a peer not yet known
                                               ** gets no room for more */
                                   : c->o.maxsize + FRAME_SLACK;
    long k = mc_wire_next(c->in.p + c->inpos, c->in.n - c->inpos, max, &f);
    if (k == 0)
      break;
    if (k < 0) {
      fail(c, MC_REASON_PROTOCOL, 1, t);
      break;
    }
    c->inpos += (size_t)k;
    if (!frame(c, &f, t))
      break;
  }
  if (c->inpos == c->in.n) {
    c->in.n = c->inpos = 0;
    if (c->in.cap > 16 * READ_CHUNK)  /* grown by a large message */
      mc_bytes_free(&c->in);
  }
}

/* Reads what the socket has, while the port has room. */
static void read_link (Conn *c, double t) {
  if (c->held != NULL) {  /* the port had no room: try again */
    mc_Msg *m = c->held;
    c->held = NULL;
    __atomic_store_n(&c->full, 0, __ATOMIC_RELAXED);
    if (!deliver(c, m))
      return;
  }
  frames(c, t);
  while (c->readable && c->held == NULL && !c->eof
         && (c->state == HELLO || c->state == OPEN)) {
    ssize_t k;
    if (c->inpos > 0 && c->inpos == c->in.n)
      c->in.n = c->inpos = 0;
    else if (c->inpos > READ_CHUNK) {  /* keep the buffer's start in use */
      memmove(c->in.p, c->in.p + c->inpos, c->in.n - c->inpos);
      c->in.n -= c->inpos;
      c->inpos = 0;
    }
    if (!mc_bytes_reserve(&c->in, READ_CHUNK)) {
      c->retry = 1;
      return;
    }
    k = recv(c->fd, c->in.p + c->in.n, c->in.cap - c->in.n, 0);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c->readable = 0;
      break;
    }
    if (k <= 0) {
      c->eof = 1;
      break;
    }
    c->in.n += (size_t)k;
    c->heard = t;
    frames(c, t);
  }
  if (c->eof && c->held == NULL && (c->state == HELLO || c->state == OPEN))
    fail(c, MC_REASON_DISCONNECTED, 0, t);
}

/* }====================================================== */


/*
** {======================================================
** Writing
** =======================================================
*/

/* Frames what the port posted, while little waits to be written; after
** the port's close, a CLOSE frame. */
static void take_posts (Conn *c, double t) {
  size_t count;
  int closing;
  if (c->g == NULL || c->state != OPEN)
    return;
  mc_group_head(c->g, c->e, &count, &closing);  /* we are looking now */
  while (pending_out(c) < OUT_HIGH) {
    mc_Msg *m;
    int h = mc_group_take(c->g, c->e, MC_TAKE_MESSAGE | MC_TAKE_CLOSE, &m);
    if (h == MC_MESSAGE) {
      int r = mc_wire_put_msg(&c->out, m);
      mc_msg_free(m);
      if (r == 0) {
        fail(c, MC_REASON_DISCONNECTED, 0, t);  /* out of memory */
        return;
      }
    }
    else if (h == MC_CLOSED) {
      /* with a reason only when a listener never handed it over */
      int code = mc_wire_code(mc_group_reason(c->g));
      let_go(c, code);
      if (mc_wire_put_close(&c->out, code)) {
        c->state = LINGER;
        c->since = t;
      }
      else
        c->state = DEAD;
      return;
    }
    else
      return;
  }
}

/* Writes what it can of c's output: 0 when all of it or the socket is
** full, -1 when the socket failed. The output keeps at most OUT_HIGH
** bytes written before what is left (a socket that never empties must
** not make it grow with the stream), and a buffer grown past 4 OUT_HIGH
** by a large message is let go once written. */
static int send_out (Conn *c, double t) {
  while (pending_out(c) > 0) {
    ssize_t k = send(c->fd, c->out.p + c->outpos, pending_out(c),
                     MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (c->outpos >= OUT_HIGH) {
        memmove(c->out.p, c->out.p + c->outpos, pending_out(c));
        c->out.n -= c->outpos;
        c->outpos = 0;
      }
      return 0;
    }
    if (k < 0)
      return -1;
    c->outpos += (size_t)k;
    c->said = t;
  }
  c->out.n = c->outpos = 0;
  if (c->out.cap > 4 * OUT_HIGH)
    mc_bytes_free(&c->out);
  return 0;
}

/* A failed write ends a closing link; an open one drops its output from
** then on but goes on reading: what the peer sent before it went away
** (its last messages, its CLOSE) is still delivered, and its end of
** stream ends the link. */
static void write_link (Conn *c, double t) {
  if (!c->wbroken && send_out(c, t) == 0)
    return;
  c->out.n = c->outpos = 0;
  if (c->state == LINGER)
    c->state = DEAD;
  else
    c->wbroken = 1;
}

/* }====================================================== */


/*
** {======================================================
** A turn of the thread
** =======================================================
*/

static int accept_links (Conn *l, double t) {
  int i;
  for (i = 0; i < ACCEPTS; i++) {
    Conn *c;
    int one = 1;
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      /* Out of descriptors or memory, the connection stays in the
      ** backlog and the socket readable: a pause, not a busy loop. */
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
          || errno == ENOMEM)
        l->resume = t + ACCEPT_PAUSE;
      return 0;  /* else EAGAIN: the next poll tells */
    }
    c = alloc_conn();
    if (c != NULL && l->o.toklen > 0
        && (c->o.token = (char *)malloc(l->o.toklen)) == NULL) {
      conn_decref(c);
      c = NULL;
    }
    if (c == NULL) {
      close(fd);
      continue;
    }
    c->fd = fd;
    if (nconns == capconns) {
      size_t cap = capconns ? capconns * 2 : 16;
      Conn **a = (Conn **)realloc(conns, cap * sizeof *a);
      if (a == NULL) {
        conn_decref(c);  /* and its descriptor */
        continue;
      }
      conns = a;
      capconns = cap;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (l->o.toklen > 0)
      memcpy(c->o.token, l->o.token, l->o.toklen);
    c->o.toklen = l->o.toklen;
    c->o.heartbeat = l->o.heartbeat;
    c->o.capacity = l->o.capacity;
    c->o.maxsize = l->o.maxsize;
    c->kind = LINK;
    c->state = HELLO;
    c->every = c->o.heartbeat;
    c->heard = c->said = c->since = t;
    pthread_mutex_lock(&net.lock);
    c->id = ++net.next_id;
    pthread_mutex_unlock(&net.lock);
    mc_group_incref(l->g);
    c->lg = l->g;
    c->le = mc_group_partner(l->g, l->e);
    conns[nconns++] = c;  /* it says HELLO once the peer's passed */
  }
  return 1;  /* there may be more */
}

static void turn_listener (Conn *l, double t) {
  size_t count;
  int closing;
  if (mc_group_head(l->g, l->e, &count, &closing) == MC_CLOSED
      || !mc_group_entangled(l->g)) {
    /* listener:close(), or the listener collected. The connections its
    ** backlog holds are taken first, to be refused at their HELLO
    ** (accepted) rather than reset by the close ("disconnected"); a Unix
    ** socket's file goes before, so that none comes meanwhile. */
    int i;
    drop_sockfile(l);
    for (i = 0; i < ACCEPTS && accept_links(l, t); i++)
      ;
    l->state = DEAD;
    return;
  }
  if (l->resume != 0 && t < l->resume)
    return;
  l->resume = 0;
  if (l->readable) {
    l->readable = 0;
    accept_links(l, t);
  }
}

/* A connect refused or timed out: it goes on to the next address the
** host name resolved to (a name may resolve to ::1 and 127.0.0.1, and be
** listened on at one of them; an address may drop every packet). Returns
** 1 when a connect is under way again, with a time limit of its own. */
static int next_address (Conn *c) {
  while (c->nextalt < c->o.nalts) {
    const mc_NetAddr *a = &c->o.alts[c->nextalt++];
    int one = 1, r;
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK
                                     | SOCK_CLOEXEC, 0);
    if (fd < 0)
      continue;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    do
      r = connect(fd, (const struct sockaddr *)&a->sa, a->len);
    while (r != 0 && errno == EINTR);
    if (r != 0 && errno != EINPROGRESS) {
      close(fd);
      continue;
    }
    close(c->fd);
    c->fd = fd;  /* polled for POLLOUT from the next turn */
    c->since = mc_hub_now();
    return 1;
  }
  return 0;
}

/* A Unix connect the listener's full backlog turned away (EAGAIN: a TCP
** listener's kernel would retry the SYN itself) is made again at
** c->resume, on the same socket, until it is taken or refused, or the
** connect times out. Returns 1 while it still waits. */
static int connect_again (Conn *c, double t) {
  const mc_NetAddr *a = &c->o.alts[0];
  int r;
  if (t < c->resume)
    return 1;
  do
    r = connect(c->fd, (const struct sockaddr *)&a->sa, a->len);
  while (r != 0 && errno == EINTR);
  if (r != 0 && errno == EAGAIN) {
    c->resume = t + CONNECT_PAUSE;
    return 1;
  }
  c->resume = 0;
  if (r != 0 && errno != EINPROGRESS)
    fail(c, MC_REASON_REFUSED, 0, t);
  return 0;  /* else taken: polled for POLLOUT, which says so */
}

static void turn_link (Conn *c, double t) {
  double limit = 3 * c->o.heartbeat;
  if (c->state == CONNECTING && c->resume != 0) {
    if (t - c->since >= limit)
      fail(c, MC_REASON_TIMEOUT, 0, t);
    else
      connect_again(c, t);
    return;
  }
  if (c->state == CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    if (!c->readable && t - c->since < limit)
      return;
    if (t - c->since >= limit)
      err = ETIMEDOUT;
    else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    if (err == EINPROGRESS || err == EALREADY)
      return;
    if (err != 0 && next_address(c))
      return;
    if (err != 0) {
      fail(c, err == ETIMEDOUT ? MC_REASON_TIMEOUT : MC_REASON_REFUSED, 0, t);
      return;
    }
    c->state = HELLO;
    c->since = c->heard = c->said = t;
    c->readable = 1;
  }
  if ((c->state == HELLO || c->state == OPEN) && c->held == NULL
      && t - c->heard >= limit)
    c->readable = 1;  /* a last look before it times out: a state that
                      ** watched the link may have left bytes unread */
  if (c->state == HELLO || c->state == OPEN)
    read_link(c, t);
  if (c->state == HELLO || c->state == OPEN) {
    if (c->held == NULL && t - c->heard >= limit) {
      fail(c, MC_REASON_TIMEOUT, 1, t);
    }
    else if (c->state == OPEN && pending_out(c) == 0
             && t - c->said >= c->every && !mc_wire_put_ping(&c->out))
      fail(c, MC_REASON_DISCONNECTED, 0, t);
  }
  while (c->state == OPEN || c->state == HELLO) {  /* as the socket takes
                                                 ** them */
    take_posts(c, t);
    if (pending_out(c) == 0)
      break;
    write_link(c, t);
    if (pending_out(c) > 0)
      break;  /* full: poll says when it takes more */
  }
  if (c->state == LINGER && pending_out(c) > 0)
    write_link(c, t);
  if (c->state == LINGER) {  /* written to the end, then wait for the
                             ** peer's end (or give up) */
    if (pending_out(c) == 0 && !c->shut) {
      shutdown(c->fd, SHUT_WR);
      c->shut = 1;
    }
    while (c->readable && !c->eof) {
      char sink[4096];
      ssize_t k = recv(c->fd, sink, sizeof sink, 0);
      if (k < 0 && errno == EINTR)
        continue;
      if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        c->readable = 0;
      else if (k <= 0)
        c->eof = 1;
      else
        c->heard = t;
    }
    if ((c->shut && c->eof)  /* given up: the peer took nothing, or went */
        || (pending_out(c) > 0 ? t - c->said : t - c->heard) >= limit)
      c->state = DEAD;
  }
}

static double watched_until (const Conn *c) {
  double w;
  __atomic_load(&c->watched, &w, __ATOMIC_RELAXED);
  return w;
}

static int watched (const Conn *c) {
  return c->state == OPEN && watched_until(c) > mc_hub_now();
}

/* When the next timer of c is due. */
static double due (const Conn *c) {
  double limit = 3 * c->o.heartbeat, d;
  if (c->kind == LISTENER)
    return c->resume != 0 ? c->resume : 1e300;
  if (c->retry)
    return 0;  /* memory ran out: try again soon */
  if (c->resume != 0)  /* connect_again */
    return c->resume < c->since + limit ? c->resume : c->since + limit;
  d = c->since + limit;
  if (c->state == LINGER)
    d = (pending_out(c) > 0 ? c->said : c->heard) + limit;
  if (c->state == HELLO || c->state == OPEN) {
    d = c->held != NULL ? 1e300 : c->heard + limit;
    if (c->state == OPEN && pending_out(c) == 0
        && c->said + c->every < d)  /* a ping goes only then (a link in
                          ** HELLO sends none): a socket full for longer
                          ** waits for POLLOUT, not for the clock */
      d = c->said + c->every;
    if (watched(c) && watched_until(c) < d)
      d = watched_until(c);
  }
  return d;
}

static short events_of (const Conn *c) {
  if (c->kind == LISTENER)
    return c->resume != 0 ? 0 : POLLIN;
  switch (c->state) {
    case CONNECTING: return c->resume != 0 ? 0 : POLLOUT;
    case LINGER: return pending_out(c) > 0 ? POLLOUT : POLLIN;
    default: return (short)((c->held == NULL && !watched(c) ? POLLIN : 0)
                            | (pending_out(c) > 0 ? POLLOUT : 0));
  }
}

/* Whether c has output still to write: messages its port posted, or
** bytes framed; or its pair was closed here and the close is still to be
** read by the peer. mc.run() waits for these (a process that ended now
** would lose them), unless the peer has taken nothing for a while. */
static int draining (const Conn *c, double t) {
  size_t count;
  int closing;
  if (c->kind != LINK)
    return 0;
  if (pending_out(c) > 0 && t - c->said >= 3 * c->o.heartbeat)
    return 0;  /* the peer took nothing for three heartbeats: mc.run()
               ** does not wait for it any longer */
  if (c->state == LINGER)  /* until the peer has read it all: a process
                          ** that ended with bytes of the peer unread
                          ** would reset the connection, and TCP would
                          ** drop what the peer had not yet read */
    return 1;
  if (c->g == NULL || c->wbroken)
    return 0;
  return c->state == CONNECTING || c->state == HELLO  /* up or refused */
         || pending_out(c) > 0 || !mc_group_entangled(c->g)
         || mc_group_head(c->g, c->e, &count, &closing) != MC_EMPTY;
}

/* Takes the links handed over since the last turn. */
static void take_added (void) {
  size_t i;
  pthread_mutex_lock(&net.lock);
  for (i = 0; i < net.nadd; i++) {
    if (nconns == capconns) {
      size_t cap = capconns ? capconns * 2 : 16;
      Conn **a = (Conn **)realloc(conns, cap * sizeof *a);
      if (a == NULL)
        break;  /* the rest wait for a later turn */
      conns = a;
      capconns = cap;
    }
    conns[nconns++] = net.add[i];
  }
  memmove(net.add, net.add + i, (net.nadd - i) * sizeof *net.add);
  net.nadd -= i;
  pthread_mutex_unlock(&net.lock);
}

/* poll(2), but a thread whose last wait ended soon first watches the
** descriptors for as long as mc_hub_spin says (an answer that comes at
** once is then taken without sleeping and being woken), as a Lua state's
** hub does. */
static int wait_events (struct pollfd *pfd, size_t n, int ms, double t0) {
  static int warm;
  double spin = (double)mc_hub_spin(-1) * 1e-9, t;
  int r = 0;
  if (warm && spin > 0 && ms != 0)
    while ((r = poll(pfd, (nfds_t)n, 0)) == 0 && mc_hub_now() - t0 < spin)
      ;
  if (r == 0)
    r = poll(pfd, (nfds_t)n, ms);
  t = mc_hub_now();
  warm = r > 0 && t - t0 < 0.001;
  return r;
}

/* Under net.lock, in the network thread after a turn: the homes of its d
** links draining. */
static void set_homes (size_t d) {
  size_t i, k;
  if (d > net.caphomes) {
    struct Home *a = (struct Home *)realloc(net.homes, d * sizeof *a);
    if (a == NULL) {
      net.allhomes = 1;
      return;
    }
    net.homes = a;
    net.caphomes = d;
  }
  net.allhomes = 0;
  for (i = k = 0; i < nconns && k < d; i++)
    if (conns[i]->dr) {
      net.homes[k].hub = conns[i]->home;
      net.homes[k++].serial = conns[i]->homeserial;
    }
}

/* Under net.lock: how many links drain for the state of hub h (NULL: for
** the whole process). */
static size_t drain_left (const mc_Hub *h) {
  size_t i, n = 0;
  if (h == NULL || net.allhomes)
    return net.draining;
  for (i = 0; i < net.draining; i++)
    n += net.homes[i].hub == h && net.homes[i].serial == h->serial;
  return n;
}

static void *run (void *arg) {
  short *rev = NULL;  /* what the last poll saw of each link, applied
                      ** under its lock */
  struct pollfd *pfd = NULL;
  size_t cappfd = 0;
  uint32_t *ids = NULL;
  size_t capids = 0;
  (void)arg;
  for (;;) {
    size_t i, n, d;
    unsigned long asks;
    int flags, ms;
    double t, next;
    mc_hub_wait(net.hub, 0, &ids, &capids, &flags);  /* every link is
                                                     ** looked at anyway;
                                                     ** first, so that news
                                                     ** of a link handed
                                                     ** over after the take
                                                     ** below wakes the
                                                     ** poll */
    take_added();
    pthread_mutex_lock(&net.lock);
    asks = net.asks;
    pthread_mutex_unlock(&net.lock);
    t = mc_hub_now();
    for (i = n = d = 0; i < nconns; i++) {
      Conn *c = conns[i];
      int dead;
      pthread_mutex_lock(&c->wlock);
      c->retry = 0;
      if (rev != NULL && i < cappfd - 1) {
        c->readable |= rev[i] != 0;
        rev[i] = 0;
      }
      if (c->g != NULL) {  /* before the turn, which may let the pair go */
        uint64_t serial = 0;
        mc_Hub *h = mc_group_owner_hub(c->g, mc_group_partner(c->g, c->e),
                                       &serial);
        if (h != NULL) {
          c->home = h;
          c->homeserial = serial;
        }
      }
      if (c->kind == LISTENER)
        turn_listener(c, t);
      else
        turn_link(c, t);
      dead = c->state == DEAD;
      c->dr = !dead && draining(c, t);
      d += (size_t)c->dr;
      pthread_mutex_unlock(&c->wlock);
      if (dead)  /* nobody brings a dead link back */
        free_conn(c);
      else
        conns[n++] = c;
    }
    nconns = n;
    pthread_mutex_lock(&net.lock);
    net.seen = asks;
    net.draining = d;
    set_homes(d);
    pthread_cond_broadcast(&net.changed);
    for (i = 0; i < net.nwatch; i++) {
      if (!net.watch[i].done && net.watch[i].ask <= asks
          && drain_left(net.watch[i].own ? net.watch[i].hub : NULL) == 0) {
        net.watch[i].done = 1;
        mc_hub_notify(net.watch[i].hub, 0);  /* news, which a descriptor
                          ** exposed later still shows: its step learns
                          ** it is done */
      }
    }
    pthread_mutex_unlock(&net.lock);
    if (cappfd < nconns + 1) {
      struct pollfd *p = (struct pollfd *)realloc(pfd, (nconns + 1)
                                                       * sizeof *p);
      short *r = (short *)realloc(rev, (nconns + 1) * sizeof *r);
      if (r != NULL)
        rev = r;
      if (p != NULL)
        pfd = p;
      if (p != NULL && r != NULL)
        cappfd = nconns + 1;
    }
    if (pfd == NULL || rev == NULL) {  /* out of memory: try again soon */
      poll(NULL, 0, 10);
      continue;
    }
    next = t + 1;
    pfd[0].fd = net.fd;
    pfd[0].events = POLLIN;
    for (i = 0; i < nconns && i + 1 < cappfd; i++) {
      double u;
      pthread_mutex_lock(&conns[i]->wlock);
      u = due(conns[i]);
      pfd[i + 1].events = events_of(conns[i]);
      pfd[i + 1].fd = pfd[i + 1].events != 0 ? conns[i]->fd : -1;  /* a
                      ** full port's link waits for room, not its socket */
      pthread_mutex_unlock(&conns[i]->wlock);
      if (u < next)
        next = u;
    }
    t = mc_hub_now();
    ms = next <= t ? 0 : (int)((next - t) * 1000) + 1;
    for (n = 0; n < i; n++)
      rev[n] = 0;
    if (wait_events(pfd, i + 1, ms, t) > 0)
      for (n = 0; n < i; n++)
        rev[n] = pfd[n + 1].revents;
  }
  return NULL;
}

/* }====================================================== */


/* Starts the thread, once, with every signal blocked in it (they are the
** Lua states' threads'); under net.lock. */
static int start (void) {
  pthread_t tid;
  pthread_attr_t attr;
  sigset_t all, old;
  int rc;
  if (net.started)
    return 1;
  if ((net.hub = mc_hub_new()) == NULL)
    return 0;  /* errno says why */
  net.fd = mc_hub_expose(net.hub);
  mc_keep_loaded();
  sigfillset(&all);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&tid, &attr, run, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    mc_hub_decref(net.hub);
    net.hub = NULL;
    errno = rc;
    return 0;
  }
  net.started = 1;
  return 1;
}

void mc_net_types (const mc_Type *port, const mc_Type *buffer) {
  pthread_mutex_lock(&net.lock);
  if (net.port == NULL) {  /* once, before any link: read without the lock
                          ** by every thread a link reaches after this */
    net.port = port;
    net.buffer = buffer;
  }
  pthread_mutex_unlock(&net.lock);
}

/* Hands c to the thread; 0 (errno) when it cannot. */
static int hand_over (Conn *c) {
  int ok = 0;
  mc_Hub *hub = NULL;
  pthread_mutex_lock(&net.lock);
  if (start()) {
    if (net.nadd == net.capadd) {
      size_t cap = net.capadd ? net.capadd * 2 : 8;
      Conn **a = (Conn **)realloc(net.add, cap * sizeof *a);
      if (a != NULL) {
        net.add = a;
        net.capadd = cap;
      }
    }
    if (net.nadd < net.capadd) {
      c->id = ++net.next_id;
      mc_group_attach(c->g, c->e, net.hub, c->id);
      net.add[net.nadd++] = c;
      hub = net.hub;
      ok = 1;
    }
    else
      errno = ENOMEM;
  }
  pthread_mutex_unlock(&net.lock);
  if (hub != NULL)
    mc_hub_notify(hub, 0);
  return ok;
}

static Conn *new_conn (int kind, int fd, mc_Group *g, size_t e,
                       mc_NetOptions *o) {
  Conn *c = alloc_conn();
  double t = mc_hub_now();
  if (c == NULL) {
    close(fd);
    errno = ENOMEM;
    return NULL;
  }
  c->kind = kind;
  c->fd = fd;
  c->g = g;
  c->e = e;
  c->o = *o;
  o->token = NULL;
  o->alts = NULL;
  o->nalts = 0;
  c->every = o->heartbeat;
  c->heard = c->said = c->since = t;
  return c;
}

int mc_net_link (int fd, int connecting, mc_Group *g, size_t e,
                 mc_NetOptions *o) {
  int one = 1, err = ENOMEM;
  Conn *c = new_conn(LINK, fd, g, e, o);
  if (c == NULL)
    return 0;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->state = connecting ? CONNECTING : HELLO;
  if (connecting == MC_NET_AGAIN) {  /* o->alts[0]: where, once more */
    c->resume = c->since + CONNECT_PAUSE;
    c->nextalt = c->o.nalts;
  }
  if (mc_wire_put_hello(&c->out, c->o.token, c->o.toklen,
                        (uint32_t)(c->o.heartbeat * 1000 + 0.5))) {
    if (hand_over(c))
      return 1;
    if (errno != 0)
      err = errno;  /* why the thread did not start, say */
  }
  c->g = NULL;  /* the caller's still */
  free_conn(c);
  errno = err;
  return 0;
}

/* The absolute path of the socket file a listener just bound at path,
** and its identity; NULL when out of memory. */
static char *sockfile_of (const char *path, dev_t *dev, ino_t *ino) {
  struct stat st;
  char cwd[4096], *p;
  size_t n;
  if (lstat(path, &st) == 0) {
    *dev = st.st_dev;
    *ino = st.st_ino;
  }
  if (path[0] == '/' || getcwd(cwd, sizeof cwd) == NULL)
    return strdup(path);  /* relative, with no cwd: a chdir later leaves
                          ** the file, as remove_sockfile finds another */
  n = strlen(cwd);
  p = (char *)malloc(n + strlen(path) + 2);
  if (p != NULL) {
    memcpy(p, cwd, n);
    p[n] = '/';
    strcpy(p + n + 1, path);
  }
  return p;
}

int mc_net_listen (int fd, const char *path, mc_Group *g, size_t e,
                   mc_NetOptions *o) {
  int err = ENOMEM;
  Conn *c = new_conn(LISTENER, fd, g, e, o);
  if (c == NULL)
    return 0;
  c->state = OPEN;
  if (path == NULL
      || ((c->path = sockfile_of(path, &c->dev, &c->ino)) != NULL
          && keep_sockfile(c))) {
    if (hand_over(c))
      return 1;
    if (errno != 0)
      err = errno;
  }
  if (c->path != NULL)
    forget_sockfile(c);
  free(c->path);
  c->path = NULL;  /* the caller's to remove */
  c->g = NULL;
  free_conn(c);
  errno = err;
  return 0;
}

/* A post from a Lua state whose scheduler has not waited since its last
** post went straight to the same socket (the hub's count of waits,
** mc_net_wait, is as it was then) is one of a burst: it is framed behind
** it, and written by the network thread (told when the output was empty)
** or by that state when it next waits, whichever comes first. So a burst
** of small posts becomes a few large writes, where a post answered before
** the next is written at once. (The count is the hub's, not a thread-local
** variable: a module loaded with dlopen and using TLS made
** ThreadSanitizer's runtime fail as threads came and went.) */
int mc_net_send (mc_Group *g, size_t to, mc_Msg *m, mc_Hub *self) {
  Conn *c;
  int sent = 0;
  pthread_mutex_lock(&g->lock);
  c = (Conn *)g->link;
  if (c != NULL)
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&g->lock);
  if (c == NULL)
    return 0;
  pthread_mutex_lock(&c->wlock);  /* the thread takes no post meanwhile */
  if (c->state == OPEN && !c->wbroken && c->g == g && c->e == to
      && pending_out(c) < OUT_HIGH) {
    size_t count, before = pending_out(c);
    int closing;
    int behind = before > 0
                 || (c->burst == self && c->bwaits == self->netwaits);
    if (mc_group_head(g, to, &count, &closing) == MC_EMPTY
        && mc_wire_put_msg(&c->out, m) == 1) {
      sent = 1;
      if (!behind) {
        c->burst = self;
        c->bwaits = self->netwaits;
      }
      if (behind ? before == 0
                 : send_out(c, mc_hub_now()) != 0 || pending_out(c) > 0)
        mc_hub_notify(net.hub, c->id);  /* the thread goes on from here */
      if (pending_out(c) == 0)
        sent = 2;
    }
  }
  pthread_mutex_unlock(&c->wlock);
  conn_decref(c);
  return sent;
}

#define WATCH 64  /* links a state watches at most, the others are read
                  ** by the network thread alone */

size_t mc_net_wait (mc_Hub *h, double seconds, uint32_t **buf, size_t *cap,
                    int *flags) {
  Conn *c[WATCH];
  struct pollfd p[WATCH + 1];
  size_t i, n = 0;
  h->netwaits++;
  if (seconds != 0 && __atomic_load_n(&net.linked, __ATOMIC_ACQUIRE)) {
    pthread_mutex_lock(&net.lock);
    for (i = 0; i < net.nopen && n < WATCH; i++) {
      Conn *k = net.open[i];
      if (!__atomic_load_n(&k->full, __ATOMIC_RELAXED)
          && mc_group_owner(k->g, mc_group_partner(k->g, k->e), h)
             == MC_OWNER_SELF) {
        double until = mc_hub_now() + 0.05;
        __atomic_store(&k->watched, &until, __ATOMIC_RELAXED);
        __atomic_add_fetch(&k->refs, 1, __ATOMIC_RELAXED);
        p[n].fd = k->fd;
        p[n].events = POLLIN;
        p[n].revents = 0;
        c[n++] = k;
      }
    }
    pthread_mutex_unlock(&net.lock);
  }
  if (n == 0)
    return mc_hub_wait(h, seconds, buf, cap, flags);
  for (i = 0; i < n; i++) {  /* what this state wrote behind a burst goes
                             ** before it sleeps */
    pthread_mutex_lock(&c[i]->wlock);
    if (c[i]->state == OPEN && pending_out(c[i]) > 0)
      write_link(c[i], mc_hub_now());
    pthread_mutex_unlock(&c[i]->wlock);
  }
  mc_hub_sleep(h, seconds, p, n);
  for (i = 0; i < n; i++) {
    if (p[i].revents != 0) {  /* read here: its messages are this state's */
      pthread_mutex_lock(&c[i]->wlock);
      if (c[i]->state == OPEN) {
        c[i]->readable = 1;
        read_link(c[i], mc_hub_now());
      }
      pthread_mutex_unlock(&c[i]->wlock);
    }
    conn_decref(c[i]);
  }
  return mc_hub_wait(h, 0, buf, cap, flags);
}

/* The time `seconds` from now, for pthread_cond_timedwait. */
static struct timespec time_in (double seconds) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  t.tv_sec += (time_t)seconds;
  t.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec++;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

/* How long a caller with a shorter limit still waits for the turn it
** asked for (the thread answers within microseconds when idle), so that
** mc.run(0) learns whether anything drains. */
#define TURN_WAIT 0.01

/* Waits until the thread has made a turn begun after this call (and,
** with `drain`, until no closed pair's link of the state of hub h, or of
** any state when h is NULL, has output left), or `seconds` pass (< 0: no
** limit; the turn is waited for TURN_WAIT at least); returns how many
** links are left to drain, or 1 when the turn did not come. */
static size_t wait_turn (double seconds, int drain, const mc_Hub *h) {
  unsigned long my;
  size_t left;
  struct timespec until, turn;
  mc_Hub *hub;
  pthread_mutex_lock(&net.lock);
  if (!net.started) {
    pthread_mutex_unlock(&net.lock);
    return 0;
  }
  my = ++net.asks;
  hub = net.hub;
  pthread_mutex_unlock(&net.lock);
  mc_hub_notify(hub, 0);
  if (seconds >= 0) {
    until = time_in(seconds);
    turn = time_in(seconds > TURN_WAIT ? seconds : TURN_WAIT);
  }
  pthread_mutex_lock(&net.lock);
  while (net.seen < my) {
    if (seconds < 0)
      pthread_cond_wait(&net.changed, &net.lock);
    else if (pthread_cond_timedwait(&net.changed, &net.lock, &turn) != 0)
      break;
  }
  while (net.seen >= my && drain && drain_left(h) > 0) {
    if (seconds < 0)
      pthread_cond_wait(&net.changed, &net.lock);
    else if (pthread_cond_timedwait(&net.changed, &net.lock, &until) != 0)
      break;
  }
  left = net.seen < my ? 1 : drain ? drain_left(h) : 0;
  pthread_mutex_unlock(&net.lock);
  return left;
}

size_t mc_net_drain (double seconds, mc_Hub *h) {
  return wait_turn(seconds, 1, h);
}

void mc_net_unwatch (mc_Hub *h) {
  size_t i;
  int found = 0;
  pthread_mutex_lock(&net.lock);
  for (i = 0; i < net.nwatch; i++) {
    if (net.watch[i].hub == h) {
      net.watch[i] = net.watch[--net.nwatch];
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&net.lock);
  if (found)
    mc_hub_decref(h);
}

int mc_net_watch (mc_Hub *h, int renew, int own) {
  size_t i;
  int pending = 1;
  mc_Hub *hub;
  pthread_mutex_lock(&net.lock);
  if (!net.started) {
    pthread_mutex_unlock(&net.lock);
    return 0;
  }
  for (i = 0; i < net.nwatch && net.watch[i].hub != h; i++)
    ;
  if (i < net.nwatch && renew) {  /* a turn after this call says again */
    net.watch[i].ask = ++net.asks;
    net.watch[i].done = 0;
    hub = net.hub;
    pthread_mutex_unlock(&net.lock);
    mc_hub_notify(hub, 0);
    return 1;
  }
  if (i < net.nwatch) {  /* asked before: done, or not yet */
    if (net.watch[i].done) {
      net.watch[i] = net.watch[--net.nwatch];
      pending = 0;
    }
    pthread_mutex_unlock(&net.lock);
    if (!pending)
      mc_hub_decref(h);
    return pending;
  }
  if (net.nwatch == net.capwatch) {
    size_t cap = net.capwatch ? 2 * net.capwatch : 4;
    struct Watch *w = (struct Watch *)realloc(net.watch, cap * sizeof *w);
    if (w == NULL) {  /* out of memory: the step does not wait */
      pthread_mutex_unlock(&net.lock);
      return 0;
    }
    net.watch = w;
    net.capwatch = cap;
  }
  mc_hub_incref(h);
  net.watch[net.nwatch].hub = h;
  net.watch[net.nwatch].ask = ++net.asks;  /* a turn that begins later */
  net.watch[net.nwatch].done = 0;
  net.watch[net.nwatch].own = own;
  net.nwatch++;
  hub = net.hub;
  pthread_mutex_unlock(&net.lock);
  mc_hub_notify(hub, 0);
  return 1;
}

void mc_net_sync (void) {
  wait_turn(-1, 0, NULL);
}
