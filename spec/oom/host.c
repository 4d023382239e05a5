/*
** host.c: allocation-failure injection for messagechannel.core (make oom).
**
** The module's sources are compiled into this program with
** -DMC_FAULT_INJECTION and the sanitizers. Every Lua state gets a
** counting allocator: the program's own through lua_newstate, a worker's
** through mc_fault_alloc, which src/worker.c calls in such a build. When
** a state is armed with k, its k-th allocation fails, and with it every
** later one ("for good", the default) or none ("once"; Lua then runs an
** emergency collection and tries again, so that mode mostly tests a full
** collection at each allocation).
**
** Counts are per state: each state has its own Counter, touched by the
** one thread that runs the state, so the k-th allocation of a state does
** not depend on what other threads do. The fields are atomic all the
** same, since the parent reads a worker's count once it has ended.
**
** A scenario file (a .lua file in spec/oom) returns an array of cases,
** each a table {name, setup, action, check [, state = "worker"]
** [, raises]} (raises: what the action may raise besides "not enough
** memory", a plain substring). One point runs in a process of its own:
**   setup()                   ctx, nothing fails
**   action(ctx)               under injection, in a protected call
**   check(ctx, ok, result)    nothing fails; raises when the state is
**                             not coherent (oomcheck.lua)
** then the state is closed and LeakSanitizer looks for leaks at exit. For
** a case with state = "worker", the program's state never fails: the
** states of the workers the case starts (in its action or its check) are
** armed, for their whole life. A worker's state has no panic function
** in this build: an unprotected error there aborts, and shows as a crash
** with its stack.
**
** The driver (no -k) first runs each case once with nothing failing to
** count the N allocations of its action (of its worker's state), then
** each point k = 1, 1 + stride, ... <= N in a forked process with a
** watchdog, at most `jobs` at a time, and sorts what each point did:
** clean (completed, or raised a string that says "not enough memory",
** and the check passed, with no sanitizer report), or the first finding
** among: a sanitizer report, a signal, a hang, an inconsistency, an
** unexpected error, a leak. It prints a line per case and the totals, and
** writes every finding to OUTDIR/report.txt and the logs of a few points
** of each finding to OUTDIR/fail/.
**
** Usage, from the top of the source tree:
**   host [-j jobs] [-s stride] [-c cases] [-m forgood|once] [-t seconds]
**        [-o outdir] FILE...
**   host -k K -c CASE FILE    one point, in the foreground (-k 0: a count),
**                             with the stack of its first refused allocation
**                             (of every one with OOM_TRACE=all)
** A worker's state makes the same allocations in every case until it
** comes to the case's own code: the dry run of a worker case records a
** hash of the sizes of its state's allocations so far after each one
** (its trail), and of the allocations a case has in common with a case
** run before it (the longest start of their trails that agree), only
** one point in OOM_SHARED runs; every point from where they part. The
** first worker case runs one point in OOM_FIRST of the start it shares
** with a later one (the state's making and the module's loading, the
** same allocations each time), every point after it. Each later case
** starts its sampling at its own offset in the shared start, so that
** together they run points the first case did not. OOM_OWN samples a
** worker case's own allocations too (from where it parts): one point in
** OOM_OWN, each case from its own offset, so that the allocations the
** cases make alike there (the worker's start and end, past the part
** that differs) are most likely run by one case or another.
** The environment gives the defaults: OOM_JOBS (2), OOM_STRIDE (1),
** OOM_SHARED (32; 1 runs every point), OOM_FIRST (4; 1 runs every
** point), OOM_OWN (1: every point), OOM_SCENARIO (every case; or
** names "file.case" or "file", separated by commas), OOM_MODE (forgood),
** OOM_TIMEOUT (the watchdog, 60 seconds).
** Workers find messagechannel.core through OUTDIR/messagechannel/core.so,
** a shim that calls oom_open_core here (spec/oom/shim.c).
*/
#define _DEFAULT_SOURCE  /* madvise */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sanitizer/common_interface_defs.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "mc.h"

int luaopen_messagechannel_core (lua_State *L);
int oom_open_core (lua_State *L);
const char *__asan_default_options (void);
const char *__lsan_default_options (void);
const char *__ubsan_default_options (void);

/* Stacks for every report, abort() included (a Lua panic aborts). */
const char *__asan_default_options (void) {
  return "detect_leaks=1:handle_abort=1:print_summary=1";
}

const char *__lsan_default_options (void) {
  return "exitcode=23";
}

const char *__ubsan_default_options (void) {
  return "print_stacktrace=1";
}


/*
** {======================================================
** The counting allocator
** =======================================================
*/

typedef struct Counter {
  unsigned long count;    /* allocations seen while counting */
  unsigned long fail_at;  /* the first to fail; 0: none */
  unsigned long failed;   /* allocations refused */
  int counting;
  int armed;              /* a worker's state started by the case */
  unsigned long *trail;   /* in a count: after each allocation, a hash of
                          ** the sizes of all so far (trail[n - 1]) */
  unsigned long ntrail, trailcap;
} Counter;

#define MAXWORKERS 64

static struct {
  int once;                   /* fail the k-th only */
  int trace;                  /* print the stack of the k-th */
  Counter main;               /* the program's state */
  Counter workers[MAXWORKERS + 1];  /* workers' states; the last one for
                                    ** any beyond MAXWORKERS */
  unsigned nworkers;          /* atomic */
  int arm_workers;            /* atomic: new workers' states are armed */
  unsigned long worker_k;     /* with this k (0: counted only) */
  int record;                 /* atomic: new workers' states keep a trail */
} inj;

/* Appends to c's trail the hash of its allocations so far, this one
** last: whether each was a new block, its osize (for a new block, the
** kind of object) and its nsize, in order. Two states whose trails agree
** up to n made the same requests up to their n-th allocation. */
static void add_trail (Counter *c, int fresh, size_t osize, size_t nsize) {
  unsigned long h = c->ntrail > 0 ? c->trail[c->ntrail - 1]
                                  : 14695981039346656037ul;
  if (c->ntrail == c->trailcap) {
    unsigned long cap = c->trailcap ? 2 * c->trailcap : 4096;
    unsigned long *t = (unsigned long *)realloc(c->trail, cap * sizeof *t);
    if (t == NULL)
      return;  /* the trail ends here: shorter, never wrong */
    c->trail = t;
    c->trailcap = cap;
  }
  h = (h ^ (unsigned long)fresh) * 1099511628211ul;
  h = (h ^ (unsigned long)osize) * 1099511628211ul;
  h = (h ^ (unsigned long)nsize) * 1099511628211ul;
  c->trail[c->ntrail++] = h;
}

/* Only an allocation that may fail is counted: a new block or a larger
** one. Lua assumes that shrinking a block never fails. */
static void *oom_alloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  Counter *c = (Counter *)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if ((ptr == NULL || nsize > osize)
      && __atomic_load_n(&c->counting, __ATOMIC_ACQUIRE)) {
    unsigned long n = __atomic_add_fetch(&c->count, 1, __ATOMIC_RELAXED);
    unsigned long k = __atomic_load_n(&c->fail_at, __ATOMIC_RELAXED);
    if (c->armed && c->ntrail == n - 1  /* never the shared last counter */
        && __atomic_load_n(&inj.record, __ATOMIC_RELAXED))
      add_trail(c, ptr == NULL, osize, nsize);
    if (k != 0 && (n == k || (!inj.once && n > k))) {
      if ((n == k && inj.trace) || inj.trace > 1) {
        fprintf(stderr, "oom: allocation %lu of %lu bytes refused at\n", n,
                (unsigned long)nsize);
        __sanitizer_print_stack_trace();
      }
      __atomic_add_fetch(&c->failed, 1, __ATOMIC_RELAXED);
      return NULL;
    }
  }
  return realloc(ptr, nsize);
}

/* src/worker.c makes each worker's state with the allocator given here:
** counted from its first allocation, and armed when the case started
** it. */
mc_Alloc mc_fault_alloc (void **ud) {
  unsigned i = __atomic_fetch_add(&inj.nworkers, 1, __ATOMIC_RELAXED);
  Counter *c = &inj.workers[i < MAXWORKERS ? i : MAXWORKERS];
  if (i < MAXWORKERS
      && __atomic_load_n(&inj.arm_workers, __ATOMIC_ACQUIRE)) {
    c->armed = 1;
    __atomic_store_n(&c->fail_at,
                     __atomic_load_n(&inj.worker_k, __ATOMIC_RELAXED),
                     __ATOMIC_RELAXED);
  }
  __atomic_store_n(&c->counting, 1, __ATOMIC_RELEASE);
  *ud = c;
  return oom_alloc;
}

/* The largest count of an armed worker's state, and the sum of what they
** refused; the counter with that count in *top (NULL when none). */
static void worker_counts (unsigned long *count, unsigned long *failed,
                           unsigned *n, Counter **top) {
  unsigned i, total = __atomic_load_n(&inj.nworkers, __ATOMIC_RELAXED);
  *count = *failed = 0;
  *n = 0;
  *top = NULL;
  for (i = 0; i < total && i < MAXWORKERS; i++) {
    Counter *c = &inj.workers[i];
    unsigned long k = __atomic_load_n(&c->count, __ATOMIC_RELAXED);
    if (!c->armed)
      continue;
    (*n)++;
    if (*top == NULL || k > *count)
      *count = k, *top = c;
    *failed += __atomic_load_n(&c->failed, __ATOMIC_RELAXED);
  }
}

/* }====================================================== */


/*
** {======================================================
** One point, in its own process
** =======================================================
*/

/* The result lines the driver reads all start so. */
#define TAG "oom: "

static const char *shim_dir = "build/oom";

static void say (const char *fmt, ...) {
  va_list ap;
  fputs(TAG, stdout);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);
}

/* A string on one line, at most 400 bytes, for the result lines. */
static void say_text (const char *what, const char *s, size_t len) {
  char line[401];
  size_t i, n = 0;
  for (i = 0; i < len && n < sizeof line - 1; i++)
    line[n++] = (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
  line[n] = '\0';
  say("%s %s", what, line);
}

/* The error at the top of L's stack, as a result line. */
static void say_error (lua_State *L, const char *what) {
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (s == NULL)
    s = "(not a string)", len = strlen(s);
  say_text(what, s, len);
}

static int panic (lua_State *L) {
  const char *s = lua_tostring(L, -1);
  fprintf(stderr, TAG "PANIC: unprotected error: %s\n",
          s != NULL ? s : "(not a string)");
  fflush(stderr);
  return 0;  /* Lua aborts */
}

/* Warnings (an error in a finalizer) go to the log. */
static void warn (void *ud, const char *msg, int tocont) {
  static int cont;
  (void)ud;
  if (!cont && *msg == '@')
    return;
  fprintf(stderr, "%s%s%s", cont ? "" : TAG "warning: ", msg,
          tocont ? "" : "\n");
  cont = tocont;
}

/* A worker's state warns as the program's own does, so that a finalizer
** Lua could not call there (LOSTGC) is told apart from a leak too. */
void mc_fault_state (lua_State *L) {
  lua_setwarnf(L, warn, NULL);
}

int oom_open_core (lua_State *L) {
  return luaopen_messagechannel_core(L);
}

/* Under lua_pcall: libraries, package paths, messagechannel.core
** preloaded; then loads FILE (1) and pushes its case named NAME (2), or
** with no name, the array of its cases. */
static int prepare (lua_State *L) {
  const char *file = luaL_checkstring(L, 1);
  const char *name = luaL_optstring(L, 2, NULL);
  lua_Integer i, n;
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushliteral(L, "lua/?.lua;lua/?/init.lua;spec/oom/lib/?.lua");
  lua_setfield(L, -2, "path");
  lua_pushfstring(L, "%s/?.so", shim_dir);
  lua_setfield(L, -2, "cpath");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_messagechannel_core);
  lua_setfield(L, -2, "messagechannel.core");
  lua_pop(L, 2);
  if (luaL_loadfile(L, file) != LUA_OK)
    return lua_error(L);
  lua_call(L, 0, 1);
  luaL_checktype(L, -1, LUA_TTABLE);
  if (name == NULL)
    return 1;
  n = luaL_len(L, -1);
  for (i = 1; i <= n; i++) {
    lua_geti(L, -1, i);
    lua_getfield(L, -1, "name");
    if (lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), name) == 0) {
      lua_pop(L, 1);
      return 1;
    }
    lua_pop(L, 2);
  }
  return luaL_error(L, "%s has no case named '%s'", file, name);
}

/* A message handler that adds a traceback. */
static int traceback (lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL)
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static lua_State *new_state (void) {
  lua_State *L = lua_newstate(oom_alloc, &inj.main);
  if (L == NULL) {
    say("setup failed: cannot make a Lua state");
    exit(4);
  }
  lua_atpanic(L, panic);
  lua_setwarnf(L, warn, NULL);
  return L;
}

/* The case's name without its file's: "post.buffer" -> "buffer". */
static const char *short_name (const char *name) {
  const char *dot = strchr(name, '.');
  return dot != NULL ? dot + 1 : name;
}

/* Prints the cases of a file: "case NAME main|worker". */
static int list_cases (const char *file, const char *base) {
  lua_State *L = new_state();
  lua_Integer i, n;
  int ok = 1;
  lua_pushcfunction(L, traceback);
  lua_pushcfunction(L, prepare);
  lua_pushstring(L, file);
  if (lua_pcall(L, 1, 1, 1) != LUA_OK) {
    say_error(L, "setup failed:");
    lua_close(L);
    return 4;
  }
  n = luaL_len(L, -1);
  for (i = 1; i <= n; i++) {
    lua_geti(L, -1, i);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "state");
    if (!lua_isstring(L, -2) || strchr(lua_tostring(L, -2), '.') != NULL
        || strchr(lua_tostring(L, -2), ',') != NULL) {
      say("setup failed: case %d of %s has no name, or one with '.' or ','",
          (int)i, file);
      ok = 0;
    }
    else
      say("case %s.%s %s", base, lua_tostring(L, -2),
          lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "worker") == 0
          ? "worker" : "main");
    lua_pop(L, 3);
  }
  lua_close(L);
  return ok ? 0 : 4;
}

/* The file where the count of case NAME leaves its worker's trail. */
static void trail_path (char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/tmp/%s.trail", shim_dir, name);
}

static void save_trail (const char *name, const Counter *c) {
  char path[600];
  FILE *f;
  trail_path(path, sizeof path, name);
  if ((f = fopen(path, "wb")) == NULL)
    return;
  if (fwrite(c->trail, sizeof c->trail[0], c->ntrail, f) != c->ntrail)
    c = NULL;
  if (fclose(f) != 0 || c == NULL)
    remove(path);  /* none, rather than a short one */
}

/* Runs point k of case NAME of FILE (k = 0: nothing fails) and says what
** happened. Returns the exit status: 0 when clean, 3 when the check
** failed, 4 when the case could not even be set up. */
static int run_point (const char *file, const char *name, unsigned long k,
                      int worker) {
  lua_State *L = new_state();
  int status, ok, clean = 1;
  unsigned long count, failed;
  unsigned nw = 0;
  Counter *top = NULL;
  lua_pushcfunction(L, traceback);  /* 1 */
  say("phase setup");
  lua_pushcfunction(L, prepare);
  lua_pushstring(L, file);
  lua_pushstring(L, short_name(name));
  if (lua_pcall(L, 2, 1, 1) != LUA_OK) {  /* case at 2 */
    say_error(L, "setup failed:");
    lua_close(L);
    return 4;
  }
  lua_getfield(L, 2, "setup");
  if (lua_pcall(L, 0, 1, 1) != LUA_OK) {  /* ctx at 3 */
    say_error(L, "setup failed:");
    lua_close(L);
    return 4;
  }
  lua_getfield(L, 2, "action");
  lua_pushvalue(L, 3);
  lua_checkstack(L, 10);
  say("phase action");
  /* The window: from here to the end of the protected call. */
  if (worker) {
    __atomic_store_n(&inj.worker_k, k, __ATOMIC_RELAXED);
    __atomic_store_n(&inj.record, k == 0, __ATOMIC_RELAXED);
    __atomic_store_n(&inj.arm_workers, 1, __ATOMIC_RELEASE);
  }
  else {
    inj.main.count = inj.main.failed = 0;
    inj.main.fail_at = k;
    __atomic_store_n(&inj.main.counting, 1, __ATOMIC_RELEASE);
  }
  status = lua_pcall(L, 1, 1, 0);  /* ctx at 3, result at 4 */
  /* A worker's state is made by its own thread, maybe after the action
  ** returned: workers' states are armed until the check ends. */
  __atomic_store_n(&inj.main.counting, 0, __ATOMIC_RELEASE);
  inj.main.fail_at = 0;
  ok = status == LUA_OK;
  if (ok)
    say("outcome completed");
  else if (lua_type(L, 4) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, 4, &len);
    const char *raises;
    lua_getfield(L, 2, "raises");
    raises = lua_tostring(L, -1);
    if (strstr(s, "not enough memory") != NULL
        || (raises != NULL && strstr(s, raises) != NULL))
      say_text("outcome raised", s, len);
    else {
      say_text("outcome unexpected", s, len);
      clean = 0;
    }
    lua_pop(L, 1);
  }
  else {
    say("outcome raised-nonstring %s", luaL_typename(L, 4));
    clean = 0;
  }
  say("phase check");
  lua_getfield(L, 2, "check");
  lua_pushvalue(L, 3);
  lua_pushboolean(L, ok);
  lua_pushvalue(L, 4);
  if (lua_pcall(L, 3, 0, 1) != LUA_OK) {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    say_text("inconsistent", s, len);
    lua_pop(L, 1);
    clean = -1;
  }
  __atomic_store_n(&inj.arm_workers, 0, __ATOMIC_RELEASE);
  lua_settop(L, 0);
  say("phase close");
  lua_close(L);
  if (worker) {
    worker_counts(&count, &failed, &nw, &top);
    if (k == 0 && nw == 1 && clean > 0)  /* one state, ended: its trail */
      save_trail(name, top);
  }
  else
    count = inj.main.count, failed = inj.main.failed;
  say("count %lu", count);
  say("failed %lu", failed);
  if (worker)
    say("workers %u", nw);
  if (clean > 0)
    say("clean");
  return clean > 0 ? 0 : 3;
}

/* }====================================================== */


/*
** {======================================================
** The driver
** =======================================================
*/

typedef struct Options {
  int jobs;
  unsigned long stride;
  unsigned long shared;  /* OOM_SHARED: every n-th point of a shared start */
  unsigned long first;   /* OOM_FIRST: of the first worker case's */
  unsigned long own;     /* OOM_OWN: every n-th point of a worker case's
                         ** own allocations (after what it shares) */
  const char *only;  /* OOM_SCENARIO */
  unsigned timeout;
  const char *outdir;
} Options;

/* What a point did: a category, most severe first, and its detail. */
/* LOSTGC is not a failure: Lua could not call a finalizer (the allocation
** its call needs was refused, and Lua drops a finalizer whose call fails,
** with the warning "error in __gc"), so what it would free leaks. The
** module's finalizers are C functions written to allocate nothing in Lua
** (their kicks use reserved run-queue slots); one that raised would give
** the same warning, so these points stay in the report, with the stack of
** the refused allocation, for a look. */
enum { CLEAN, ASAN, UBSAN, SIGNAL, HANG, INCONSISTENT, ODDERROR, LEAK,
       NOTSETUP, LOSTGC, NCAT };
static const char *const catname[NCAT] = {
  "clean", "sanitizer", "ubsan", "crash", "hang", "inconsistent",
  "unexpected error", "leak", "not set up",
  "leak of a finalizer Lua could not call"
};

/* Where the first refused allocation of a point was made. */
typedef struct Site {
  char *where;
  unsigned long n, k;  /* how many points, the first one */
} Site;

typedef struct Finding {
  char *key;       /* category: detail, for grouping */
  int cat;
  unsigned long n;
  unsigned long ks[12];  /* the first points */
  unsigned long nk;
  int logs;        /* logs kept */
  Site *sites;
  size_t nsites;
} Finding;

typedef struct Case {
  char *file;
  char *name;      /* file.case */
  int worker;
  unsigned long count;  /* of the dry run */
  unsigned long points, clean, raised, completed, unreached;
  unsigned long cats[NCAT];
  Finding *findings;
  size_t nfindings;
  int broken;      /* the dry run was not clean */
  char *why;
  unsigned long *trail;  /* of its worker's state, from the dry run */
  unsigned long ntrail;
  unsigned long shared;  /* its first `shared` allocations are those of */
  const char *like;      /* this case's worker's state, run before it */
  unsigned long every;   /* of those, one point in `every` runs */
} Case;

static char *dup_str (const char *s) {
  size_t n = strlen(s);
  char *d = (char *)malloc(n + 1);
  if (d == NULL) {
    perror("oom");
    exit(2);
  }
  memcpy(d, s, n + 1);
  return d;
}

static void *grow (void *p, size_t n, size_t size) {
  void *q = realloc(p, n * size);
  if (q == NULL) {
    perror("oom");
    exit(2);
  }
  return q;
}

/* The whole of a log, at most 1 MiB; "" when it cannot be read. */
static char *read_log (const char *path) {
  FILE *f = fopen(path, "rb");
  size_t n = 0, cap = 1 << 16;
  char *s = (char *)grow(NULL, cap + 1, 1);
  if (f != NULL) {
    size_t r;
    while ((r = fread(s + n, 1, cap - n, f)) > 0) {
      n += r;
      if (n == cap) {
        if (cap >= (1u << 20))
          break;
        cap *= 2;
        s = (char *)grow(s, cap + 1, 1);
      }
    }
    fclose(f);
  }
  s[n] = '\0';
  return s;
}

/* The text after "oom: WHAT " on the log's last such line, copied into
** buf; NULL when there is none. */
static const char *log_value (const char *log, const char *what, char *buf,
                              size_t size) {
  const char *p = log, *found = NULL;
  size_t wl = strlen(what);
  while ((p = strstr(p, TAG)) != NULL) {
    if ((p == log || p[-1] == '\n') && strncmp(p + 5, what, wl) == 0
        && (p[5 + wl] == ' ' || p[5 + wl] == '\n' || p[5 + wl] == '\0'))
      found = p + 5 + wl + (p[5 + wl] == ' ');
    p += 5;
  }
  if (found == NULL)
    return NULL;
  p = strchr(found, '\n');
  wl = p != NULL ? (size_t)(p - found) : strlen(found);
  if (wl >= size)
    wl = size - 1;
  memcpy(buf, found, wl);
  buf[wl] = '\0';
  return buf;
}

/* Copies the line of log at p into buf, shortened. */
static void copy_line (char *buf, size_t size, const char *p) {
  size_t n = strcspn(p, "\n");
  if (n >= size)
    n = size - 1;
  memcpy(buf, p, n);
  buf[n] = '\0';
}

/* Rewrites s in place without what differs between runs of one fault:
** addresses, sizes and thread ids. */
static void normalize (char *s) {
  char *w = s;
  const char *r = s;
  while (*r) {
    if (r[0] == '0' && r[1] == 'x' && isxdigit((unsigned char)r[2])) {
      r += 2;
      while (isxdigit((unsigned char)*r))
        r++;
      memcpy(w, "0x?", 3);
      w += 3;
    }
    else if (strncmp(r, " T", 2) == 0 && isdigit((unsigned char)r[2])) {
      r += 2;
      while (isdigit((unsigned char)*r))
        r++;
      memcpy(w, " T?", 3);
      w += 3;
    }
    else
      *w++ = *r++;
  }
  *w = '\0';
}

/* The frames of the sanitizer stack that starts after p, joined with
** " < ": the first `want` frames in the module's sources ("fn
** src/file.c:line"); when there are none, the first Lua functions ("fn")
** under the allocator. */
static void stack_of (const char *p, char *out, size_t size, int want) {
  char lua[300];
  size_t n = 0, ln = 0;
  int got = 0, nlua = 0, frames = 0;
  out[0] = lua[0] = '\0';
  while (p != NULL && *p != '\0' && got < want) {
    char line[400], frame[400];
    const char *next = strchr(p, '\n'), *in, *loc, *at;
    size_t fl;
    copy_line(line, sizeof line, p);
    p = next != NULL ? next + 1 : NULL;
    in = line + strspn(line, " ");
    if (in[0] != '#') {
      if (frames > 0)
        break;  /* the end of the stack */
      continue;
    }
    frames++;
    if ((in = strstr(in, " in ")) == NULL)
      continue;
    in += 4;
    fl = strcspn(in, " ");
    loc = in + fl + (in[fl] == ' ');
    if (strstr(loc, "libsanitizer") != NULL || strstr(loc, "spec/oom/") != NULL
        || strncmp(in, "luaM_", 5) == 0)
      continue;
    if (strncmp(loc, "src/", 4) == 0)
      at = loc;
    else if ((at = strstr(loc, "/src/")) != NULL)
      at++;
    if (at == NULL) {  /* Lua's own, or the C library's */
      if (nlua < want && strncmp(in, "lua", 3) == 0
          && ln + fl + 4 < sizeof lua) {
        if (nlua++ > 0) {
          memcpy(lua + ln, " < ", 3);
          ln += 3;
        }
        memcpy(lua + ln, in, fl);
        ln += fl;
        lua[ln] = '\0';
      }
      continue;
    }
    snprintf(frame, sizeof frame, "%.*s %s", (int)fl, in, at);
    {
      char *c1 = strchr(frame + fl + 1, ':');  /* file:line:column */
      char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
      if (c2 != NULL)
        *c2 = '\0';
    }
    if (n + strlen(frame) + 4 >= size)
      break;
    if (got++ > 0) {
      memcpy(out + n, " < ", 3);
      n += 3;
    }
    memcpy(out + n, frame, strlen(frame) + 1);
    n += strlen(frame);
  }
  if (got == 0)
    snprintf(out, size, "%s%s", nlua > 0 ? "(in Lua) " : "(no frame)", lua);
}

/* Sorts a finished point: fills key (category: detail) and returns the
** category. */
static int classify (const char *log, int wstatus, int killed, char *key,
                     size_t size, int *raised, int *reached) {
  char v[600], frames[500];
  const char *p;
  *raised = log_value(log, "outcome raised", v, sizeof v) != NULL;
  *reached = log_value(log, "failed", v, sizeof v) == NULL
             || strcmp(v, "0") != 0;
  if ((p = strstr(log, "ERROR: AddressSanitizer: ")) != NULL) {
    char what[120];
    copy_line(what, sizeof what, p + 25);
    what[strcspn(what, " ")] = '\0';
    stack_of(strchr(p, '\n'), frames, sizeof frames, 3);
    snprintf(key, size, "AddressSanitizer %s: %s", what, frames);
    return ASAN;
  }
  if ((p = strstr(log, "runtime error: ")) != NULL) {
    const char *bol = p;
    while (bol > log && bol[-1] != '\n')
      bol--;
    copy_line(v, sizeof v, bol);
    snprintf(key, size, "%s", v);
    return UBSAN;
  }
  if (killed || (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGALRM)) {
    const char *ph = log_value(log, "phase", v, sizeof v);
    snprintf(key, size, "the watchdog ended it in phase %s",
             ph != NULL ? ph : "(none)");
    return HANG;
  }
  if (WIFSIGNALED(wstatus)) {
    const char *ph = log_value(log, "phase", v, sizeof v);
    char ps[200];
    snprintf(ps, sizeof ps, "%s", ph != NULL ? ph : "(none)");
    if ((p = strstr(log, TAG "PANIC: ")) != NULL) {
      copy_line(v, sizeof v, p + 5);
      snprintf(key, size, "signal %d in phase %s: %s", WTERMSIG(wstatus), ps,
               v);
    }
    else
      snprintf(key, size, "signal %d in phase %s", WTERMSIG(wstatus), ps);
    return SIGNAL;
  }
  if (log_value(log, "setup failed:", v, sizeof v) != NULL) {
    snprintf(key, size, "setup failed: %s", v);
    return NOTSETUP;
  }
  if (log_value(log, "inconsistent", v, sizeof v) != NULL) {
    char *tb = strstr(v, " stack traceback:");
    if (tb != NULL)
      *tb = '\0';
    snprintf(key, size, "%s", v);
    if (strstr(key, "did not return: a hang") != NULL)
      return HANG;
    return INCONSISTENT;
  }
  if (log_value(log, "outcome raised-nonstring", v, sizeof v) != NULL) {
    snprintf(key, size, "the action raised a %s value", v);
    return ODDERROR;
  }
  if (log_value(log, "outcome unexpected", v, sizeof v) != NULL) {
    snprintf(key, size, "the action raised: %s", v);
    return ODDERROR;
  }
  if ((p = strstr(log, "ERROR: LeakSanitizer: ")) != NULL) {
    const char *q = strstr(p, "leak of ");
    stack_of(q != NULL ? strchr(q, '\n') : NULL, frames, sizeof frames, 2);
    if (strstr(log, TAG "warning: error in __gc (not enough memory)")
        != NULL) {
      snprintf(key, size, "Lua could not call a finalizer (error in __gc: "
               "not enough memory); first leak from %s", frames);
      return LOSTGC;
    }
    snprintf(key, size, "LeakSanitizer: first leak from %s", frames);
    return LEAK;
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0
      || strstr(log, TAG "clean") == NULL) {
    const char *ph = log_value(log, "phase", v, sizeof v);
    snprintf(key, size, "exit status %d in phase %s",
             WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1,
             ph != NULL ? ph : "(none)");
    return SIGNAL;
  }
  key[0] = '\0';
  return CLEAN;
}

/* A child: runs `what` with its output in log, under a watchdog. */
typedef struct Job {
  pid_t pid;
  Case *c;
  unsigned long k;
  int dry;
  time_t start;
  int killed;
  char log[512];
} Job;

static void start_job (Job *j, const Options *o, const char *file,
                       const char *name, unsigned long k, int worker,
                       int slot, int list) {
  pid_t pid;
  if (slot < 0)
    snprintf(j->log, sizeof j->log, "%s/tmp/rerun.log", o->outdir);
  else
    snprintf(j->log, sizeof j->log, "%s/tmp/%d.log", o->outdir, slot);
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (pid < 0) {
    perror("oom: fork");
    exit(2);
  }
  if (pid == 0) {
    int fd = open(j->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
      _exit(5);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    alarm(o->timeout);
    if (list)
      exit(list_cases(file, name));
    exit(run_point(file, name, k, worker));
  }
  j->pid = pid;
  j->k = k;
  j->start = time(NULL);
  j->killed = 0;
}

/* Waits for one of the n jobs to end; returns its index and status. */
static int reap (Job *jobs, int n, const Options *o, int *wstatus) {
  for (;;) {
    int i;
    for (i = 0; i < n; i++) {
      pid_t r;
      if (jobs[i].pid <= 0)
        continue;
      r = waitpid(jobs[i].pid, wstatus, WNOHANG);
      if (r == jobs[i].pid) {
        jobs[i].pid = 0;
        return i;
      }
      if (r < 0) {
        perror("oom: waitpid");
        exit(2);
      }
      if (!jobs[i].killed
          && time(NULL) - jobs[i].start > (time_t)o->timeout + 15) {
        kill(jobs[i].pid, SIGKILL);  /* the watchdog did not fire */
        jobs[i].killed = 1;
      }
    }
    {
      struct timespec ts = {0, 2000000};
      nanosleep(&ts, NULL);
    }
  }
}

/* Runs one child to its end, in slot 0. */
static char *run_one (const Options *o, const char *file, const char *name,
                      unsigned long k, int worker, int list, int slot,
                      int *wstatus, int *killed) {
  Job j;
  memset(&j, 0, sizeof j);
  start_job(&j, o, file, name, k, worker, slot, list);
  reap(&j, 1, o, wstatus);
  *killed = j.killed;
  return read_log(j.log);
}

/* The first frames in src/ of the stack of the refused allocation that
** a traced run printed; "" when it printed none. */
static void refused_site (const char *log, char *out, size_t size) {
  const char *p = strstr(log, TAG "allocation ");
  out[0] = '\0';
  if (p != NULL)
    stack_of(strchr(p, '\n'), out, size, 4);
}

static void add_site (Finding *f, const char *where, unsigned long k) {
  size_t i;
  for (i = 0; i < f->nsites; i++)
    if (strcmp(f->sites[i].where, where) == 0) {
      f->sites[i].n++;
      return;
    }
  f->sites = (Site *)grow(f->sites, f->nsites + 1, sizeof(Site));
  f->sites[f->nsites].where = dup_str(where);
  f->sites[f->nsites].n = 1;
  f->sites[f->nsites].k = k;
  f->nsites++;
}

/* An unclean point is run again, with the stack of its refused
** allocation printed: where that was goes with the finding, and the
** first logs of each finding are kept. */
static void add_finding (Case *c, int cat, const char *key, unsigned long k,
                         const Options *o, const char *first) {
  size_t i;
  Finding *f = NULL;
  char where[600], *log;
  int wstatus, killed;
  for (i = 0; i < c->nfindings; i++)
    if (strcmp(c->findings[i].key, key) == 0) {
      f = &c->findings[i];
      break;
    }
  if (f == NULL) {
    c->findings = (Finding *)grow(c->findings, c->nfindings + 1,
                                  sizeof(Finding));
    f = &c->findings[c->nfindings++];
    memset(f, 0, sizeof *f);
    f->key = dup_str(key);
    f->cat = cat;
  }
  f->n++;
  if (f->nk < sizeof f->ks / sizeof f->ks[0])
    f->ks[f->nk++] = k;
  inj.trace = 1;
  log = run_one(o, c->file, c->name, k, c->worker, 0, -1, &wstatus, &killed);
  inj.trace = 0;
  refused_site(log, where, sizeof where);
  add_site(f, where[0] ? where : "(not reached in the traced run)", k);
  if (f->logs < 3) {
    char dest[600];
    FILE *out;
    snprintf(dest, sizeof dest, "%s/fail/%s.%lu.log", o->outdir, c->name, k);
    if ((out = fopen(dest, "w")) != NULL) {
      fprintf(out, "%s\n%s\n--- run again with the stack of the refused "
              "allocation:\n%s", key, first, log);
      fclose(out);
      f->logs++;
    }
  }
  free(log);
}

static void note_point (Case *c, const Options *o, Job *j, int wstatus) {
  char key[1200];
  int raised, reached;
  char *log = read_log(j->log);
  int cat = classify(log, wstatus, j->killed, key, sizeof key, &raised,
                     &reached);
  normalize(key);
  c->points++;
  c->cats[cat]++;
  if (cat == CLEAN || cat == LOSTGC) {
    c->clean++;
    if (!reached)
      c->unreached++;
    else if (raised)
      c->raised++;
    else
      c->completed++;
  }
  if (cat != CLEAN)
    add_finding(c, cat, key, j->k, o, log);
  free(log);
}

/* Whether case c (file.case) is asked for: OOM_SCENARIO lists names of
** cases or of files, separated by commas. */
static int wanted (const char *only, const char *name) {
  size_t nl = strlen(name), fl = strcspn(name, ".");
  const char *p = only;
  if (only == NULL || *only == '\0')
    return 1;
  while (*p) {
    size_t l = strcspn(p, ", ");
    if ((l == nl && strncmp(p, name, l) == 0)
        || (l == fl && strncmp(p, name, l) == 0))
      return 1;
    p += l;
    while (*p == ',' || *p == ' ')
      p++;
  }
  return 0;
}

/* The cases of each file, listed by a child. */
static Case *list_all (const Options *o, char **files, int nfiles,
                       size_t *ncases) {
  Case *cases = NULL;
  int i;
  *ncases = 0;
  for (i = 0; i < nfiles; i++) {
    char base[256], *log;
    const char *slash = strrchr(files[i], '/'), *p;
    int wstatus, killed;
    snprintf(base, sizeof base, "%s", slash != NULL ? slash + 1 : files[i]);
    if (strlen(base) > 4 && strcmp(base + strlen(base) - 4, ".lua") == 0)
      base[strlen(base) - 4] = '\0';
    log = run_one(o, files[i], base, 0, 0, 1, 0, &wstatus, &killed);
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
      fprintf(stderr, "oom: %s: cannot list its cases:\n%s", files[i], log);
      exit(2);
    }
    for (p = log; (p = strstr(p, TAG "case ")) != NULL; p++) {
      char name[300], state[20];
      if (sscanf(p + 10, "%299s %19s", name, state) != 2
          || !wanted(o->only, name))
        continue;
      cases = (Case *)grow(cases, *ncases + 1, sizeof(Case));
      memset(&cases[*ncases], 0, sizeof(Case));
      cases[*ncases].file = dup_str(files[i]);
      cases[*ncases].name = dup_str(name);
      cases[*ncases].worker = strcmp(state, "worker") == 0;
      (*ncases)++;
    }
    free(log);
  }
  return cases;
}

/* "100%" only when all are clean. */
static void percent (char *buf, size_t size, unsigned long part,
                     unsigned long whole) {
  if (whole == 0 || part == whole)
    snprintf(buf, size, "100%%");
  else {
    unsigned long tenths = (unsigned long)((double)part * 1000.0
                                           / (double)whole);
    snprintf(buf, size, "%lu.%lu%%", tenths / 10, tenths % 10);
  }
}

/* The dry run of case c: its count, and whether it is clean at all. */
static void count_case (Case *c, const Options *o) {
  int wstatus, killed, raised, reached;
  char key[1200], v[100];
  char *log = run_one(o, c->file, c->name, 0, c->worker, 0, 0, &wstatus,
                      &killed);
  int cat = classify(log, wstatus, killed, key, sizeof key, &raised,
                     &reached);
  if (cat != CLEAN || log_value(log, "count", v, sizeof v) == NULL) {
    char dest[600];
    FILE *out;
    normalize(key);
    c->broken = 1;
    c->why = dup_str(key[0] ? key : "no count");
    snprintf(dest, sizeof dest, "%s/fail/%s.dry.log", o->outdir, c->name);
    if ((out = fopen(dest, "w")) != NULL) {
      fputs(log, out);
      fclose(out);
    }
  }
  else
    c->count = strtoul(v, NULL, 10);
  free(log);
}

/* The trail the dry run of c left, if any. */
static void load_trail (Case *c) {
  char path[600];
  FILE *f;
  long size;
  trail_path(path, sizeof path, c->name);
  if ((f = fopen(path, "rb")) == NULL)
    return;
  if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0
      && fseek(f, 0, SEEK_SET) == 0) {
    c->ntrail = (unsigned long)size / sizeof c->trail[0];
    c->trail = (unsigned long *)grow(NULL, c->ntrail, sizeof c->trail[0]);
    if (fread(c->trail, sizeof c->trail[0], c->ntrail, f) != c->ntrail)
      c->ntrail = 0;
  }
  fclose(f);
  remove(path);
}

/* How many of the first `limit` allocations of c's worker's state are
** those of d's (their trails agree). */
static unsigned long common_start (const Case *c, const Case *d,
                                   unsigned long limit) {
  unsigned long n = c->ntrail < d->ntrail ? c->ntrail : d->ntrail, m = 0;
  if (n > limit)
    n = limit;
  while (m < n && c->trail[m] == d->trail[m])
    m++;
  return m;
}

/* A worker's state runs the same code in every case until it comes to
** the case's own (the worker's source, the messages it is sent): the
** longest start of c's trail that an earlier case's trail has too. */
static void find_shared (Case *c, const Case *cases, size_t i) {
  size_t j;
  for (j = 0; j < i; j++) {
    const Case *d = &cases[j];
    unsigned long m;
    if (!d->worker || d->broken || d->points == 0)
      continue;
    if ((m = common_start(c, d, d->count)) > c->shared)
      c->shared = m, c->like = d->name;
  }
}

/* For the first worker case (cases[i]), run before any other: the
** longest start of its trail that a later worker case's has too. */
static void find_shared_later (Case *c, const Case *cases, size_t i,
                               size_t ncases) {
  size_t j;
  for (j = i + 1; j < ncases; j++) {
    const Case *d = &cases[j];
    unsigned long m;
    if (!d->worker || d->broken || d->count == 0)
      continue;
    if ((m = common_start(c, d, c->count)) > c->shared)
      c->shared = m, c->like = "a later worker case";
  }
}

static int cmp_finding (const void *a, const void *b) {
  const Finding *x = (const Finding *)a, *y = (const Finding *)b;
  if (x->cat != y->cat)
    return x->cat - y->cat;
  return x->n < y->n ? 1 : x->n > y->n ? -1 : 0;
}

static void report_case (FILE *f, const Case *c) {
  size_t i;
  for (i = 0; i < c->nfindings; i++) {
    const Finding *x = &c->findings[i];
    unsigned long j;
    fprintf(f, "  %5lu x %s: %s\n        k =", x->n, catname[x->cat], x->key);
    for (j = 0; j < x->nk; j++)
      fprintf(f, " %lu", x->ks[j]);
    fprintf(f, "%s\n", x->n > x->nk ? " ..." : "");
    fprintf(f, "        again: build/oom/host -k %lu -c %s %s\n", x->ks[0],
            c->name, c->file);
    for (j = 0; j < x->nsites; j++)
      fprintf(f, "        %lu x refused at %s (k = %lu)\n", x->sites[j].n,
              x->sites[j].where, x->sites[j].k);
  }
}

/* LeakSanitizer scans the writable memory of every loaded object for
** pointers, the sanitizer runtimes' own zero-filled data too (about 12
** MiB here), and each page it reads there for the first time costs every
** point's process a page fault. Populated once here, that memory comes
** mapped into each forked point. Only a mapping right after a sanitizer
** runtime's file, with no file of its own, is populated; nothing changes
** when the kernel cannot (MADV_POPULATE_WRITE is Linux 5.14). */
static void populate_runtimes (void) {
#ifdef MADV_POPULATE_WRITE
  FILE *f = fopen("/proc/self/maps", "r");
  char line[1024];
  int after_runtime = 0;
  unsigned long end = 0;  /* of the mapping before */
  if (f == NULL)
    return;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi, before = end;
    char perms[8];
    int path = 0;
    if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &path) < 3)
      continue;
    end = hi;
    if (path > 0 && line[path] != '\n' && line[path] != '\0') {
      after_runtime = strstr(line + path, "/libasan.") != NULL
                      || strstr(line + path, "/libubsan.") != NULL;
      continue;
    }
    if (after_runtime && lo == before && strcmp(perms, "rw-p") == 0
        && hi - lo <= (64ul << 20))
      madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
    after_runtime = 0;
  }
  fclose(f);
#endif
}

static int drive (const Options *o, char **files, int nfiles) {
  size_t ncases, i;
  unsigned long nlater = 0;  /* worker cases sampled after the first */
  unsigned long nworker = 0;  /* worker cases: their own offsets */
  Case *cases;
  Job *jobs = (Job *)grow(NULL, (size_t)o->jobs, sizeof(Job));
  unsigned long tot[2][2] = {{0, 0}, {0, 0}};  /* [worker][clean?] */
  int broken = 0;
  char path[600], pc[20];
  FILE *rep;
  snprintf(path, sizeof path, "%s/tmp", o->outdir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/fail", o->outdir);
  mkdir(path, 0755);
  populate_runtimes();
  cases = list_all(o, files, nfiles, &ncases);
  if (ncases == 0) {
    fprintf(stderr, "oom: no case%s%s\n", o->only ? " matches " : "",
            o->only ? o->only : "");
    free(jobs);
    free(cases);
    return 2;
  }
  memset(jobs, 0, (size_t)o->jobs * sizeof(Job));
  for (i = 0; i < ncases; i++) {  /* the dry runs first: every trail */
    Case *c = &cases[i];
    trail_path(path, sizeof path, c->name);
    remove(path);  /* one an earlier run left */
    count_case(c, o);
    if (c->worker)
      load_trail(c);
  }
  for (i = 0; i < ncases; i++) {
    Case *c = &cases[i];
    unsigned long k = 1, step = o->stride, from;
    int running = 0, slot;
    if (c->worker && !c->broken) {
      find_shared(c, cases, i);
      c->every = o->shared;
      if (c->like == NULL) {  /* the first one run */
        find_shared_later(c, cases, i, ncases);
        c->every = o->first;
      }
      step = o->stride * o->own;  /* each case from its own offset */
      from = c->shared + 1 + (nworker++ % o->own) * o->stride;
      if (c->like != NULL) {  /* 13 is odd: the first 32 later cases
                              ** start apart */
        k = 1 + (nlater++ * 13) % (c->every * o->stride);
        if (k > c->shared + 1)  /* no point it does not share is missed */
          k = from;
      }
    }
    else
      from = c->shared + 1;
    if (c->broken) {
      printf("oom: %-28s the run with nothing failing is not clean: %s\n",
             c->name, c->why);
      fflush(stdout);
      broken = 1;
      continue;
    }
    while (k <= c->count || running > 0) {
      int wstatus;
      for (slot = 0; slot < o->jobs && k <= c->count; slot++) {
        if (jobs[slot].pid != 0)
          continue;
        jobs[slot].c = c;
        start_job(&jobs[slot], o, c->file, c->name, k, c->worker, slot, 0);
        running++;
        if (k > c->shared)
          k += step;
        else if ((k += o->stride * c->every) > c->shared)
          k = from;  /* from where it parts, every point (in step) */
      }
      slot = reap(jobs, o->jobs, o, &wstatus);
      running--;
      note_point(c, o, &jobs[slot], wstatus);
    }
    if (c->nfindings > 0)
      qsort(c->findings, c->nfindings, sizeof(Finding), cmp_finding);
    percent(pc, sizeof pc, c->clean, c->points);
    printf("oom: %-28s %5lu points, %5lu clean (%s)", c->name, c->points,
           c->clean, pc);
    {
      int cat, first = 1;
      for (cat = 1; cat < NCAT; cat++)
        if (c->cats[cat] > 0) {
          printf("%s%lu %s", first ? ": " : ", ", c->cats[cat], catname[cat]);
          first = 0;
        }
    }
    if (c->shared > 0 && c->every > 1)
      printf("; of allocations 1-%lu, the same as %s's, one point in %lu",
             c->shared, c->like, c->every * o->stride);
    if (c->worker && o->own > 1)
      printf("; of its own, one in %lu", o->own * o->stride);
    printf("\n");
    fflush(stdout);
    tot[c->worker][0] += c->points;
    tot[c->worker][1] += c->clean;
  }
  snprintf(path, sizeof path, "%s/report.txt", o->outdir);
  if ((rep = fopen(path, "w")) != NULL) {
    fprintf(rep, "allocation-failure injection: mode %s, stride %lu, "
            "shared %lu, first %lu, own %lu\n\n",
            inj.once ? "once" : "forgood", o->stride, o->shared, o->first,
            o->own);
    for (i = 0; i < ncases; i++) {
      Case *c = &cases[i];
      if (c->broken)
        fprintf(rep, "%s: not run, the run with nothing failing is not "
                "clean: %s\n", c->name, c->why);
      else {
        fprintf(rep, "%s: %lu allocations, %lu points, %lu clean (%lu "
                "raised, %lu completed, %lu not reached)", c->name,
                c->count, c->points, c->clean, c->raised, c->completed,
                c->unreached);
        if (c->like != NULL)
          fprintf(rep, "; its first %lu allocations are %s's", c->shared,
                  c->like);
        fputc('\n', rep);
      }
      report_case(rep, c);
    }
    fclose(rep);
  }
  percent(pc, sizeof pc, tot[0][1], tot[0][0]);
  printf("oom: main state: %lu points, %lu clean (%s)\n", tot[0][0],
         tot[0][1], pc);
  percent(pc, sizeof pc, tot[1][1], tot[1][0]);
  printf("oom: worker state: %lu points, %lu clean (%s)\n", tot[1][0],
         tot[1][1], pc);
  percent(pc, sizeof pc, tot[0][1] + tot[1][1], tot[0][0] + tot[1][0]);
  printf("oom: %lu points, %lu clean (%s)\n", tot[0][0] + tot[1][0],
         tot[0][1] + tot[1][1], pc);
  if (tot[0][0] + tot[1][0] > tot[0][1] + tot[1][1] || broken)
    printf("oom: findings in %s (logs in %s/fail/)\n", path, o->outdir);
  for (i = 0; i < ncases; i++) {
    size_t j;
    for (j = 0; j < cases[i].nfindings; j++) {
      Finding *f = &cases[i].findings[j];
      size_t m;
      for (m = 0; m < f->nsites; m++)
        free(f->sites[m].where);
      free(f->sites);
      free(f->key);
    }
    free(cases[i].findings);
    free(cases[i].file);
    free(cases[i].name);
    free(cases[i].why);
    free(cases[i].trail);
  }
  free(cases);
  free(jobs);
  return tot[0][0] + tot[1][0] > tot[0][1] + tot[1][1] || broken ? 1 : 0;
}

/* }====================================================== */


static unsigned long env_number (const char *name, unsigned long def) {
  const char *s = getenv(name);
  char *end;
  unsigned long v;
  if (s == NULL || *s == '\0')
    return def;
  v = strtoul(s, &end, 10);
  if (*end != '\0' || v == 0) {
    fprintf(stderr, "oom: %s must be a positive integer\n", name);
    exit(2);
  }
  return v;
}

static void usage (void) {
  fprintf(stderr,
    "usage: host [-j jobs] [-s stride] [-c cases] [-m forgood|once]\n"
    "            [-t seconds] [-o outdir] FILE...\n"
    "       host -k K -c CASE FILE     one point in the foreground\n");
  exit(2);
}

int main (int argc, char **argv) {
  Options o;
  const char *mode = getenv("OOM_MODE");
  long k = -1;
  int opt;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  static char dir[512];
  o.jobs = (int)env_number("OOM_JOBS", 2);
  o.stride = env_number("OOM_STRIDE", 1);
  o.shared = env_number("OOM_SHARED", 32);
  o.first = env_number("OOM_FIRST", 4);
  o.own = env_number("OOM_OWN", 1);
  o.only = getenv("OOM_SCENARIO");
  o.timeout = (unsigned)env_number("OOM_TIMEOUT", 60);
  o.outdir = NULL;
  while ((opt = getopt(argc, argv, "j:s:c:m:t:o:k:")) != -1) {
    switch (opt) {
      case 'j': o.jobs = atoi(optarg); break;
      case 's': o.stride = strtoul(optarg, NULL, 10); break;
      case 'c': o.only = optarg; break;
      case 'm': mode = optarg; break;
      case 't': o.timeout = (unsigned)strtoul(optarg, NULL, 10); break;
      case 'o': o.outdir = optarg; break;
      case 'k': k = atol(optarg); break;
      default: usage();
    }
  }
  if (optind >= argc || o.jobs < 1 || o.stride < 1 || o.own < 1
      || o.timeout < 1)
    usage();
  if (cpus > 0 && o.jobs > cpus)
    o.jobs = (int)cpus;
  if (mode != NULL && *mode != '\0') {
    if (strcmp(mode, "once") == 0)
      inj.once = 1;
    else if (strcmp(mode, "forgood") != 0)
      usage();
  }
  if (o.outdir == NULL) {  /* where the program is */
    const char *slash = strrchr(argv[0], '/');
    if (slash == NULL)
      o.outdir = ".";
    else {
      snprintf(dir, sizeof dir, "%.*s", (int)(slash - argv[0]), argv[0]);
      o.outdir = dir;
    }
  }
  shim_dir = o.outdir;
  signal(SIGPIPE, SIG_IGN);
  if (k >= 0) {  /* one point, here */
    const char *name = o.only;
    const char *slash = strrchr(argv[optind], '/');
    char full[300];
    int worker = 0;
    if (name == NULL || strchr(name, ',') != NULL)
      usage();
    if (strchr(name, '.') == NULL) {  /* a case of this file */
      char base[256];
      snprintf(base, sizeof base, "%s", slash ? slash + 1 : argv[optind]);
      base[strcspn(base, ".")] = '\0';
      snprintf(full, sizeof full, "%s.%s", base, name);
      name = full;
    }
    {
      /* its state: ask the file */
      Options lo = o;
      int wstatus, killed;
      char *log, *p, want[320];
      char base[256];
      snprintf(base, sizeof base, "%s", slash ? slash + 1 : argv[optind]);
      base[strcspn(base, ".")] = '\0';
      lo.only = NULL;
      {
        char path[600];
        snprintf(path, sizeof path, "%s/tmp", o.outdir);
        mkdir(path, 0755);
      }
      log = run_one(&lo, argv[optind], base, 0, 0, 1, 0, &wstatus, &killed);
      snprintf(want, sizeof want, TAG "case %s ", name);
      if ((p = strstr(log, want)) == NULL) {
        fprintf(stderr, "oom: %s has no case %s\n%s", argv[optind], name, log);
        free(log);
        return 2;
      }
      worker = strncmp(p + strlen(want), "worker", 6) == 0;
      free(log);
    }
    inj.trace = getenv("OOM_TRACE") != NULL
                && strcmp(getenv("OOM_TRACE"), "all") == 0 ? 2 : 1;
    alarm(o.timeout);
    return run_point(argv[optind], name, (unsigned long)k, worker);
  }
  return drive(&o, argv + optind, argc - optind);
}
