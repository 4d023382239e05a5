/*
** remote.c: mc.listen and mc.connect (API.md 12), the Lua side of links
** to other processes. The sockets are opened here, so that a malformed
** address, one already in use, or one that cannot be resolved raises in
** the caller; then they belong to the network thread (net.c).
**
** mc.connect returns a port whose pair's other end is the network
** thread's. mc.listen binds at once and returns a port of a pair of its
** own (and the bound address): each link that passes the token arrives
** there as a message that transfers its new port, which the Lua side
** (messagechannel.remote) turns into a connect event.
*/
#define _GNU_SOURCE  /* SOCK_CLOEXEC, SOCK_NONBLOCK */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "compat.h"
#include "mc.h"

#define DEFAULT_CAPACITY 1024
#define DEFAULT_HEARTBEAT 5.0
#define DEFAULT_MAXSIZE ((size_t)16 << 20)

/* An address of API.md 12: "unix:/path" or "tcp:host:port". */
typedef struct Addr {
  const char *given;
  struct sockaddr_un un;  /* a Unix socket's */
  char host[256], port[8];
  struct addrinfo *ai;    /* a TCP one's, resolved */
} Addr;

static void bad_address (lua_State *L, const char *fname, const char *s,
                         const char *why) {
  luaL_error(L, "bad argument #1 to '%s' (%s: '%s')", fname, why, s);
}

/* Parses the address at 1 (resolving a TCP host, with AI_PASSIVE when
** `passive`); got is the type of the argument as given, "no value" when
** it was not. The caller frees a->ai. */
static void parse_address (lua_State *L, const char *fname, int passive,
                           const char *got, Addr *a) {
  size_t n = 0;  /* clang cannot tell that luaL_error stops */
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n)
                                                 : NULL;
  memset(a, 0, sizeof *a);
  if (s == NULL)
    luaL_error(L, "bad argument #1 to '%s' (string expected, got %s)", fname,
               got);
  a->given = s;
  if (strlen(s) != n) {  /* each zero byte shown as %q shows it */
    luaL_Buffer b;
    size_t i;
    luaL_buffinit(L, &b);
    for (i = 0; i < n; i++) {
      if (s[i] != '\0')
        luaL_addchar(&b, s[i]);
      else if (i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9')
        luaL_addstring(&b, "\\000");
      else
        luaL_addstring(&b, "\\0");
    }
    luaL_pushresult(&b);
    bad_address(L, fname, lua_tostring(L, -1),
                "an address has no zero bytes");
  }
  if (strncmp(s, "unix:", 5) == 0) {
    if (n == 5 || n - 5 >= sizeof a->un.sun_path)
      bad_address(L, fname, s, "a Unix socket path of 1 to 107 bytes "
                               "expected");
    a->un.sun_family = AF_UNIX;
    memcpy(a->un.sun_path, s + 5, n - 5);
  }
  else if (strncmp(s, "tcp:", 4) == 0) {
    const char *host = s + 4, *colon = strrchr(host, ':'), *p;
    size_t hn;
    long port = 0;
    struct addrinfo hints;
    int rc, bracketed = 0;
    if (colon == NULL || colon[1] == '\0')
      bad_address(L, fname, s, "'tcp:host:port' expected");
    for (p = colon + 1; *p; p++) {  /* decimal, leading zeros allowed */
      if (*p < '0' || *p > '9')
        bad_address(L, fname, s, "the port must be a number");
      if (port <= 65535)
        port = port * 10 + (*p - '0');
    }
    if (port > 65535)
      bad_address(L, fname, s, "a port of 0 to 65535 expected");
    hn = (size_t)(colon - host);
    if (hn >= 2 && host[0] == '[' && host[hn - 1] == ']') {
      host++;
      hn -= 2;
      bracketed = 1;
    }
    if (hn == 0 || hn >= sizeof a->host)
      bad_address(L, fname, s, "a host of 1 to 255 bytes expected");
    memcpy(a->host, host, hn);
    /* a name or an IPv4 address, or an IPv6 address in brackets */
    if (strpbrk(a->host, "[]") != NULL
        || (strchr(a->host, ':') != NULL) != bracketed)
      bad_address(L, fname, s, "a host name, an IPv4 address or an IPv6 "
                               "address in brackets expected");
    snprintf(a->port, sizeof a->port, "%u", (unsigned)(unsigned short)port);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    rc = getaddrinfo(a->host, a->port, &hints, &a->ai);
    if (rc != 0)
      luaL_error(L, "%s: cannot resolve '%s' (%s)", fname, a->host,
                 gai_strerror(rc));
  }
  else
    bad_address(L, fname, s, "'unix:/path' or 'tcp:host:port' expected");
}

/* The socket for a; -1 (errno set) when it cannot be made. */
static int open_socket (const Addr *a) {
  int family = a->ai != NULL ? a->ai->ai_family : AF_UNIX;
  return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static const struct sockaddr *sockaddr_of (const Addr *a, socklen_t *len) {
  if (a->ai != NULL) {
    *len = a->ai->ai_addrlen;
    return a->ai->ai_addr;
  }
  *len = (socklen_t)sizeof a->un;
  return (const struct sockaddr *)&a->un;
}

/* Whether the Unix socket file of a is stale, left by a listener that
** ended without closing (its process killed, say): nobody accepts there.
** Then it is removed, and 1 returned. Anything at the path that is not a
** socket is left alone: connect refuses a regular file too. */
static int stale (const Addr *a) {
  struct stat st;
  int fd, r;
  if (lstat(a->un.sun_path, &st) != 0 || !S_ISSOCK(st.st_mode))
    return 0;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return 0;
  /* not blocking: a listener whose backlog is full (EAGAIN) is live */
  r = connect(fd, (const struct sockaddr *)&a->un, sizeof a->un) != 0
      && errno == ECONNREFUSED;
  close(fd);
  return r && unlink(a->un.sun_path) == 0;
}

/* Option `name` of the options table at 2: a number from lo to hi (an
** integer when `integer`), or dflt when absent. `what` describes it in
** the error. */
static double number_option (lua_State *L, const char *fname,
                             const char *name, double lo, double hi,
                             int integer, double dflt, const char *what) {
  lua_Number n;
  lua_getfield(L, 2, name);
  n = lua_tonumber(L, -1);
  if (lua_isnil(L, -1))
    n = (lua_Number)dflt;
  else if (lua_type(L, -1) != LUA_TNUMBER || !(n >= lo && n <= hi)
           || (integer && (n != floor(n) || n == HUGE_VAL)))
    luaL_error(L, "bad argument #2 to '%s' ('%s' must be %s)", fname, name,
               what);
  lua_pop(L, 1);
  return (double)n;
}

/* Reads the options table at 2 into *o, but for the token: its bytes are
** left in *tok (a string the table holds), so that nothing is allocated
** yet. Raises for an unknown option or a bad value. */
static void get_options (lua_State *L, const char *fname, mc_NetOptions *o,
                         const char **tok) {
  static const char *const names[] = {"token", "capacity", "heartbeat",
                                      "maxMessageSize", NULL};
  double capacity;
  memset(o, 0, sizeof *o);
  *tok = NULL;
  o->heartbeat = DEFAULT_HEARTBEAT;
  o->capacity = DEFAULT_CAPACITY;
  o->maxsize = DEFAULT_MAXSIZE;
  if (lua_isnoneornil(L, 2))
    return;
  if (strcmp(mc_ctx_typename(L, 2), "table") != 0)  /* as mc_ctx_checktable:
                                                   ** no MessageChannel */
    luaL_error(L, "bad argument #2 to '%s' (table expected, got %s)", fname,
               mc_ctx_typename(L, 2));
  lua_pushnil(L);
  while (lua_next(L, 2)) {  /* no unknown option: a typo is an error */
    int i;
    lua_pop(L, 1);
    for (i = 0; names[i] != NULL; i++)
      if (lua_type(L, -1) == LUA_TSTRING
          && strcmp(lua_tostring(L, -1), names[i]) == 0)
        break;
    if (names[i] == NULL)
      luaL_error(L, "bad argument #2 to '%s' (unknown option %s)", fname,
                 mc_ctx_keyname(L, -1));
  }
  /* any integer >= 1, as a local channel's (API.md 11): one no queue
  ** can reach is the same as none */
  capacity = number_option(L, fname, "capacity", 1, HUGE_VAL, 1,
                           DEFAULT_CAPACITY, "an integer >= 1");
  o->capacity = capacity >= (double)(SIZE_MAX / 2) ? SIZE_MAX / 2
                                                  : (size_t)capacity;
  o->heartbeat = number_option(L, fname, "heartbeat", 0.001, 86400, 0,
                               DEFAULT_HEARTBEAT, "a number of seconds from "
                               "0.001 to 86400");
  o->maxsize = (size_t)number_option(L, fname, "maxMessageSize", 1,
                                     4294963200.0, 1,
                                     (double)DEFAULT_MAXSIZE, "a positive "
                                     "integer, at most 4294963200");
  lua_getfield(L, 2, "token");
  if (!lua_isnil(L, -1)) {
    size_t n = 0;  /* for clang, as in parse_address */
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n)
                                                   : NULL;
    if (s == NULL || n > 4096)
      luaL_error(L, "bad argument #2 to '%s' ('token' must be a string of at "
                    "most 4096 bytes)", fname);
    *tok = n > 0 ? s : NULL;
    o->toklen = n;
  }
  lua_pop(L, 1);
}

/* From here on nothing raises until the socket is the network thread's or
** closed: the pair of a link or a listener, end 0 the port p's, end 1 the
** network thread's (o: a link's options; NULL: a listener's), and the
** token copied. Returns NULL when out of memory, having made nothing. */
static mc_Group *new_pair (lua_State *L, mc_Recv *p, int link,
                           mc_NetOptions *o, const char *tok) {
  mc_Group *g = mc_group_new(2);
  if (g == NULL)
    return NULL;
  if (tok != NULL && (o->token = (char *)malloc(o->toklen)) == NULL) {
    mc_group_decref(g);
    return NULL;
  }
  if (tok != NULL)
    memcpy(o->token, tok, o->toklen);
  if (link) {
    g->capacity = o->capacity;
    g->maxsize = o->maxsize;
    g->remote = 1;
  }
  mc_group_incref(g);  /* the network thread's, for end 1 */
  mc_recv_attach(L, p, g, 0);
  return g;
}

/* Closes the pair from end 1, the network thread's, with a reason. */
static void give_up (mc_Group *g, const char *reason) {
  mc_Msg *freed = NULL;
  mc_group_set_reason(g, reason);
  mc_group_release(g, 1, &freed);
  mc_msg_free(freed);
}

/* A connect refused at once, at every address: its pair closes with
** reason "refused" at the next poll of the state that connected, so that
** mc.connect still returns an entangled port and what is posted before
** the refusal is seen is queued, as when the refusal comes later from the
** network thread (API.md 12). */
typedef struct Refused {
  mc_CtxLink link;  /* first: the link is the Refused */
  mc_Group *g;
} Refused;

static void close_refused (mc_CtxLink *l) {
  Refused *r = (Refused *)l;
  give_up(r->g, "refused");
  free(r);
}

static void refuse_later (lua_State *L, mc_Group *g) {
  Refused *r = (Refused *)malloc(sizeof *r);
  if (r == NULL) {  /* out of memory: at once */
    give_up(g, "refused");
    return;
  }
  r->g = g;
  mc_ctx_later(L, &r->link, close_refused);
}

static void set_types (void) {
  mc_net_types(mc_port_type(), mc_buffer_type());
}

/* The addresses after ai, for the network thread to try in turn when
** the connect to ai is refused (none when out of memory). */
static void alternates (const struct addrinfo *ai, mc_NetOptions *o) {
  const struct addrinfo *p;
  size_t n = 0;
  for (p = ai->ai_next; p != NULL; p = p->ai_next)
    n += p->ai_addrlen <= sizeof(struct sockaddr_storage);
  if (n == 0 || (o->alts = (mc_NetAddr *)calloc(n, sizeof *o->alts)) == NULL)
    return;
  for (p = ai->ai_next; p != NULL; p = p->ai_next) {
    if (p->ai_addrlen <= sizeof(struct sockaddr_storage)) {
      o->alts[o->nalts].len = p->ai_addrlen;
      memcpy(&o->alts[o->nalts++].sa, p->ai_addr, p->ai_addrlen);
    }
  }
}

/* connect(address [, options]) -> port. A host name that resolves to
** several addresses is tried at each, in order, until one takes the
** connect: here while they refuse it at once, then by the network
** thread. */
static int remote_connect (lua_State *L) {
  Addr a;
  mc_NetOptions o;
  mc_Group *g;
  mc_Recv *p;
  socklen_t len;
  const struct sockaddr *sa;
  const char *tok;
  const struct addrinfo *ai;
  int fd, r, err = 0, tried = 0;
  const char *got = mc_ctx_typename(L, 1);  /* before it is made nil */
  lua_settop(L, 2);
  get_options(L, "connect", &o, &tok);
  p = mc_port_new(L);  /* ..., port */
  parse_address(L, "connect", 0, got, &a);  /* the last that raises */
  g = new_pair(L, p, 1, &o, tok);
  if (g == NULL)
    err = ENOMEM;
  else
    set_types();
  for (ai = a.ai; g != NULL; ai = ai->ai_next) {  /* ai NULL: Unix */
    fd = socket(ai != NULL ? ai->ai_family : AF_UNIX,
                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
      err = errno;  /* no such family here, say: the next address */
    else {
      if (ai != NULL) {
        sa = ai->ai_addr;
        len = ai->ai_addrlen;
      }
      else
        sa = sockaddr_of(&a, &len);
      do
        r = connect(fd, sa, len);
      while (r != 0 && errno == EINTR);
      tried = 1;
      if (r != 0 && errno == EAGAIN && ai == NULL
          && (o.alts = (mc_NetAddr *)calloc(1, sizeof *o.alts)) != NULL) {
        o.alts[0].len = len;  /* a Unix listener's full backlog: again */
        memcpy(&o.alts[0].sa, sa, len);
        o.nalts = 1;
        err = mc_net_link(fd, MC_NET_AGAIN, g, 1, &o) ? 0 : errno;
        break;
      }
      if (r == 0 || errno == EINPROGRESS) {
        if (ai != NULL)
          alternates(ai, &o);
        err = mc_net_link(fd, r != 0, g, 1, &o) ? 0 : errno;
        break;
      }
      close(fd);  /* nobody listens there */
    }
    if (ai == NULL || ai->ai_next == NULL) {
      if (tried) {  /* refused at every address */
        err = 0;
        free(o.token);
        o.token = NULL;
        refuse_later(L, g);
      }
      break;
    }
  }
  if (a.ai != NULL)
    freeaddrinfo(a.ai);
  free(o.alts);  /* NULL once the network thread took them */
  if (err != 0) {
    free(o.token);
    if (g != NULL)
      give_up(g, "refused");
    return luaL_error(L, "connect: %s", strerror(err));
  }
  return 1;
}

/* The address a listener bound, with the port chosen filled in. */
static void bound_address (const Addr *a, int fd, char *buf, size_t size) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int port = 0;
  if (a->ai == NULL) {
    snprintf(buf, size, "%s", a->given);
    return;
  }
  if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET)
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  snprintf(buf, size, strchr(a->host, ':') != NULL ? "tcp:[%s]:%d"
                                                   : "tcp:%s:%d",
           a->host, port);
}

/* listen(holder, address [, options]) -> port, address; holder[1] is
** the port as soon as it exists (a table with that slot already, so that
** setting it allocates nothing). */
static int remote_listen (lua_State *L) {
  Addr a;
  mc_NetOptions o;
  mc_Group *g;
  mc_Recv *p;
  socklen_t len;
  const struct sockaddr *sa;
  const char *tok, *path;
  char bound[sizeof a.un.sun_path + sizeof a.host + 16];
  int fd, one = 1, err = 0;
  const char *got = mc_ctx_typename(L, 2);  /* before it is made nil */
  lua_settop(L, 3);
  lua_pushvalue(L, 1);
  lua_remove(L, 1);  /* address, options, holder */
  get_options(L, "listen", &o, &tok);
  p = mc_port_new(L);  /* ..., port */
  if (lua_istable(L, 3)) {  /* the caller closes it if this raises later */
    lua_pushvalue(L, -1);
    lua_rawseti(L, 3, 1);
  }
  parse_address(L, "listen", 1, got, &a);  /* the last that raises */
  g = new_pair(L, p, 0, &o, tok);
  fd = g != NULL ? open_socket(&a) : -1;
  if (fd < 0)
    err = g == NULL ? ENOMEM : errno;
  else {
    sa = sockaddr_of(&a, &len);
    if (a.ai != NULL)
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa, len) != 0) {
      err = errno;
      if (err == EADDRINUSE && a.ai == NULL && stale(&a))
        err = bind(fd, sa, len) != 0 ? errno : 0;
    }
    if (err == 0 && listen(fd, 128) != 0)
      err = errno;
  }
  path = a.ai == NULL ? a.un.sun_path : NULL;
  if (err == 0) {
    bound_address(&a, fd, bound, sizeof bound);
    set_types();
    if (!mc_net_listen(fd, path, g, 1, &o)) {
      err = errno;
      fd = -1;  /* closed */
      if (path != NULL)
        unlink(path);
    }
  }
  if (a.ai != NULL)
    freeaddrinfo(a.ai);
  if (err != 0) {
    if (fd >= 0)
      close(fd);
    free(o.token);
    if (g != NULL)
      give_up(g, NULL);
    if (err == EADDRINUSE)
      return luaL_error(L, "listen: address in use: %s", a.given);
    return luaL_error(L, "listen: %s: %s", a.given, strerror(err));
  }
  lua_pushstring(L, bound);
  return 2;
}

/* net_sync(): waits until the network thread has seen what this state did
** (a listener closed: its address is free on return). */
static int remote_sync (lua_State *L) {
  (void)L;
  mc_net_sync();
  return 0;
}

/* net_accept(port): a listener hands the port of a link it accepted over
** to its program: from now on the link closes for its own reasons, not
** "refused" (net.c's accepted). */
static int remote_accept (lua_State *L) {
  mc_Recv *p = (mc_Recv *)mc_testudata(L, 1, mc_port_type()->tname);
  luaL_argcheck(L, p != NULL, 1, "MessagePort expected");
  if (p->group != NULL && p->group->remote)
    mc_group_set_reason(p->group, NULL);
  return 0;
}

/* net_refuse(port): a port a closed listener does not hand over: its link
** closes with the reason it has until then, "refused" (API.md 12: as when
** no one listens). The port is closed as its collection would close it,
** which allocates nothing: out of memory cannot leave the link open. */
static int remote_refuse (lua_State *L) {
  luaL_argcheck(L, mc_testudata(L, 1, mc_port_type()->tname) != NULL, 1,
                "MessagePort expected");
  mc_port_discard(L, 1);
  return 0;
}

/* net_watch(): for mc.step, without waiting: true, once a remote port
** was closed here, arrived here or was posted to with output left (see
** mc_Ctx's drains), while links have what net_drain waits for (mc.run's);
** the state's descriptor is readable when they are done. */
static int remote_watch (lua_State *L) {
  mc_Ctx *c = mc_ctx(L);
  int pending = c->drains != 0 && mc_net_watch(mc_ctx_hub(L), c->drains == 2,
                                               c->worker);
  c->drains = pending;
  lua_pushboolean(L, pending);
  return 1;
}

/* net_drain(seconds[, owed]): waits for remote ports to write what they
** had queued (a closed one: its close too) and for connects under way, a
** worker's own, the main state's all (a process that ends loses what is
** not written); returns how many links have not done so yet. With owed,
** only when the state closed, received or posted to a remote port with
** output left since the last drain that found none (mc_Ctx's drains):
** otherwise 0 at once, without the network thread's turn. */
static int remote_drain (lua_State *L) {
  double s = (double)luaL_optnumber(L, 1, -1);
  mc_Ctx *c = mc_ctx(L);
  size_t left;
  if (lua_toboolean(L, 2) && c->drains == 0) {
    lua_pushinteger(L, 0);
    return 1;
  }
  left = mc_net_drain(s, c->worker ? mc_ctx_hub(L) : NULL);
  if (left == 0) {  /* nothing for mc.step to wait for either */
    mc_ctx(L)->drains = 0;
    mc_net_unwatch(mc_ctx_hub(L));
  }
  lua_pushinteger(L, (lua_Integer)left);
  return 1;
}

/* wire_scan's buffer keeps SCAN_ROOM bytes beyond those fed, as the
** network thread's has room beyond what it read. Under ASan that room is
** poisoned while wire.c reads the buffer (and never during a Lua call),
** so that a read past the bytes that have arrived is reported. */
#define SCAN_ROOM 16
#if defined(__SANITIZE_ADDRESS__)
#define SCAN_ASAN
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SCAN_ASAN
#endif
#endif
#if defined(SCAN_ASAN)
#include <sanitizer/asan_interface.h>
#define scan_guard(room, on) ((on) ? __asan_poison_memory_region(room, \
                                       SCAN_ROOM) \
                                   : __asan_unpoison_memory_region(room, \
                                       SCAN_ROOM))
#else
#define scan_guard(room, on) ((void)(room), (void)(on))
#endif

/* Fills the record at the top for MSG frame f as a port reads a message
** (sched.c's read_head and take_head): value and buffers, or error (a
** DataCloneError); bad = true when mc_wire_msg refuses the frame. */
static void scan_msg (lua_State *L, const mc_Frame *f, size_t max,
                      unsigned char *room) {
  const char *err;
  int bad;
  mc_Msg *m;
  scan_guard(room, 1);
  m = mc_wire_msg(f, mc_buffer_type(), max, &bad);
  scan_guard(room, 0);
  if (m == NULL) {
    if (!bad)
      luaL_error(L, "not enough memory");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "bad");
    return;
  }
  if (mc_message_read(L, m) != 0) {  /* record, error, nil */
    err = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    mc_msg_free(m);
    lua_pop(L, 1);
    if (err == NULL || strstr(err, "DataCloneError:") == NULL)
      lua_error(L);  /* out of memory */
    lua_setfield(L, -2, "error");
    return;
  }
  if (mc_message_fill(L, m) != 0)  /* record, value, objs; m freed */
    lua_error(L);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  lua_setfield(L, -3, "buffers");
  lua_setfield(L, -2, "value");
}

/* wire_scan(bytes [, max [, split]]) -> records, consumed, invalid: for
** the fuzzer and the specs. Frames the bytes as the network thread does
** (net.c's frames), fed to a buffer split bytes at a time (default: all
** at once), with bodies of at most max bytes (default: maxMessageSize's)
** for mc_wire_next and mc_wire_msg alike. One record per whole frame, its
** type and size (bytes): {type = "H", heartbeat = ms, token = s},
** {type = "C", reason = code}, {type = "P"}, {type = "M", value = v,
** buffers = {Buffer...}} or {type = "M", error = "DataCloneError: ..."},
** with bad = true instead when mc_wire_hello or mc_wire_msg refuses it.
** consumed: the bytes of those frames; invalid: whether the bytes after
** them cannot be a frame. Raises only when out of memory. */
static int remote_wire_scan (lua_State *L) {
  size_t len, fed = 0, pos = 0, step, max;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Integer imax = luaL_optinteger(L, 2, (lua_Integer)DEFAULT_MAXSIZE);
  lua_Integer split = luaL_optinteger(L, 3, len > 0 ? (lua_Integer)len : 1);
  unsigned char *buf;
  int invalid = 0, n = 0;
  luaL_argcheck(L, imax >= 0, 2, "a size expected");
  luaL_argcheck(L, split >= 1, 3, "a positive size expected");
  max = (size_t)imax;
  step = (size_t)split;
  lua_settop(L, 3);
  buf = (unsigned char *)lua_newuserdata(L, len + SCAN_ROOM);
  lua_newtable(L);  /* 5: the records */
  while (fed < len && !invalid) {
    size_t piece = len - fed < step ? len - fed : step;
    memcpy(buf + fed, s + fed, piece);
    fed += piece;
    for (;;) {
      mc_Frame f;
      long k;
      char type;
      scan_guard(buf + fed, 1);
      k = mc_wire_next(buf + pos, fed - pos, max, &f);
      scan_guard(buf + fed, 0);
      if (k <= 0) {  /* more bytes needed, or not a frame */
        invalid = k < 0;
        break;
      }
      pos += (size_t)k;
      type = (char)f.type;
      lua_createtable(L, 0, 4);
      lua_pushlstring(L, &type, 1);
      lua_setfield(L, -2, "type");
      lua_pushinteger(L, (lua_Integer)k);
      lua_setfield(L, -2, "size");
      if (f.type == MC_WIRE_HELLO) {
        const char *tok;
        size_t toklen;
        uint32_t ms;
        int ok;
        scan_guard(buf + fed, 1);
        ok = mc_wire_hello(&f, &tok, &toklen, &ms);
        scan_guard(buf + fed, 0);
        if (ok) {
          lua_pushinteger(L, (lua_Integer)ms);
          lua_setfield(L, -2, "heartbeat");
          lua_pushlstring(L, tok, toklen);
          lua_setfield(L, -2, "token");
        }
        else {
          lua_pushboolean(L, 1);
          lua_setfield(L, -2, "bad");
        }
      }
      else if (f.type == MC_WIRE_CLOSE) {
        lua_pushinteger(L, (lua_Integer)f.p[0]);
        lua_setfield(L, -2, "reason");
      }
      else if (f.type == MC_WIRE_MSG)
        scan_msg(L, &f, max, buf + fed);
      lua_rawseti(L, 5, ++n);
    }
  }
  lua_pushinteger(L, (lua_Integer)pos);
  lua_pushboolean(L, invalid);
  return 3;
}

void mc_remote_open (lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"connect", remote_connect},
    {"listen", remote_listen},
    {"net_accept", remote_accept},
    {"net_drain", remote_drain},
    {"net_refuse", remote_refuse},
    {"net_watch", remote_watch},
    {"net_sync", remote_sync},
    {"wire_scan", remote_wire_scan},
    {NULL, NULL}
  };
  mc_ctx_setfuncs(L, funcs);
}
