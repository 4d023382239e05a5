/*
** worker.c: mc.Worker's C half. A worker is an OS thread with a Lua state
** of its own; mc_Thread is what that thread and its parent share. The
** parent holds it through a Worker handle (a userdata, WORKER_MT), the
** worker's state through a box in its registry (WORKER_KEY).
**
** The worker gets two messages, made in the parent like any message: the
** port to its parent, opened when the module loads there, and workerData
** with its transfer list, opened at its first read (so the worker can
** register the metatables it carries first). terminate() sets a flag,
** wakes the worker's hub in case it sleeps there, and sends the worker a
** signal whose handler sets a hook on the coroutine it runs, so that a
** busy loop raises at its next instruction (as the standalone
** interpreter's Ctrl-C does). Where no signal can be used, a count hook
** checks the flag instead.
** When the worker ends, its state is closed (so its ports close at their
** partners), what it never opened is dropped, then the parent's hub is
** told, and the parent dispatches the error and exit events.
*/
#define _GNU_SOURCE  /* pthread_sigqueue */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dlfcn.h>

#include "compat.h"
#include "lualib.h"
#include "mc.h"

#define HOOK_COUNT 1000  /* VM instructions between two looks at `stop`
                         ** (a worker without the stop signal) */
#define WORKER_MT "messagechannel.WorkerHandle"
#define WORKER_KEY "messagechannel.worker"          /* the mc_Thread box */
/* open_once's memos: {port, true} once opened, {value, true} once read */
#define WORKER_PORT_KEY "messagechannel.parentPort"
#define WORKER_DATA_KEY "messagechannel.workerData"
#define HOME_KEY "messagechannel.home"  /* {path, cpath} that found the module */

static unsigned long last_thread_id;  /* atomic; the main thread is 0 */

typedef struct mc_Thread {
  pthread_mutex_t lock;
  int refs;
  int stop;           /* terminate(): read and written atomically */
  pthread_t tid;
  int signal;         /* the stop signal, or 0: a count hook instead */
  int sigok;          /* under the lock: the thread takes the signal */
  int signaled;       /* under the lock: the signal was sent */
  lua_State *running; /* atomic: the coroutine the signal's hook goes to */
  int started, joined;
  mc_Hub *hub;        /* the worker's */
  mc_Hub *parent;     /* told `parent_id` when the worker has ended */
  uint32_t parent_id;
  char *source;       /* a path, or Lua source with eval */
  size_t srclen;
  int eval;
  int jit;            /* LuaJIT: keep the compiler on */
  char *path, *cpath; /* the parent's package.path and package.cpath */
  char *home, *chome; /* and the ones that found the module there */
  mc_Msg *port;       /* the parentPort, until the worker opens it */
  mc_Msg *data;       /* workerData, until its first read */
  int lent;           /* port and data are not committed yet: set and
                      ** cleared before the thread starts */
  lua_Integer thread_id;  /* never reused in the process */
  lua_Integer exit_code;  /* os.exit's, once `exiting` (read after join) */
  int exiting;        /* os.exit was called: read and written atomically */
  /* results, under the lock */
  int done;
  lua_Integer code;   /* the exit code */
  mc_Msg *error;      /* the uncaught error, encoded */
  char *trace;        /* and its traceback, or the text of an error the
                      ** worker could not record otherwise */
  char *text;         /* with `error`: its tostring, for a parent that
                      ** cannot decode it */
  size_t textlen;
  int reported;       /* the parent dispatched the error (its thread's) */
} mc_Thread;

/* Lets go of the messages the worker did not open: given back to their
** objects while not committed, else dropped. */
static void drop_messages (mc_Thread *t) {
  mc_Msg *m[2];
  int i;
  m[0] = t->port;
  m[1] = t->data;
  t->port = t->data = NULL;
  for (i = 0; i < 2; i++) {
    if (m[i] == NULL)
      continue;
    if (t->lent)
      mc_msg_unlend(m[i]);
    else
      mc_msg_free(m[i]);
  }
}

static void thread_decref (mc_Thread *t) {
  int last;
  pthread_mutex_lock(&t->lock);
  last = --t->refs == 0;
  pthread_mutex_unlock(&t->lock);
  if (last) {
    drop_messages(t);
    if (t->error != NULL)
      mc_msg_free(t->error);
    if (t->hub != NULL)
      mc_hub_decref(t->hub);
    if (t->parent != NULL)
      mc_hub_decref(t->parent);
    free(t->source);
    free(t->path);
    free(t->cpath);
    free(t->home);
    free(t->chome);
    free(t->trace);
    free(t->text);
    pthread_mutex_destroy(&t->lock);
    free(t);
  }
}

static char *dup_bytes (const char *s, size_t n) {
  char *d = (char *)malloc(n + 1);
  if (d != NULL) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* The mc_Thread of the worker whose state L is, or NULL. */
static mc_Thread *this_thread (lua_State *L) {
  mc_Thread **box;
  lua_getfield(L, LUA_REGISTRYINDEX, WORKER_KEY);
  box = (mc_Thread **)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return box != NULL ? *box : NULL;
}


/*
** {======================================================
** The worker thread
** =======================================================
*/

static int box__gc (lua_State *L) {
  mc_Thread **box = (mc_Thread **)lua_touserdata(L, 1);
  if (*box != NULL) {
    thread_decref(*box);
    *box = NULL;
  }
  return 0;
}

static void stop_hook (lua_State *L, lua_Debug *ar);

/* The stop hook, to run at L's next instruction. A count hook only: a
** call hook would raise in the C finalizers lua_close runs (a port's,
** which tells its partner). */
static void set_stop_hook (lua_State *L) {
  lua_sethook(L, stop_hook, LUA_MASKCOUNT, 1);
}

static void stop_hook (lua_State *L, lua_Debug *ar) {
  mc_Thread *t = this_thread(L);
  (void)ar;
  if (t != NULL && __atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
    set_stop_hook(L);  /* again at once if caught */
    luaL_error(L, "%s", MC_TERMINATED);
  }
}

/*
** The stop signal. A count hook costs Lua 5.3 and 5.4 a call before every
** VM instruction, whatever its count, so a worker runs without one: stop
** sends it a real-time signal (one that had no handler when the first
** worker started), whose handler sets the stop hook on the coroutine the
** worker runs (`running`), with a count of 1. Lua allows lua_sethook in a
** signal handler (lua.c's Ctrl-C does it). Lua's hooks are each
** coroutine's own, so the worker keeps `running` up to date where it
** runs Lua code in another coroutine: its coroutine.resume, the functions
** of its coroutine.wrap and (5.4) its coroutine.close are the base
** library's, done again around lua_resume (compat.h) so that they nest as
** deep (the scheduler resumes its tasks with them), and each sets the hook
** itself when the flag is up as it changes `running`, in case the
** signal's handler ran in between. Code that C runs in a coroutine of its
** own choosing (another library's lua_resume) is not noted. LuaJIT's hooks
** are global, so `running` stays its main thread. Under ThreadSanitizer,
** which runs a signal's handler only when the thread next calls into the
** C library (a busy loop never does), and when no real-time signal is
** free, every worker has the count hook instead.
*/

/* The signal needs glibc's pthread_sigqueue and real-time signals. */
#if defined(__SANITIZE_THREAD__) || !defined(__GLIBC__) || !defined(SIGRTMIN)
#define MC_STOP_SIGNAL 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MC_STOP_SIGNAL 0
#endif
#endif
#if !defined(MC_STOP_SIGNAL)
#define MC_STOP_SIGNAL 1
#endif

#if MC_STOP_SIGNAL
static pthread_mutex_t signal_lock = PTHREAD_MUTEX_INITIALIZER;
static int stop_signal = -1;  /* under signal_lock: -1 not chosen yet */

static void on_stop_signal (int sig, siginfo_t *si, void *uc) {
  mc_Thread *t;
  lua_State *L;
  (void)sig;
  (void)uc;
  if (si->si_code != SI_QUEUE || si->si_pid != getpid())
    return;  /* not stop_thread's */
  t = (mc_Thread *)si->si_value.sival_ptr;
  L = __atomic_load_n(&t->running, __ATOMIC_ACQUIRE);
  if (L != NULL)
    set_stop_hook(L);
}

/* The stop signal, chosen and given its handler at the first call; 0 when
** none can be used. */
static int take_stop_signal (void) {
  int sig;
  pthread_mutex_lock(&signal_lock);
  if (stop_signal < 0) {
    stop_signal = 0;
    for (sig = SIGRTMAX; sig >= SIGRTMIN; sig--) {
      struct sigaction old, sa;
      if (sigaction(sig, NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO)
          || old.sa_handler != SIG_DFL)
        continue;  /* the program's */
      memset(&sa, 0, sizeof sa);
      sa.sa_sigaction = on_stop_signal;
      sa.sa_flags = SA_SIGINFO | SA_RESTART;
      sigfillset(&sa.sa_mask);
      if (sigaction(sig, &sa, NULL) == 0) {
        mc_keep_loaded();  /* the handler stays */
        stop_signal = sig;
        break;
      }
    }
  }
  sig = stop_signal;
  pthread_mutex_unlock(&signal_lock);
  return sig;
}

/* Sends t's thread the signal, once; under t's lock. */
static void send_stop_signal (mc_Thread *t) {
  if (t->sigok && !t->signaled) {  /* one is enough: the flag stays */
    union sigval v;
    v.sival_ptr = t;
    t->signaled = pthread_sigqueue(t->tid, t->signal, v) == 0;
  }
}
#else
static int take_stop_signal (void) {
  return 0;
}

static void send_stop_signal (mc_Thread *t) {
  (void)t;
}
#endif

#if !MC_GLOBAL_HOOKS
/* The worker now runs L: a hook goes there; set at once when the worker
** is to stop already. Returns the coroutine noted before. The store comes
** before the load of the flag (both sequentially consistent), so a
** handler that runs between them finds L, and one that ran before finds
** the flag up. */
static lua_State *run_in (mc_Thread *t, lua_State *L) {
  lua_State *prev = __atomic_exchange_n(&t->running, L, __ATOMIC_SEQ_CST);
  if (L != NULL && __atomic_load_n(&t->stop, __ATOMIC_SEQ_CST))
    set_stop_hook(L);  /* (NULL: finalizers that lua_close runs) */
  return prev;
}

/* Back from running Lua code in another coroutine, in L: the noted one
** is the one noted before (alive: an outer resume's, or the main thread),
** even where L was resumed by C; when the worker is to stop, L gets the
** hook too. */
static void run_back (mc_Thread *t, lua_State *prev, lua_State *L) {
  run_in(t, prev);
  if (prev != L && prev != NULL
      && __atomic_load_n(&t->stop, __ATOMIC_SEQ_CST))
    set_stop_hook(L);
}

/* Resumes co with the narg values at the top of L as coroutine.resume
** does, with `running` set to co meanwhile; returns the count of results
** moved to L, or -1 with the error value at the top. */
static int resume_noted (lua_State *L, lua_State *co, int narg,
                         mc_Thread *t) {
  lua_State *prev;
  int st, nres;
  if (mc_resume_check(L, co, narg) < 0)
    return -1;
  lua_xmove(L, co, narg);
  prev = run_in(t, co);
  st = mc_resume(co, L, narg, &nres);
  run_back(t, prev, L);
  return mc_resume_results(L, co, st, nres);
}

/* coroutine.resume in a worker (upvalue: t). */
static int resume_in (lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  int r;
  mc_check_coroutine(L, co != NULL);
  r = resume_noted(L, co, lua_gettop(L) - 1,
                   (mc_Thread *)lua_touserdata(L, lua_upvalueindex(1)));
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

/* The function coroutine.wrap makes in a worker (upvalues: its coroutine,
** t). */
static int call_wrapped (lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  mc_Thread *t = (mc_Thread *)lua_touserdata(L, lua_upvalueindex(2));
  int r = resume_noted(L, co, lua_gettop(L), t);
  if (r < 0) {
    lua_State *prev = run_in(t, co);  /* its __close handlers run there */
    int st = mc_wrap_close(L, co);
    run_back(t, prev, L);
    mc_wrap_where(L, st);
    return lua_error(L);
  }
  return r;
}

#if MC_COROUTINE_CLOSE
/* coroutine.close in a worker (upvalue: t): co's __close handlers run in
** co. */
static int close_in (lua_State *L) {
  lua_State *co = lua_tothread(L, 1), *prev;
  mc_Thread *t = (mc_Thread *)lua_touserdata(L, lua_upvalueindex(1));
  const char *why;
  int st;
  mc_check_coroutine(L, co != NULL);
  why = mc_unclosable(L, co);
  if (why != NULL)
    return luaL_error(L, "cannot close a %s coroutine", why);
  prev = run_in(t, co);
  st = mc_closethread(co, L);
  run_back(t, prev, L);
  if (st == LUA_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_xmove(co, L, 1);
  return 2;
}
#endif

/* coroutine.wrap in a worker (upvalue: t). */
static int wrap_in (lua_State *L) {
  lua_State *co;
  mc_check_body(L);
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, call_wrapped, 2);
  return 1;
}
#endif

/* debug.sethook in a worker: debug.sethook itself (the first upvalue),
** then, when the worker is to stop, the stop hook again where the worker
** runs: the program's own hook, or none, set after terminate() would
** replace the hook that the stop signal set, and the worker would never
** stop. (The flag is up before the signal is sent, so a hook the signal
** set that this call replaced is always set again here.) Without the
** signal (t->signal 0), the worker's count hook is what stops it: a call
** that leaves the coroutine it sets (its first argument, or this one)
** with no hook sets that one again there. Its argument errors read as
** debug.sethook's own, at the caller's line. */
static int sethook_in (lua_State *L) {
  mc_Thread *t = (mc_Thread *)lua_touserdata(L, lua_upvalueindex(2));
  int n = lua_gettop(L);
  lua_State *co = lua_type(L, 1) == LUA_TTHREAD ? lua_tothread(L, 1) : L;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  if (lua_pcall(L, n, LUA_MULTRET, 0) != 0) {
    const char *msg = lua_tostring(L, -1);
    if (msg != NULL && strncmp(msg, "bad argument", 12) == 0) {
      luaL_where(L, 1);
      luaL_gsub(L, msg, "to '?'", "to 'sethook'");
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  if (__atomic_load_n(&t->stop, __ATOMIC_SEQ_CST)) {
    set_stop_hook(L);
    set_stop_hook(co);
  }
  else if (t->signal == 0 && lua_gethook(co) == NULL)
    lua_sethook(co, stop_hook, LUA_MASKCOUNT, HOOK_COUNT);
  return lua_gettop(L);
}

/* Wraps the worker's debug.sethook (see sethook_in), when there is one. */
static void wrap_sethook (lua_State *L, mc_Thread *t) {
  lua_getglobal(L, "debug");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "sethook");
    if (lua_isfunction(L, -1)) {
      lua_pushlightuserdata(L, t);
      lua_pushcclosure(L, sethook_in, 2);
      lua_setfield(L, -2, "sethook");
    }
    else
      lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Puts resume_in, wrap_in and close_in in the worker's coroutine
** library. */
static void wrap_coroutines (lua_State *L, mc_Thread *t) {
#if !MC_GLOBAL_HOOKS
  if (t->signal == 0)
    return;
  lua_getglobal(L, "coroutine");
  lua_pushlightuserdata(L, t);
  lua_pushcclosure(L, resume_in, 1);
  lua_setfield(L, -2, "resume");
  lua_pushlightuserdata(L, t);
  lua_pushcclosure(L, wrap_in, 1);
  lua_setfield(L, -2, "wrap");
#if MC_COROUTINE_CLOSE
  lua_pushlightuserdata(L, t);
  lua_pushcclosure(L, close_in, 1);
  lua_setfield(L, -2, "close");
#endif
  lua_pop(L, 1);
#else
  (void)L;
  (void)t;
#endif
}

/* The thread takes the stop signal from here on (on = 1), or no more. */
static void take_signal (mc_Thread *t, lua_State *L, int on) {
  sigset_t set;
  if (t->signal == 0)
    return;
  sigemptyset(&set);
  sigaddset(&set, t->signal);
  if (on) {
    __atomic_store_n(&t->running, L, __ATOMIC_RELEASE);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  }
  pthread_mutex_lock(&t->lock);
  t->sigok = on;
  pthread_mutex_unlock(&t->lock);
  if (!on) {  /* one sent already stays pending, and goes with the thread */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    __atomic_store_n(&t->running, NULL, __ATOMIC_RELEASE);
  }
  else if (__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE))
    set_stop_hook(L);  /* stopped before the signal could be sent */
}

/*
** {======================================================
** The module's own files
** =======================================================
*/

/* The first file that exists of those a template list gives for name
** (as package.path: templates separated by ';', '?' for the name),
** pushed, or NULL (nothing pushed). */
static const char *find_file (lua_State *L, const char *name,
                              const char *path) {
  const char *file = luaL_gsub(L, name, ".", LUA_DIRSEP);
  int base = lua_gettop(L);
  while (*path != '\0') {
    const char *end = strchr(path, ';');
    FILE *f;
    if (end == NULL)
      end = path + strlen(path);
    lua_pushlstring(L, path, (size_t)(end - path));
    luaL_gsub(L, lua_tostring(L, -1), "?", file);
    if ((f = fopen(lua_tostring(L, -1), "r")) != NULL) {
      fclose(f);
      lua_replace(L, base);
      lua_settop(L, base);
      return lua_tostring(L, -1);
    }
    lua_settop(L, base);
    path = *end != '\0' ? end + 1 : end;
  }
  lua_pop(L, 1);
  return NULL;
}

/* A searcher, first after the preload one in a worker whose parent has
** changed package.path or package.cpath since it loaded this module:
** messagechannel and messagechannel.* are found where the parent found
** them (upvalues: that path and cpath), so the worker can start. */
static int home_searcher (lua_State *L) {
  const char *name = luaL_checkstring(L, 1), *file;
  int core = strcmp(name, "messagechannel.core") == 0;
  if (strncmp(name, "messagechannel", 14) != 0
      || (name[14] != '\0' && name[14] != '.'))
    return 0;
  file = find_file(L, name, lua_tostring(L, lua_upvalueindex(core ? 2 : 1)));
  if (file == NULL)
    return 0;  /* the other searchers say where they looked */
  if (core) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loadlib");
    lua_pushvalue(L, -3);
    lua_pushliteral(L, "luaopen_messagechannel_core");
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2))
      return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                        name, file, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  else if (luaL_loadfile(L, file) != 0)
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                      name, file, lua_tostring(L, -1));
  lua_pushstring(L, file);
  return 2;
}

/* In the worker: keeps where the module was found for its own workers,
** and adds home_searcher when that is not where its package.path and
** package.cpath look first. */
static void set_home (lua_State *L, mc_Thread *t) {
  lua_createtable(L, 2, 0);
  lua_pushstring(L, t->home);
  lua_rawseti(L, -2, 1);
  lua_pushstring(L, t->chome);
  lua_rawseti(L, -2, 2);
  lua_setfield(L, LUA_REGISTRYINDEX, HOME_KEY);
  if (strcmp(t->home, t->path) == 0 && strcmp(t->chome, t->cpath) == 0)
    return;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_getfield(L, -1, "loaders");
  }
  if (lua_istable(L, -1)) {
    int i;
    for (i = (int)mc_rawlen(L, -1); i >= 2; i--) {
      lua_rawgeti(L, -1, i);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushstring(L, t->home);
    lua_pushstring(L, t->chome);
    lua_pushcclosure(L, home_searcher, 2);
    lua_rawseti(L, -2, 2);
  }
  lua_pop(L, 2);
}

/* }====================================================== */


/* Runs under lua_pcall in the new state: sets it up, then calls
** messagechannel.worker's main(source, eval). */
static int boot (lua_State *L) {
  mc_Thread *t = (mc_Thread *)lua_touserdata(L, 1);
  mc_Thread **box;
  luaL_openlibs(L);
  box = (mc_Thread **)mc_newuserdata(L, sizeof(mc_Thread *), 0);
  *box = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, box__gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  pthread_mutex_lock(&t->lock);
  t->refs++;
  pthread_mutex_unlock(&t->lock);
  *box = t;
  lua_setfield(L, LUA_REGISTRYINDEX, WORKER_KEY);
  mc_ctx_open(L, t->hub);  /* before the module, around the worker's hub */
  lua_rawgeti(L, -1, MC_CTX_C);
  ((mc_Ctx *)lua_touserdata(L, -1))->stophook = stop_hook;
  ((mc_Ctx *)lua_touserdata(L, -1))->worker = 1;
  lua_pop(L, 2);
  lua_getglobal(L, "package");
  lua_pushstring(L, t->path);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, t->cpath);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  set_home(L, t);
  if (t->signal == 0)
    lua_sethook(L, stop_hook, LUA_MASKCOUNT, HOOK_COUNT);
  wrap_coroutines(L, t);  /* before the scheduler takes them */
  wrap_sethook(L, t);
  take_signal(t, L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "messagechannel.worker");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  lua_pushlstring(L, t->source, t->srclen);
  lua_pushboolean(L, t->eval);
  lua_pushboolean(L, t->jit);
  lua_call(L, 3, 0);
  return 0;
}

/* Keeps the text of an error the worker's Lua side could not record. */
static void set_error_text (mc_Thread *t, const char *s, size_t n) {
  char *d = dup_bytes(s, n);
  pthread_mutex_lock(&t->lock);
  if (t->error == NULL && t->trace == NULL) {
    t->trace = d;
    d = NULL;
  }
  pthread_mutex_unlock(&t->lock);
  free(d);
}

static void *worker_main (void *arg) {
  mc_Thread *t = (mc_Thread *)arg;
#if defined(MC_FAULT_INJECTION)
  void *ud = NULL;
  lua_Alloc alloc = mc_fault_alloc(&ud);
  lua_State *L = lua_newstate(alloc, ud);
#else
  lua_State *L = luaL_newstate();
#endif
  mc_Hub *parent;
  uint32_t id;
  lua_Integer code = 0;
  if (L == NULL)
    set_error_text(t, "not enough memory", 17);
  else {
    int st;
#if defined(MC_FAULT_INJECTION)
    mc_fault_state(L);
#endif
    lua_pushcfunction(L, boot);
    lua_pushlightuserdata(L, t);
    st = lua_pcall(L, 1, 0, 0);
    take_signal(t, L, 0);
    if (st != 0) {
      /* os.exit, terminated, or an error boot could not record */
      code = __atomic_load_n(&t->exiting, __ATOMIC_ACQUIRE) ? t->exit_code : 1;
      if (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        if (s == NULL)
          s = "(error object is not a string)", n = strlen(s);
        set_error_text(t, s, n);
      }
    }
    lua_close(L);  /* its ports close at their partners */
    mc_hub_close_stopfd(t->hub);  /* luv's loop is closed: no one polls it */
  }
  drop_messages(t);  /* and so do the ports it never opened */
  mc_net_sync();  /* the listeners it left open are closed by the network
                  ** thread before the exit is told: their addresses are
                  ** free, and refuse connects, once the parent sees it */
  pthread_mutex_lock(&t->lock);
  if (t->error != NULL || t->trace != NULL)
    code = 1;
  else if (__atomic_load_n(&t->exiting, __ATOMIC_ACQUIRE))
    code = t->exit_code;
  t->code = code;
  t->done = 1;
  parent = t->parent;
  id = t->parent_id;
  pthread_mutex_unlock(&t->lock);
  if (id != 0)  /* else its handle is gone */
    mc_hub_notify(parent, id);
  thread_decref(t);
  return NULL;
}

/* }====================================================== */


/*
** {======================================================
** Functions for the worker's own state
** =======================================================
*/

/* Pushes what the worker got in *slot, a message opened at the first call:
** its first transferred object, or its value. Later calls push the same.
** A message that cannot be decoded raises, and stays to be read again
** (once its metatables are registered, say); one whose objects cannot be
** made (no memory) is gone, and the reads after raise. Only the worker's
** thread reads *slot. The memo, registry[key] = {what, done}, is made as
** the module opens (make_memos), so that nothing allocates in it before
** or after the read; done is 0 during the read, when a finalizer that the
** read runs cannot read the message a second time. */
static int open_once (lua_State *L, mc_Msg **slot, const char *key,
                      const char *name, int object) {
  mc_Msg *m;
  int memo;
  lua_getfield(L, LUA_REGISTRYINDEX, key);
  if (!lua_istable(L, -1)) {
    lua_pushfstring(L, "mc.%s is lost: the registry's entry was removed",
                    name);
    return lua_error(L);
  }
  memo = lua_gettop(L);
  lua_rawgeti(L, memo, 2);
  if (lua_type(L, -1) == LUA_TNUMBER) {
    lua_pushfstring(L, "mc.%s is being read: a finalizer cannot read it "
                    "during its first read", name);
    return lua_error(L);
  }
  if (lua_toboolean(L, -1)) {
    lua_rawgeti(L, memo, 1);
    return 1;
  }
  lua_pop(L, 1);
  if ((m = *slot) == NULL) {  /* none, or lost by a failed first read */
    lua_rawgeti(L, memo, 1);
    if (!lua_toboolean(L, -1))
      return 0;
    lua_pushfstring(L, "mc.%s is lost: its first read failed: %s", name,
                    lua_tostring(L, -1));
    return lua_error(L);
  }
  lua_pushinteger(L, 0);
  lua_rawseti(L, memo, 2);  /* slots 1 and 2 exist: no allocation */
  if (mc_message_read(L, m) != 0) {  /* error, nil */
    lua_pushboolean(L, 0);
    lua_rawseti(L, memo, 2);
    lua_pop(L, 1);
    return lua_error(L);
  }
  *slot = NULL;
  if (mc_message_fill(L, m) != 0) {  /* memo, value, objs, error; m freed */
    lua_pushvalue(L, -1);
    lua_rawseti(L, memo, 1);  /* for the reads after: m is gone */
    lua_pushboolean(L, 0);
    lua_rawseti(L, memo, 2);
    return lua_error(L);
  }
  if (object && lua_istable(L, -1))
    lua_rawgeti(L, -1, 1);
  else if (object)
    lua_pushnil(L);
  else
    lua_pushvalue(L, -2);
  lua_pushvalue(L, -1);
  lua_rawseti(L, memo, 1);
  lua_pushboolean(L, 1);
  lua_rawseti(L, memo, 2);
  return 1;
}

/* A worker's state: the memos of open_once, {false, false}. */
static void make_memos (lua_State *L) {
  static const char *const keys[] = {WORKER_PORT_KEY, WORKER_DATA_KEY};
  int i, k;
  for (k = 0; k < 2; k++) {
    lua_getfield(L, LUA_REGISTRYINDEX, keys[k]);
    if (!lua_istable(L, -1)) {  /* a second open keeps the first's */
      lua_createtable(L, 2, 0);
      for (i = 1; i <= 2; i++) {
        lua_pushboolean(L, 0);
        lua_rawseti(L, -2, i);
      }
      lua_setfield(L, LUA_REGISTRYINDEX, keys[k]);
    }
    lua_pop(L, 1);
  }
}

/* worker_port(): nil in the main thread; in a worker, mc.parentPort. */
static int core_worker_port (lua_State *L) {
  mc_Thread *t = this_thread(L);
  return t != NULL
         ? open_once(L, &t->port, WORKER_PORT_KEY, "parentPort", 1) : 0;
}

/* worker_data(): nil in the main thread; in a worker, mc.workerData,
** decoded at the first call. */
static int core_worker_data (lua_State *L) {
  mc_Thread *t = this_thread(L);
  return t != NULL
         ? open_once(L, &t->data, WORKER_DATA_KEY, "workerData", 0) : 0;
}

/* worker_fail(bytes, traceback, text): the worker's main records the
** error that ends it, serialized, and its text. */
static int core_worker_fail (lua_State *L) {
  mc_Thread *t = this_thread(L);
  size_t len, tlen, xlen;
  const char *bytes = luaL_checklstring(L, 1, &len);
  const char *tb = luaL_optlstring(L, 2, "", &tlen);
  const char *tx = luaL_checklstring(L, 3, &xlen);
  mc_Msg *m;
  char *trace, *text;
  if (t == NULL)
    return luaL_error(L, "not in a worker");
  m = mc_msg_new(bytes, len, 0);
  trace = dup_bytes(tb, tlen);
  text = dup_bytes(tx, xlen);
  if (m == NULL || trace == NULL || text == NULL) {
    if (m != NULL)
      mc_msg_free(m);
    free(trace);
    free(text);
    return luaL_error(L, "not enough memory");
  }
  pthread_mutex_lock(&t->lock);
  if (t->error == NULL && !__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
    t->error = m;
    m = NULL;
    free(t->trace);
    t->trace = trace;
    trace = NULL;
    t->text = text;
    t->textlen = xlen;
    text = NULL;
  }
  pthread_mutex_unlock(&t->lock);
  if (m != NULL)
    mc_msg_free(m);
  free(trace);
  free(text);
  return 0;
}

/* }====================================================== */


/*
** {======================================================
** The parent's side: Worker handles
** =======================================================
*/

typedef struct Handle {
  mc_Thread *t;
  mc_CtxLink link;  /* listed in the context while t is held */
  int watched;      /* the scheduler waits for its end (worker_result) */
} Handle;

static Handle *check_handle (lua_State *L) {
  return (Handle *)luaL_checkudata(L, 1, WORKER_MT);
}

/* Tells the worker to stop; from another thread (`signal`), it is sent
** the stop signal too. */
static void stop_thread (mc_Thread *t, int signal) {
  __atomic_store_n(&t->stop, 1, __ATOMIC_SEQ_CST);
  if (t->hub != NULL)
    mc_hub_stop(t->hub);
  if (signal && t->signal != 0) {
    pthread_mutex_lock(&t->lock);
    send_stop_signal(t);
    pthread_mutex_unlock(&t->lock);
  }
}

/* worker_exit(code): os.exit in a worker ends that worker only, as
** terminate() does (its hook raises again if the error is caught), with
** `code` as its exit code. */
static int core_worker_exit (lua_State *L) {
  mc_Thread *t = this_thread(L);
  lua_Integer code = luaL_checkinteger(L, 1);
  char msg[64];
  if (t == NULL)
    return luaL_error(L, "not in a worker");
  t->exit_code = code;
  __atomic_store_n(&t->exiting, 1, __ATOMIC_RELEASE);
  stop_thread(t, 0);  /* its hook is set here */
  set_stop_hook(L);
  {  /* and where the worker is noted to run: another library that
     ** resumed L itself (a cqueues task) catches the error, and its
     ** caller would go on */
    lua_State *r = __atomic_load_n(&t->running, __ATOMIC_ACQUIRE);
    if (r != NULL && r != L)
      set_stop_hook(r);
  }
  snprintf(msg, sizeof msg, "messagechannel: the worker called os.exit(%lld)",
           (long long)code);
  lua_pushstring(L, msg);
  return lua_error(L);
}

/*
** {======================================================
** A worker that runs luv's loop
** =======================================================
*/

/*
** luv calls each callback through its state's callback routine, which
** ends the whole process when the callback raises, and the error that
** ends a worker (terminate(), os.exit, an error nobody takes) is raised
** in whatever Lua code the worker runs. So a worker that loads luv gets
** a routine that calls each callback through luv_guard: the error that
** ends the worker stops luv's loop instead (uv.stop), the stop hook
** raises again at the first instruction of each later callback, and
** raises for good where uv.run returns. Any other error reaches luv's own
** routine as before. luv's C API (luv.h) is found in luv's library at
** run time: the module neither links to luv nor needs its headers.
*/

typedef int (*luv_CFpcall) (lua_State *L, int nargs, int nresults,
                            int flags);
typedef void (*luv_SetCallback) (lua_State *L, luv_CFpcall pcall);
#define LUVF_CALLBACK_NOTRACEBACK 0x02  /* luv.h's flags */
#define LUVF_CALLBACK_NOERRMSG 0x04

static luv_CFpcall luv_pcall;  /* atomic: luv's luv_cfpcall, once found */

/* Pushes package.loaded[module][field], read raw, and returns whether it
** is a C function (one that runs no Lua code of the program's). */
static int push_loaded (lua_State *L, const char *module, const char *field) {
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  if (lua_istable(L, -1)) {
    lua_pushstring(L, module);
    lua_rawget(L, -2);
    lua_replace(L, -2);
  }
  if (lua_istable(L, -1)) {
    lua_pushstring(L, field);
    lua_rawget(L, -2);
    lua_replace(L, -2);
  }
  return lua_iscfunction(L, -1);
}

/* Whether this thread is to stop: the error is the worker's end. */
static int ending (lua_State *L) {
  mc_Thread *t = this_thread(L);
  return t != NULL && __atomic_load_n(&t->stop, __ATOMIC_ACQUIRE);
}

/* Message handler of luv_guard: the traceback, as luv's routine adds it
** (upvalue 1: whether to), unless the thread is to stop. */
static int guard_trace (lua_State *L) {
  if (!lua_toboolean(L, lua_upvalueindex(1)) || ending(L)
      || lua_type(L, 1) != LUA_TSTRING)
    return 1;
#if LUA_VERSION_NUM >= 502 || MC_HAS_52_AUX
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
#else  /* Lua 5.1 has no luaL_traceback: debug.traceback's C function */
  if (push_loaded(L, "debug", "traceback")) {
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 2);
    lua_call(L, 2, 1);
  }
  else
    lua_settop(L, 1);  /* the message alone */
#endif
  return 1;
}

/* luv_guard(f, ...): calls f(...) with its message handler (upvalue 1);
** when it raises because the thread is to stop, tells luv's loop to stop
** (a C function: no Lua code runs) and returns nothing. */
static int luv_guard (lua_State *L) {
  int n = lua_gettop(L) - 1;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);  /* guard_trace, f, ... */
  if (lua_pcall(L, n, LUA_MULTRET, 1) == 0)
    return lua_gettop(L) - 1;
  if (!ending(L))
    return lua_error(L);
  if (push_loaded(L, "luv", "stop"))
    lua_pcall(L, 0, 0, 0);
  return 0;
}

/* Pushes luv_guard, with the traceback or without: made once per state,
** kept in its registry. */
static void push_guard (lua_State *L, int trace) {
  const char *key = trace ? "messagechannel.luv_guard_trace"
                          : "messagechannel.luv_guard";
  lua_getfield(L, LUA_REGISTRYINDEX, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, trace);
    lua_pushcclosure(L, guard_trace, 1);
    lua_pushcclosure(L, luv_guard, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, key);
  }
}

/* The callback routine: luv's own, around luv_guard. luv's adds the
** traceback itself unless told not to: luv_guard does, as it must leave
** the stop's error alone. luv calls back in L, the coroutine that loaded
** it, whichever one called uv.run (a task of mc.spawn, say): the worker
** runs L meanwhile, so that the stop signal's hook goes there. */
static int guarded_pcall (lua_State *L, int nargs, int nresults,
                          int flags) {
  luv_CFpcall pcall = __atomic_load_n(&luv_pcall, __ATOMIC_ACQUIRE);
  int r;
#if !MC_GLOBAL_HOOKS
  mc_Thread *t = this_thread(L);
  lua_State *prev = t != NULL ? run_in(t, L) : NULL;
#endif
  push_guard(L, (flags & (LUVF_CALLBACK_NOTRACEBACK
                          | LUVF_CALLBACK_NOERRMSG)) == 0);
  lua_insert(L, -(nargs + 2));  /* luv_guard, f, ... */
  r = pcall(L, nargs + 1, nresults, flags | LUVF_CALLBACK_NOTRACEBACK);
#if !MC_GLOBAL_HOOKS
  if (t != NULL)
    run_in(t, prev);  /* back in uv.run, where it was called */
#endif
  return r;
}

/* worker_stopfd(): a descriptor readable once this worker is to stop (see
** mc_hub_stopfd), or nil. worker.lua has luv's loop watch it, so that
** terminate() wakes a worker asleep there (the stop signal does not: libuv
** sleeps again), and its callback, worker_stopping, raises the stop: so
** luv_guard stops the loop. */
static int core_worker_stopfd (lua_State *L) {
  int fd = this_thread(L) != NULL ? mc_hub_stopfd(mc_ctx_hub(L)) : -1;
  if (fd < 0)
    return 0;
  lua_pushinteger(L, fd);
  return 1;
}

static int core_worker_stopping (lua_State *L) {
  if (ending(L))
    return luaL_error(L, "%s", MC_TERMINATED);
  return 0;
}

/* worker_luv(uv): luv was loaded in this worker as `uv`: its callbacks
** are called through luv_guard, and it returns true. Does nothing outside
** a worker, or when luv's library has no such API (then an error that
** ends the worker in a callback ends the process, as luv does). */
static int core_worker_luv (lua_State *L) {
  lua_CFunction f;
  void *p, *set, *pcall;
  Dl_info info;
  luv_SetCallback setter;
  luv_CFpcall found;
  if (this_thread(L) == NULL || !lua_istable(L, 1))
    return 0;
  lua_pushliteral(L, "loop_mode");  /* any function of luv's library */
  lua_rawget(L, 1);
  f = lua_tocfunction(L, -1);
  memcpy(&p, &f, sizeof p);
  if (f == NULL || dladdr(p, &info) == 0 || info.dli_fname == NULL
      || (p = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD)) == NULL)
    return 0;
  set = dlsym(p, "luv_set_callback");
  pcall = dlsym(p, "luv_cfpcall");
  dlclose(p);  /* luv's module still holds it */
  if (set == NULL || pcall == NULL)
    return 0;
  memcpy(&found, &pcall, sizeof found);
  memcpy(&setter, &set, sizeof setter);
  __atomic_store_n(&luv_pcall, found, __ATOMIC_RELEASE);
  setter(L, guarded_pcall);
  lua_pushboolean(L, 1);
  return 1;
}

/* }====================================================== */

/* thread_id([handle]): the worker's id (an integer never reused in the
** process); without a handle, this thread's: 0 in the main thread. */
static int core_thread_id (lua_State *L) {
  mc_Thread *t;
  if (lua_isnoneornil(L, 1))
    t = this_thread(L);
  else
    t = check_handle(L)->t;
  lua_pushinteger(L, t != NULL ? t->thread_id : 0);
  return 1;
}

static void join_thread (mc_Thread *t) {
  if (t->started && !t->joined) {
    pthread_join(t->tid, NULL);
    t->joined = 1;
  }
}

/* A worker that failed while its parent's state never dispatched the
** error (no scheduler turn ran it: worker_reported) would end unheard: its
** error goes to stderr as its handle goes, so that nothing is silently
** swallowed (API.md 3.5). */
static void tell_unreported (mc_Thread *t) {
  const char *what = t->text != NULL ? t->text : t->trace;
  if (t->reported || (t->error == NULL && t->trace == NULL))
    return;
  fprintf(stderr, "messagechannel: Error in worker %lld (no scheduler "
          "ran to report it): %s\n",
          (long long)t->thread_id, what != NULL ? what : "(no text)");
  fflush(stderr);
}

/* A handle collected, or its state closed, while the worker runs: the
** worker is told to stop, and left to end on its own (it holds its own
** reference to t), so that a worker stuck in a long C call cannot hang
** its parent. The library stays loaded for it (mc_keep_loaded). Returns
** the id the handle had in its parent's context (0: none). */
static uint32_t let_handle_go (Handle *h) {
  mc_Thread *t = h->t;
  int done;
  uint32_t id;
  mc_ctx_unlink(&h->link);
  if (t == NULL)
    return 0;
  stop_thread(t, 1);
  pthread_mutex_lock(&t->lock);
  done = t->done;
  id = t->parent_id;
  t->parent_id = 0;  /* its end tells nobody now: the id is free */
  pthread_mutex_unlock(&t->lock);
  if (done) {
    join_thread(t);
    tell_unreported(t);
  }
  else if (t->started && !t->joined) {
    pthread_detach(t->tid);
    t->joined = 1;
  }
  thread_decref(t);
  h->t = NULL;
  return id;
}

/* A handle whose finalizer will not run: made in a finalizer while its
** state closes. */
static void close_handle (mc_CtxLink *l) {
  let_handle_go((Handle *)((char *)l - offsetof(Handle, link)));
}

/* The scheduler's watch holds the handle until the worker's end: only a
** call by hand (or its state's close, whose context lets it go next) gets
** here while it is watched. The worker is stopped, as by terminate(), and
** the watch sees it end. */
static int handle__gc (lua_State *L) {
  Handle *h = (Handle *)mc_testudata(L, 1, WORKER_MT);
  if (h != NULL && h->watched && h->t != NULL)
    stop_thread(h->t, 1);
  else if (h != NULL)
    mc_ctx_unregister(L, let_handle_go(h));
  return 0;
}

/* Pushes package[name], or "" when that is not a string. */
static void push_package_field (lua_State *L, const char *name) {
  lua_getglobal(L, "package");
  if (lua_istable(L, -1))
    lua_getfield(L, -1, name);
  else
    lua_pushnil(L);
  lua_remove(L, -2);
  if (lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  }
}

/* A copy of the string at idx ("" for a value that is not one). */
static char *dup_string (lua_State *L, int idx) {
  size_t n = 0;
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &n)
                                                  : "";
  return dup_bytes(s, n);
}

static char *dup_field (lua_State *L, const char *name) {
  char *d;
  push_package_field(L, name);
  d = dup_string(L, -1);
  lua_pop(L, 1);
  return d;
}

/* In the parent: the path and cpath that found the module, for
** t->home and t->chome; the first state to load it keeps its package's
** own at that time. */
static int dup_home (lua_State *L, mc_Thread *t) {
  lua_getfield(L, LUA_REGISTRYINDEX, HOME_KEY);
  if (!lua_istable(L, -1)) {  /* taken away (debug.getregistry()) */
    lua_pop(L, 1);
    t->home = dup_field(L, "path");
    t->chome = dup_field(L, "cpath");
  }
  else {
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    t->home = dup_string(L, -2);
    t->chome = dup_string(L, -1);
    lua_pop(L, 3);
  }
  return t->home != NULL && t->chome != NULL;
}

/* Whether the value at v is an entry of the transfer argument at idx (an
** array, or a table {transfer = array}; anything else: no). */
static int listed (lua_State *L, int idx, int v) {
  int found = 0;
  if (!lua_istable(L, idx))
    return 0;
  lua_getfield(L, idx, "transfer");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
  }
  lua_pushnil(L);
  while (!found && lua_next(L, -2)) {
    found = lua_rawequal(L, -1, v);
    lua_pop(L, 1);
  }
  if (found)
    lua_pop(L, 1);  /* the key */
  lua_pop(L, 1);
  return found;
}

/* Starts the thread with every asynchronous signal blocked, so that a
** signal (Ctrl-C) goes to a thread of the program, whose wait it
** interrupts, never to a worker. */
static int start_thread (mc_Thread *t) {
  sigset_t all, old;
  int r;
  sigfillset(&all);
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  sigdelset(&all, SIGFPE);
  sigdelset(&all, SIGILL);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  r = pthread_create(&t->tid, NULL, worker_main, t);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return r;
}

/* worker_start(source, eval, data, transfer, ports, jit, watch, state):
** starts a worker that runs source (a path, or Lua source with eval), with
** workerData `data` and its transfer list, and the array `ports` holding
** its port to the parent; with jit, LuaJIT's compiler stays on there.
** Returns the handle, once stored as watch.handle and state.handle, and
** its thread id as state.thread_id (keys the tables have: the stores
** allocate nothing), so that a thread that runs is watched and named even
** when a hook raises as this returns. */
static int core_worker_start (lua_State *L) {
  size_t srclen;
  const char *src = luaL_checklstring(L, 1, &srclen);
  int eval = lua_toboolean(L, 2), jit = lua_toboolean(L, 6), err;
  Handle *h;
  mc_Thread *t;
  luaL_checktype(L, 7, LUA_TTABLE);
  luaL_checktype(L, 8, LUA_TTABLE);
  lua_settop(L, 8);
  lua_remove(L, 6);  /* source, eval, data, transfer, ports, watch, state */
  luaL_argcheck(L, lua_istable(L, 5) && mc_rawlen(L, 5) == 1, 5,
                "array of one port expected");
  mc_ctx_hub(L);  /* raises while the state closes: nothing made yet */
  h = (Handle *)mc_newuserdata(L, sizeof(Handle), 0);
  h->t = NULL;
  h->watched = 0;
  h->link.prev = h->link.next = NULL;
  luaL_getmetatable(L, WORKER_MT);
  lua_setmetatable(L, -2);  /* ..., watch, state, handle */
  t = (mc_Thread *)calloc(1, sizeof(mc_Thread));
  if (t == NULL || pthread_mutex_init(&t->lock, NULL) != 0) {
    free(t);
    return luaL_error(L, "not enough memory");
  }
  t->refs = 1;
  t->thread_id = (lua_Integer)__atomic_add_fetch(&last_thread_id, 1,
                                                 __ATOMIC_RELAXED);
  h->t = t;  /* from here on the handle frees t */
  mc_ctx_link(L, &h->link, close_handle);
  t->source = dup_bytes(src, srclen);
  t->srclen = srclen;
  t->eval = eval;
  t->jit = jit;
  t->signal = take_stop_signal();
  t->path = dup_field(L, "path");
  t->cpath = dup_field(L, "cpath");
  if (t->source == NULL || t->path == NULL || t->cpath == NULL
      || !dup_home(L, t))
    return luaL_error(L, "not enough memory");
  if ((t->hub = mc_hub_new()) == NULL)
    return luaL_error(L, "cannot start a worker: %s", strerror(errno));
  t->parent = mc_ctx_hub(L);
  mc_hub_incref(t->parent);
  t->parent_id = mc_ctx_register(L, 8);
  /* Both messages are committed before the thread starts, so the worker
  ** owns them from its first instruction; they go back to their objects
  ** if it cannot start. */
  t->lent = 1;
  lua_pushnil(L);
  t->port = mc_message_make(L, 9, 5, NULL);  /* ..., handle, nil, plist */
  lua_rawgeti(L, 5, 1);
  if (listed(L, 4, lua_gettop(L))) {  /* it would be lent twice */
    mc_message_unlend(L, 10, t->port);
    t->port = NULL;
    luaL_argerror(L, 5, "the port is in the transfer list");
  }
  lua_pop(L, 1);
  t->data = mc_message_make(L, 3, 4, NULL);  /* ..., plist, list */
  mc_message_commit(L, 10);
  mc_message_commit(L, 11);
  t->lent = 0;
  t->refs++;  /* the thread's */
  if ((err = start_thread(t)) != 0) {
    mc_Msg *m[2];
    int i;
    t->refs--;
    m[0] = t->port;
    m[1] = t->data;
    t->port = t->data = NULL;
    for (i = 0; i < 2; i++) {
      lua_pushvalue(L, 10 + i);
      if (mc_message_fill(L, m[i]) != 0)
        lua_pop(L, 1);  /* its error: the start's is the one to raise */
      lua_pop(L, 1);
    }
    return luaL_error(L, "cannot start a worker: %s", strerror(err));
  }
  t->started = 1;
  h->watched = 1;
  mc_keep_loaded();
  mc_ctx_wake(L);  /* a live worker keeps the scheduler going */
  lua_settop(L, 8);
  lua_pushliteral(L, "handle");
  lua_pushvalue(L, 8);
  lua_rawset(L, 6);
  lua_pushliteral(L, "handle");
  lua_pushvalue(L, 8);
  lua_rawset(L, 7);
  lua_pushliteral(L, "thread_id");
  lua_pushinteger(L, t->thread_id);
  lua_rawset(L, 7);
  return 1;
}

/* terminate(handle): asks the worker to stop, wherever it is. */
static int core_worker_terminate (lua_State *L) {
  Handle *h = check_handle(L);
  if (h->t != NULL)
    stop_thread(h->t, 1);
  return 0;
}

/* worker_reported(handle): the error event of the ended worker has had its
** turn: dispatched, or reported as no listener took it. Never raises for
** a handle. */
static int core_worker_reported (lua_State *L) {
  Handle *h = check_handle(L);
  if (h->t != NULL)
    h->t->reported = 1;
  return 0;
}

/* worker_result(handle): when the worker has ended, true, its exit code,
** the error that ended it (a serialized string, or nil), its traceback
** (or the error's text, as a string, when there is no error value) and,
** with the serialized error, its tostring; else false. */
static int core_worker_result (lua_State *L) {
  Handle *h = check_handle(L);
  mc_Thread *t = h->t;
  int done;
  if (t == NULL)
    return 0;
  pthread_mutex_lock(&t->lock);
  done = t->done;
  pthread_mutex_unlock(&t->lock);
  if (!done) {
    lua_pushboolean(L, 0);
    return 1;
  }
  join_thread(t);  /* it has only to return now */
  lua_pushboolean(L, 1);
  lua_pushinteger(L, t->code);
  if (t->error != NULL) {
    size_t len;
    const unsigned char *b = mc_msg_data(t->error, &len);
    lua_pushlstring(L, (const char *)b, len);
  }
  else
    lua_pushnil(L);
  if (t->trace != NULL)
    lua_pushstring(L, t->trace);
  else
    lua_pushnil(L);
  if (t->text != NULL)
    lua_pushlstring(L, t->text, t->textlen);
  else
    lua_pushnil(L);
  h->watched = 0;  /* only now: a push may run a finalizer that calls the
                   ** handle's __gc by hand, which frees t when unwatched */
  return 5;
}

/* }====================================================== */


static const mc_Type handle_type = {"Worker", WORKER_MT, 0, 0, NULL, NULL,
                                     NULL, NULL, NULL, NULL, NULL, NULL,
                                     NULL, NULL, NULL, NULL};

void mc_worker_open (lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"worker_start", core_worker_start},
    {"worker_terminate", core_worker_terminate},
    {"worker_result", core_worker_result},
    {"worker_reported", core_worker_reported},
    {"worker_port", core_worker_port},
    {"worker_data", core_worker_data},
    {"worker_fail", core_worker_fail},
    {"worker_exit", core_worker_exit},
    {"worker_luv", core_worker_luv},
    {"worker_stopfd", core_worker_stopfd},
    {"worker_stopping", core_worker_stopping},
    {"thread_id", core_thread_id},
    {NULL, NULL}
  };
  int ctx = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, HOME_KEY);
  if (lua_isnil(L, -1)) {  /* not a worker: package finds the module now */
    lua_createtable(L, 2, 0);
    push_package_field(L, "path");
    lua_rawseti(L, -2, 1);
    push_package_field(L, "cpath");
    lua_rawseti(L, -2, 2);
    lua_setfield(L, LUA_REGISTRYINDEX, HOME_KEY);
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, WORKER_MT)) {  /* its __gc needs the context */
    static const luaL_Reg meta[] = {
      {"__gc", handle__gc},
      {NULL, NULL}
    };
    mc_setfuncs(L, meta, mc_ctx_upvalues(L, ctx));
  }
  lua_pop(L, 1);
  if (this_thread(L) != NULL)
    make_memos(L);
  mc_ctx_add_type(L, &handle_type);
  mc_ctx_setfuncs(L, funcs);
}
