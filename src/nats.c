/*
** nats.c: NATS core subjects for BroadcastChannel (API.md 12), through the
** C client libnats. Pure C, no Lua. libnats is loaded when the first
** channel joins a server (dlopen), so the module neither links to it nor
** needs its headers: a program that never asks for NATS never needs it.
**
** One connection per server URL in the process, with echo off (a process
** never hears its own posts back: its local channels had them already),
** and one subscription per URL and subject; both are counted, and go with
** their last channel. Each post also carries the process's origin in a
** NATS header, so that two URLs of one server (two connections) do not
** bring a post back either. What comes on a subject, and every problem, is
** handed to the hooks (broadcast.c), on libnats's threads.
**
** The lock guards the tables only: libnats connects, subscribes and
** unsubscribes without it (each may wait for a stalled server), so other
** servers' and subjects' posts and deliveries go on meanwhile. A
** subscription being made is listed as such, and a join of its subject
** waits for it; each subscription has a serial, its closure in libnats,
** and a message is delivered only while its serial is listed, so that a
** subscription being let go and its successor never deliver a message
** twice.
*/
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "mc.h"

/* libnats's API, as far as this file uses it (nats.h, libnats 3.x). */
typedef int natsStatus;
typedef struct natsConnection natsConnection;
typedef struct natsOptions natsOptions;
typedef struct natsSubscription natsSubscription;
typedef struct natsMsg natsMsg;
typedef void (*natsMsgHandler) (natsConnection *nc, natsSubscription *sub,
                                natsMsg *msg, void *closure);
typedef void (*natsConnectionHandler) (natsConnection *nc, void *closure);
typedef void (*natsErrHandler) (natsConnection *nc, natsSubscription *sub,
                                natsStatus err, void *closure);
#define NATS_OK 0
#define NATS_SLOW_CONSUMER 20
#define NATS_NO_SERVER_SUPPORT 30

#define ORIGIN "Mc-Origin"  /* the header that names the posting process */
#define WRITE_DEADLINE_MS 2000  /* a write to the server, at most */
#define RETRY_SECONDS 2  /* between two connects after libnats closed one */
#define RETIRE_FLUSH_MS 500  /* a round trip that retires a subscription */

typedef struct Lib {
  natsStatus (*options_create) (natsOptions **);
  natsStatus (*options_url) (natsOptions *, const char *);
  natsStatus (*options_noecho) (natsOptions *, _Bool);
  natsStatus (*options_disconnected) (natsOptions *, natsConnectionHandler,
                                      void *);
  natsStatus (*options_closed) (natsOptions *, natsConnectionHandler,
                                void *);
  natsStatus (*options_errors) (natsOptions *, natsErrHandler, void *);
  natsStatus (*options_max_reconnect) (natsOptions *, int);
  natsStatus (*options_secure) (natsOptions *, _Bool);
  natsStatus (*options_write_deadline) (natsOptions *, int64_t);
  void (*options_destroy) (natsOptions *);
  natsStatus (*connect) (natsConnection **, natsOptions *);
  natsStatus (*publish) (natsConnection *, const char *, const void *, int);
  natsStatus (*subscribe) (natsSubscription **, natsConnection *,
                           const char *, natsMsgHandler, void *);
  natsStatus (*unsubscribe) (natsSubscription *);
  natsStatus (*flush) (natsConnection *, int64_t);
  void (*sub_destroy) (natsSubscription *);
  const char *(*sub_subject) (natsSubscription *);
  void (*conn_destroy) (natsConnection *);
  const char *(*msg_data) (const natsMsg *);
  int (*msg_len) (const natsMsg *);
  void (*msg_destroy) (natsMsg *);
  const char *(*status_text) (natsStatus);
  natsStatus (*msg_create) (natsMsg **, const char *, const char *,
                            const char *, int);
  natsStatus (*header_set) (natsMsg *, const char *, const char *);
  natsStatus (*header_get) (natsMsg *, const char *, const char **);
  natsStatus (*publish_msg) (natsConnection *, natsMsg *);
  _Bool (*is_closed) (natsConnection *);
} Lib;

static Lib lib;

static const struct { const char *name; size_t offset; } symbols[] = {
#define SYM(f, n) {n, offsetof(Lib, f)}
  SYM(options_create, "natsOptions_Create"),
  SYM(options_url, "natsOptions_SetURL"),
  SYM(options_noecho, "natsOptions_SetNoEcho"),
  SYM(options_disconnected, "natsOptions_SetDisconnectedCB"),
  SYM(options_closed, "natsOptions_SetClosedCB"),
  SYM(options_errors, "natsOptions_SetErrorHandler"),
  SYM(options_max_reconnect, "natsOptions_SetMaxReconnect"),
  SYM(options_secure, "natsOptions_SetSecure"),
  SYM(options_write_deadline, "natsOptions_SetWriteDeadline"),
  SYM(options_destroy, "natsOptions_Destroy"),
  SYM(connect, "natsConnection_Connect"),
  SYM(publish, "natsConnection_Publish"),
  SYM(subscribe, "natsConnection_Subscribe"),
  SYM(unsubscribe, "natsSubscription_Unsubscribe"),
  SYM(flush, "natsConnection_FlushTimeout"),
  SYM(sub_destroy, "natsSubscription_Destroy"),
  SYM(sub_subject, "natsSubscription_GetSubject"),
  SYM(conn_destroy, "natsConnection_Destroy"),
  SYM(msg_data, "natsMsg_GetData"),
  SYM(msg_len, "natsMsg_GetDataLength"),
  SYM(msg_destroy, "natsMsg_Destroy"),
  SYM(status_text, "natsStatus_GetText"),
  SYM(msg_create, "natsMsg_Create"),
  SYM(header_set, "natsMsgHeader_Set"),
  SYM(header_get, "natsMsgHeader_Get"),
  SYM(publish_msg, "natsConnection_PublishMsg"),
  SYM(is_closed, "natsConnection_IsClosed"),
#undef SYM
};

typedef struct Sub {
  char *subject;
  natsSubscription *sub;  /* NULL while it subscribes, or while later */
  natsConnection *nc;     /* the connection sub was made on */
  int later;              /* joined while the connection was closed for
                          ** good: the retry subscribes it (retry) */
  uintptr_t serial;       /* its closure in libnats */
  int refs;
} Sub;

typedef struct Server {
  char *url;
  natsConnection *nc;     /* NULL while it connects */
  int connecting;         /* a thread connects it, without the lock */
  int retrying;           /* libnats closed nc: a thread connects anew */
  int again;              /* ... and closed the new one it connected */
  int posting;            /* posts and subscribes on nc under way,
                          ** without the lock */
  int refs;
  Sub **subs;
  size_t nsubs, capsubs;
  natsConnection **dead;  /* connections libnats closed, destroyed once
                          ** no post uses one */
  size_t ndead;
  natsSubscription **retired;  /* unsubscribed, destroyed with the
                               ** connections (see retire) */
  size_t nretired;
} Server;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* a connection or a subscription was made, or failed */
static pthread_cond_t connected = PTHREAD_COND_INITIALIZER;
static uintptr_t last_serial;
static int loaded;  /* 1 loaded, -1 could not be */
static char why_not[256];
static Server **servers;
static size_t nservers, capservers;
static char origin[32];  /* this process's, made at load */
static mc_NatsDeliver deliver_hook;
static mc_NatsProblem problem_hook;

void mc_nats_hooks (mc_NatsDeliver deliver, mc_NatsProblem problem) {
  pthread_mutex_lock(&lock);
  deliver_hook = deliver;
  problem_hook = problem;
  pthread_mutex_unlock(&lock);
}

/* Loads libnats once; under the lock. */
static int load (void) {
  static const char *const names[] = {"libnats.so.3.4", "libnats.so.3",
                                      "libnats.so", NULL};
  void *h = NULL;
  size_t i;
  if (loaded != 0)
    return loaded > 0;
  for (i = 0; names[i] != NULL && h == NULL; i++)
    h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    snprintf(why_not, sizeof why_not, "libnats is not installed (Debian: "
             "apt-get install libnats3.4): %s", dlerror());
    loaded = -1;
    return 0;
  }
  for (i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
    void *f = dlsym(h, symbols[i].name);
    if (f == NULL) {
      snprintf(why_not, sizeof why_not, "libnats has no %s",
               symbols[i].name);
      loaded = -1;
      return 0;
    }
    memcpy((char *)&lib + symbols[i].offset, &f, sizeof f);
  }
  mc_keep_loaded();  /* libnats's threads call back into this library */
  {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(origin, sizeof origin, "%lx.%lx.%lx", (unsigned long)getpid(),
             (unsigned long)ts.tv_sec, (unsigned long)ts.tv_nsec);
  }
  loaded = 1;
  return 1;
}

int mc_nats_subject (const char *s, size_t len) {
  size_t i, token = 0;
  if (len == 0 || len > MC_NATS_MAXSUBJECT)  /* past the server's line */
    return 0;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '.') {
      if (token == 0)
        return 0;  /* an empty token */
      token = 0;
    }
    else if (c <= ' ' || c == 0x7f || c == '*' || c == '>')
      return 0;  /* white space, controls and wildcards */
    else
      token++;
  }
  return token > 0;
}

/* A copy of the URL of the server whose connection is nc (whole: the
** hooks find the channels by it), for the caller to free; NULL when it is
** gone or memory ran out. */
static char *url_of (natsConnection *nc) {
  size_t i;
  char *url = NULL;
  pthread_mutex_lock(&lock);
  for (i = 0; i < nservers; i++)
    if (servers[i]->nc == nc) {
      url = strdup(servers[i]->url);
      break;
    }
  pthread_mutex_unlock(&lock);
  return url;
}

static void problem (natsConnection *nc, const char *subject,
                     const char *text) {
  char *url;
  mc_NatsProblem hook;
  pthread_mutex_lock(&lock);
  hook = problem_hook;
  pthread_mutex_unlock(&lock);
  if (hook != NULL && (url = url_of(nc)) != NULL) {
    hook(url, subject, text);
    free(url);
  }
}

/* A copy of the URL of the server whose connection is nc, as url_of, when
** the subscription of that serial is listed there; under the lock. */
static char *listed (natsConnection *nc, uintptr_t serial) {
  size_t i, j;
  for (i = 0; i < nservers; i++) {
    if (servers[i]->nc != nc)
      continue;
    for (j = 0; j < servers[i]->nsubs; j++)
      if (servers[i]->subs[j]->serial == serial)
        return strdup(servers[i]->url);
  }
  return NULL;
}

static void on_message (natsConnection *nc, natsSubscription *sub,
                        natsMsg *msg, void *closure) {
  mc_NatsDeliver hook;
  const char *subject = lib.sub_subject(sub), *from = NULL;
  char *url;
  int len = lib.msg_len(msg);
  pthread_mutex_lock(&lock);
  url = listed(nc, (uintptr_t)closure);
  hook = deliver_hook;
  pthread_mutex_unlock(&lock);
  if (lib.header_get(msg, ORIGIN, &from) == NATS_OK && from != NULL
      && strcmp(from, origin) == 0)
    hook = NULL;  /* this process's own post, on another connection */
  if (url != NULL && hook != NULL && len >= 0)
    hook(url, subject, lib.msg_data(msg), (size_t)len);
  free(url);
  lib.msg_destroy(msg);
}

static void on_disconnected (natsConnection *nc, void *closure) {
  (void)closure;
  problem(nc, NULL, "NATS: disconnected from the server; posts are "
                    "buffered until it reconnects");
}

static void *retry (void *arg);

/* libnats closed nc for good (it gives up on a server it reaches only
** when that server refuses it: an authentication refused twice in a row,
** say): a thread connects again every RETRY_SECONDS. Connections this
** file destroys are no longer listed, and are not taken again. */
static void on_closed (natsConnection *nc, void *closure) {
  size_t i;
  int again = 0;
  (void)closure;
  pthread_mutex_lock(&lock);
  for (i = 0; i < nservers; i++) {
    Server *s = servers[i];
    pthread_t th;
    pthread_attr_t attr;
    if (s->nc != nc || s->connecting)
      continue;
    if (s->retrying) {  /* the thread's new one: it goes on */
      s->again = again = 1;
      break;
    }
    if (pthread_attr_init(&attr) == 0) {
      pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      s->refs++;  /* the thread's */
      s->retrying = 1;
      if (pthread_create(&th, &attr, retry, s) == 0)
        again = 1;
      else {
        s->retrying = 0;
        s->refs--;
      }
      pthread_attr_destroy(&attr);
    }
    break;
  }
  pthread_mutex_unlock(&lock);
  problem(nc, NULL, again
          ? "NATS: the connection is closed (the server refused it); a new "
            "one is tried every 2 s, and posts are lost until then"
          : "NATS: the connection is closed; posts are lost");
}

static void on_error (natsConnection *nc, natsSubscription *sub,
                      natsStatus err, void *closure) {
  char text[256];
  (void)closure;
  if (err == NATS_SLOW_CONSUMER)
    snprintf(text, sizeof text, "NATS: messages dropped (slow consumer)");
  else
    snprintf(text, sizeof text, "NATS: %s", lib.status_text(err));
  problem(nc, sub != NULL ? lib.sub_subject(sub) : NULL, text);
}

/* url as an error text shows it, in buf (n bytes): the secret of a
** user:password@ or token@ written as "***". libnats takes the string as
** one URL whose user part ends at its last '@' (a password may hold ',',
** '/' or '@'). */
static const char *shown (const char *url, char *buf, size_t n) {
  const char *host = strstr(url, "://"), *at = strrchr(url, '@'), *keep;
  host = host != NULL ? host + 3 : url;
  if (at == NULL || at < host)
    return url;
  keep = memchr(host, ':', (size_t)(at - host));
  keep = keep != NULL ? keep + 1 : host;  /* the user name stays */
  snprintf(buf, n, "%.*s***%s", (int)(keep - url), url, at);
  return buf;
}

static void on_closed (natsConnection *nc, void *closure);

/* Whether one of the servers of url (a list separated by commas) is
** given as tls://. */
static int wants_tls (const char *url) {
  const char *p = url;
  for (;;) {
    while (*p == ' ')
      p++;
    if (strncasecmp(p, "tls://", 6) == 0)
      return 1;
    if ((p = strchr(p, ',')) == NULL)
      return 0;
    p++;
  }
}

/* The options of a connection to url, in *o. A tls:// URL requires TLS:
** libnats would otherwise talk plain text to a server that offers none,
** password and messages included. */
static natsStatus make_options (const char *url, natsOptions **o) {
  natsStatus st = lib.options_create(o);
  if (st == NATS_OK) st = lib.options_url(*o, url);
  if (st == NATS_OK && wants_tls(url)) st = lib.options_secure(*o, 1);
  if (st == NATS_OK) st = lib.options_noecho(*o, 1);
  if (st == NATS_OK) st = lib.options_disconnected(*o, on_disconnected, NULL);
  if (st == NATS_OK) st = lib.options_closed(*o, on_closed, NULL);
  if (st == NATS_OK) st = lib.options_errors(*o, on_error, NULL);
  if (st == NATS_OK)  /* never gives up on a server it cannot reach */
    st = lib.options_max_reconnect(*o, -1);
  if (st == NATS_OK)  /* a server that stops reading fails a post, which
                      ** is an error event, instead of blocking it (and
                      ** every post on the connection) until it reads */
    st = lib.options_write_deadline(*o, WRITE_DEADLINE_MS);
  return st;
}

/* The server of url, connected (under the lock); NULL with err set. */
static Server *server (const char *url, char *err, size_t n) {
  Server *s;
  natsOptions *o = NULL;
  natsStatus st;
  size_t i;
  for (i = 0; i < nservers; i++) {
    if (strcmp(servers[i]->url, url) != 0)
      continue;
    if (!servers[i]->connecting)
      return servers[i];
    pthread_cond_wait(&connected, &lock);  /* another thread connects */
    i = (size_t)-1;  /* the list may have changed: look again */
  }
  if (nservers == capservers) {
    size_t cap = capservers ? capservers * 2 : 4;
    Server **a = (Server **)realloc(servers, cap * sizeof *a);
    if (a == NULL) {
      snprintf(err, n, "not enough memory");
      return NULL;
    }
    servers = a;
    capservers = cap;
  }
  s = (Server *)calloc(1, sizeof *s);
  if (s == NULL || (s->url = strdup(url)) == NULL) {
    free(s);
    snprintf(err, n, "not enough memory");
    return NULL;
  }
  st = make_options(url, &o);
  if (st == NATS_OK) {  /* listed, connecting: without the lock, so that
                       ** other servers' posts and deliveries go on */
    natsConnection *nc = NULL;
    s->connecting = 1;
    servers[nservers++] = s;
    pthread_mutex_unlock(&lock);
    st = lib.connect(&nc, o);
    pthread_mutex_lock(&lock);
    s->nc = nc;
    s->connecting = 0;
    if (st != NATS_OK) {
      for (i = 0; servers[i] != s; i++)
        ;
      servers[i] = servers[--nservers];
    }
    pthread_cond_broadcast(&connected);
  }
  if (o != NULL)
    lib.options_destroy(o);
  if (st != NATS_OK) {
    char buf[512];
    snprintf(err, n, "cannot connect to NATS at %s: %s",
             shown(url, buf, sizeof buf),
             lib.status_text(st));
    free(s->url);
    free(s);
    return NULL;
  }
  return s;
}

/* Lets server s go when nothing uses it; under the lock, which it gives
** up while libnats waits for its threads. */
static void server_unref (Server *s) {
  size_t i;
  if (--s->refs > 0)
    return;
  for (i = 0; servers[i] != s; i++)
    ;
  servers[i] = servers[--nservers];
  pthread_mutex_unlock(&lock);
  lib.conn_destroy(s->nc);
  for (i = 0; i < s->ndead; i++)
    lib.conn_destroy(s->dead[i]);
  for (i = 0; i < s->nretired; i++)
    lib.sub_destroy(s->retired[i]);
  pthread_mutex_lock(&lock);
  free(s->retired);
  free(s->dead);
  free(s->subs);
  free(s->url);
  free(s);
}

/* Ends subscription ns (NULL: none), made on nc, a connection of s that
** stays meanwhile; without the lock. libnats before 3.6 (nats.c issue
** 637) lets its read loop lock a subscription it found for a message
** after another thread destroyed it: a message that came as ns was let
** go crashed the process. So ns is destroyed only once a round trip on
** nc shows that the read loop is past every message before the
** unsubscription; when that fails (a stalled or lost server), it is kept
** until s's connections are destroyed (server_unref). */
static void retire (Server *s, natsSubscription *ns, natsConnection *nc) {
  natsSubscription **a;
  if (ns == NULL)
    return;
  lib.unsubscribe(ns);
  if (lib.flush(nc, RETIRE_FLUSH_MS) == NATS_OK) {
    lib.sub_destroy(ns);
    return;
  }
  pthread_mutex_lock(&lock);
  a = (natsSubscription **)realloc(s->retired,
                                   (s->nretired + 1) * sizeof *a);
  if (a != NULL) {
    s->retired = a;
    s->retired[s->nretired++] = ns;
  }
  pthread_mutex_unlock(&lock);
  if (a == NULL)  /* out of memory: destroyed now, at the race's risk */
    lib.sub_destroy(ns);
}

/* Destroys the closed connections s keeps, unless a post uses one. */
static void let_dead_go (Server *s) {
  natsConnection **dead = NULL;
  size_t i, n = 0;
  pthread_mutex_lock(&lock);
  if (s->posting == 0) {
    dead = s->dead;
    n = s->ndead;
    s->dead = NULL;
    s->ndead = 0;
  }
  pthread_mutex_unlock(&lock);
  for (i = 0; i < n; i++)
    lib.conn_destroy(dead[i]);
  free(dead);
}

/* The subscriptions listed at s, subscribed again on nc, which s uses from
** now on (its old connection kept until no post uses it: let_dead_go).
** Each keeps its serial; one let go meanwhile is let go here too. 0 when
** out of memory (nc destroyed). */
static int subscribe_again (Server *s, natsConnection *nc) {
  size_t i, n = 0;
  char **subjects;
  uintptr_t *serials;
  natsConnection **dead;
  pthread_mutex_lock(&lock);
  dead = (natsConnection **)realloc(s->dead, (s->ndead + 1) * sizeof *dead);
  subjects = (char **)calloc(s->nsubs + 1, sizeof *subjects);
  serials = (uintptr_t *)calloc(s->nsubs + 1, sizeof *serials);
  if (dead != NULL)
    s->dead = dead;
  if (dead == NULL || subjects == NULL || serials == NULL) {
    pthread_mutex_unlock(&lock);
    free(subjects);
    free(serials);
    lib.conn_destroy(nc);  /* out of memory: the next try */
    return 0;
  }
  s->dead[s->ndead++] = s->nc;  /* destroyed once no post uses it */
  s->nc = nc;  /* new subscriptions go there from now on */
  for (i = 0; i < s->nsubs; i++)
    if ((s->subs[i]->sub != NULL || s->subs[i]->later)
        && (subjects[n] = strdup(s->subs[i]->subject)) != NULL)
      serials[n++] = s->subs[i]->serial;
  pthread_mutex_unlock(&lock);
  for (i = 0; i < n; i++) {
    natsSubscription *ns = NULL, *old = NULL;
    size_t j;
    int listed = 0;
    natsStatus st = lib.subscribe(&ns, nc, subjects[i], on_message,
                                  (void *)serials[i]);
    if (st != NATS_OK) {  /* its channels hear nothing: they are told */
      char text[256];
      snprintf(text, sizeof text, "NATS: cannot subscribe again after the "
               "connection was closed: %s", lib.status_text(st));
      problem(nc, subjects[i], text);
      ns = NULL;
    }
    pthread_mutex_lock(&lock);
    for (j = 0; j < s->nsubs && !listed; j++)
      if (s->subs[j]->serial == serials[i]) {
        listed = 1;
        if (ns != NULL) {
          old = s->subs[j]->sub;
          s->subs[j]->sub = ns;
          s->subs[j]->nc = nc;
          s->subs[j]->later = 0;
        }
      }
    pthread_mutex_unlock(&lock);
    if (!listed)
      retire(s, ns, nc);
    if (old != NULL)
      lib.sub_destroy(old);
    free(subjects[i]);
  }
  free(subjects);
  free(serials);
  let_dead_go(s);
  return 1;
}

static void *retry (void *arg) {
  Server *s = (Server *)arg;
  for (;;) {
    struct timespec ts;
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    natsStatus st;
    ts.tv_sec = RETRY_SECONDS;
    ts.tv_nsec = 0;
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&lock);
    if (s->refs == 1)  /* only this thread's: every channel left */
      break;
    pthread_mutex_unlock(&lock);
    st = make_options(s->url, &o);
    if (st == NATS_OK)
      st = lib.connect(&nc, o);
    if (o != NULL)
      lib.options_destroy(o);
    if (st == NATS_OK && subscribe_again(s, nc)) {
      pthread_mutex_lock(&lock);
      if (!s->again && !lib.is_closed(nc))
        break;
      s->again = 0;  /* closed again meanwhile: once more */
      pthread_mutex_unlock(&lock);
    }
  }
  s->retrying = s->again = 0;
  server_unref(s);
  pthread_mutex_unlock(&lock);
  return NULL;
}

/* The subscription of s to subject, or NULL; under the lock, waiting
** while another thread subscribes to it. */
static Sub *find_sub (Server *s, const char *subject) {
  size_t i;
  for (i = 0; i < s->nsubs; i++) {
    if (strcmp(s->subs[i]->subject, subject) != 0)
      continue;
    if (s->subs[i]->sub != NULL || s->subs[i]->later)
      return s->subs[i];
    pthread_cond_wait(&connected, &lock);
    i = (size_t)-1;  /* the list may have changed: look again */
  }
  return NULL;
}

/* Subscribes s to subject, listed as being made meanwhile; under the
** lock, which it gives up while libnats subscribes. On a connection
** libnats closed for good, it is listed for the retry to subscribe
** (later). NULL with err set. */
static Sub *subscribe (Server *s, const char *subject, char *err, size_t n) {
  Sub *t;
  natsConnection *nc;
  natsSubscription *ns = NULL;
  natsStatus st;
  size_t i;
  if (s->nsubs == s->capsubs) {
    size_t cap = s->capsubs ? s->capsubs * 2 : 4;
    Sub **a = (Sub **)realloc(s->subs, cap * sizeof *a);
    if (a == NULL) {
      snprintf(err, n, "not enough memory");
      return NULL;
    }
    s->subs = a;
    s->capsubs = cap;
  }
  t = (Sub *)calloc(1, sizeof *t);
  if (t == NULL || (t->subject = strdup(subject)) == NULL) {
    free(t);
    snprintf(err, n, "not enough memory");
    return NULL;
  }
  t->serial = ++last_serial;
  s->subs[s->nsubs++] = t;
  for (;;) {
    nc = s->nc;
    s->posting++;  /* nc stays while it subscribes (see let_dead_go) */
    pthread_mutex_unlock(&lock);
    st = lib.subscribe(&ns, nc, subject, on_message, (void *)t->serial);
    pthread_mutex_lock(&lock);
    if (s->nc == nc) {
      s->posting--;
      break;
    }
    /* a retry put a new connection in its place meanwhile, whose
    ** subscriptions it made without this one: here too */
    if (st == NATS_OK) {
      pthread_mutex_unlock(&lock);
      retire(s, ns, nc);
      ns = NULL;
      pthread_mutex_lock(&lock);
    }
    s->posting--;
  }
  pthread_cond_broadcast(&connected);
  if (st == NATS_OK) {
    t->sub = ns;
    t->nc = nc;
    return t;
  }
  if (lib.is_closed(nc)) {  /* for the retry on_closed starts (its
                            ** error event says when it could not) */
    t->later = 1;
    return t;
  }
  for (i = 0; s->subs[i] != t; i++)
    ;
  s->subs[i] = s->subs[--s->nsubs];
  snprintf(err, n, "cannot subscribe to %s: %s", subject,
           lib.status_text(st));
  free(t->subject);
  free(t);
  return NULL;
}

int mc_nats_join (const char *url, const char *subject, char *err,
                  size_t n) {
  Server *s;
  Sub *sub;
  pthread_mutex_lock(&lock);
  if (!load()) {
    snprintf(err, n, "%s", why_not);
    pthread_mutex_unlock(&lock);
    return 1;
  }
  s = server(url, err, n);
  if (s == NULL) {
    pthread_mutex_unlock(&lock);
    return 1;
  }
  s->refs++;  /* held while the lock is given up */
  sub = find_sub(s, subject);
  if (sub == NULL)
    sub = subscribe(s, subject, err, n);
  if (sub != NULL)
    sub->refs++;
  else
    server_unref(s);
  pthread_mutex_unlock(&lock);
  if (sub != NULL)  /* the channel holds s: what subscribe() kept goes */
    let_dead_go(s);
  return sub == NULL;
}

void mc_nats_leave (const char *url, const char *subject) {
  size_t i, j;
  pthread_mutex_lock(&lock);
  for (i = 0; i < nservers; i++) {
    Server *s = servers[i];
    if (strcmp(s->url, url) != 0)
      continue;
    for (j = 0; j < s->nsubs; j++) {
      Sub *t = s->subs[j];
      if ((t->sub != NULL || t->later) && strcmp(t->subject, subject) == 0
          && --t->refs == 0) {
        s->subs[j] = s->subs[--s->nsubs];  /* its messages are dropped */
        s->posting++;  /* t->nc stays while it retires (see let_dead_go) */
        pthread_mutex_unlock(&lock);
        retire(s, t->sub, t->nc);
        free(t->subject);
        free(t);
        pthread_mutex_lock(&lock);
        s->posting--;
        break;
      }
    }
    server_unref(s);
    break;
  }
  pthread_mutex_unlock(&lock);
}

/* Publishes with this process's origin in a header; plainly to a server
** without headers. */
static natsStatus publish (natsConnection *nc, const char *subject,
                           const void *p, int len) {
  natsMsg *m = NULL;
  natsStatus st = lib.msg_create(&m, subject, NULL, (const char *)p, len);
  if (st == NATS_OK)
    st = lib.header_set(m, ORIGIN, origin);
  if (st == NATS_OK)
    st = lib.publish_msg(nc, m);
  if (m != NULL)
    lib.msg_destroy(m);
  if (st == NATS_NO_SERVER_SUPPORT)
    st = lib.publish(nc, subject, p, len);
  return st;
}

int mc_nats_publish (const char *url, const char *subject, const void *p,
                     size_t len, char *err, size_t n) {
  size_t i;
  natsConnection *nc = NULL;
  Server *s = NULL;
  natsStatus st;
  int dead;
  pthread_mutex_lock(&lock);
  for (i = 0; i < nservers && s == NULL; i++)
    if (strcmp(servers[i]->url, url) == 0)
      s = servers[i];
  if (s != NULL)
    nc = s->nc;
  if (nc != NULL && len <= 0x7fffffff)
    s->posting++;  /* nc stays while it posts (see let_dead_go) */
  pthread_mutex_unlock(&lock);  /* the channel holds the server */
  if (nc == NULL) {
    char buf[512];
    snprintf(err, n, "NATS: not connected to %s", shown(url, buf, sizeof buf));
    return 1;
  }
  if (len > 0x7fffffff) {
    snprintf(err, n, "NATS: a message of %zu bytes is too large", len);
    return 1;
  }
  st = publish(nc, subject, p, (int)len);
  pthread_mutex_lock(&lock);
  s->posting--;
  dead = s->ndead > 0;
  pthread_mutex_unlock(&lock);
  if (dead)
    let_dead_go(s);
  if (st == NATS_OK)
    return 0;
  snprintf(err, n, "NATS: the post was lost: %s", lib.status_text(st));
  return 1;
}
