/*
** hub.c: the wake-up point of one Lua state's scheduler. Pure C, no Lua.
** Other threads (and finalizers anywhere) tell a hub that one of its
** objects has news by queueing that object's id; the hub's own thread
** takes the ids, and sleeps while there are none: on Linux on the `news`
** word itself (a futex), elsewhere and once the descriptor is exposed in
** poll(2) on the hub's descriptor. The descriptor (an eventfd on Linux, a
** pipe elsewhere) is readable while news waits, so a host event loop can
** wait on it too (mc.pollfd), and a signal interrupts the wait.
**
** The descriptor is written only when someone may be waiting on it: the
** hub's own thread in poll(2), or a host loop once the descriptor was
** exposed. `signalled` says it holds a wake-up not yet drained; notifying,
** pinging and draining all happen under the lock, so the descriptor is
** readable exactly while `signalled` is set, and no wake-up is lost.
**
** Before it sleeps, mc_hub_wait watches the `news` word for a few tens of
** microseconds (mc_hub_spin): a thread that answers at once is then seen
** without a system call on either side, as the notifier writes the
** descriptor only for a sleeper. It spins only while its waits end soon
** (`warm`), so an idle thread sleeps at once and costs no CPU, and after
** a spin that missed it skips the next 2, 4, ... 64 spins, so that two
** threads sharing one CPU do not spin in each other's way.
*/
#if defined(__linux__) && !defined(MC_USE_PIPE)
#define MC_EVENTFD 1  /* else a pipe; make test builds both */
#endif
#ifdef __linux__
#define _GNU_SOURCE  /* ppoll */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#ifdef MC_EVENTFD
#include <sys/eventfd.h>
#endif
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#define MC_FUTEX 1
#endif

#include "mc.h"

static int open_fds (int fd[2]) {
#ifdef MC_EVENTFD
  fd[0] = fd[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  return fd[0] >= 0;
#else
  int i;
  if (pipe(fd) != 0)
    return 0;
  for (i = 0; i < 2; i++) {
    fcntl(fd[i], F_SETFD, FD_CLOEXEC);
    fcntl(fd[i], F_SETFL, fcntl(fd[i], F_GETFL) | O_NONBLOCK);
  }
  return 1;
#endif
}

static void close_fds (int fd[2]) {
  if (fd[0] < 0)
    return;
  close(fd[0]);
  if (fd[1] != fd[0])
    close(fd[1]);
  fd[0] = fd[1] = -1;
}

/* Makes the read end of open_fds's pair readable; whether it is now. */
static int write_one (int fd) {
#ifdef MC_EVENTFD
  uint64_t one = 1;
  return write(fd, &one, sizeof one) > 0;
#else
  char one = 1;
  return write(fd, &one, 1) > 0;
#endif
}

/* A lock held only for a few hundred nanoseconds, taken by threads that
** are awake: on glibc an adaptive one, which spins a little before it
** sleeps, so that two threads passing messages do not make a system call
** each time they meet at it. Returns 0 or an errno. */
int mc_lock_init (pthread_mutex_t *m) {
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
  pthread_mutexattr_t a;
  int r = pthread_mutexattr_init(&a);
  if (r != 0)
    return r;
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
  r = pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
  return r;
#else
  return pthread_mutex_init(m, NULL);
#endif
}

static uint64_t serials;  /* hubs made so far: changed atomically */

mc_Hub *mc_hub_new (void) {
  mc_Hub *h = (mc_Hub *)calloc(1, sizeof(mc_Hub));
  if (h == NULL)
    return NULL;
  if (!open_fds(h->fd)) {
    free(h);
    return NULL;
  }
  if ((errno = mc_lock_init(&h->lock)) != 0) {
    close_fds(h->fd);
    free(h);
    return NULL;
  }
  h->refs = 1;
  h->alive = 1;
  h->stopfd[0] = h->stopfd[1] = -1;
  h->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
  return h;
}

void mc_hub_incref (mc_Hub *h) {
  __atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
}

void mc_hub_decref (mc_Hub *h) {
  if (__atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    close_fds(h->fd);
    close_fds(h->stopfd);
    free(h->ids);
    pthread_mutex_destroy(&h->lock);
    free(h);
  }
}

/* Makes the descriptor readable, once. Called with the lock held. */
static void signal_fd (mc_Hub *h) {
  if (!h->signalled && h->fd[1] >= 0)
    h->signalled = write_one(h->fd[1]);  /* a full counter or pipe is
                                         ** readable anyway */
}

/* Takes the wake-up out of the descriptor. Called with the lock held. */
static void drain_fd (mc_Hub *h) {
  if (h->signalled) {
#ifdef MC_EVENTFD
    uint64_t v;
    while (read(h->fd[0], &v, sizeof v) < 0 && errno == EINTR)
      ;
#else
    char buf[64];
    while (read(h->fd[0], buf, sizeof buf) > 0 || errno == EINTR)
      ;
#endif
    h->signalled = 0;
  }
}

#ifdef __linux__
/* The time to sleep as a timespec at *ts (at most 1e6 seconds), or NULL
** for no limit (seconds < 0). */
static struct timespec *timeout_of (double seconds, struct timespec *ts) {
  if (seconds < 0)
    return NULL;
  if (seconds > 1e6)
    seconds = 1e6;
  ts->tv_sec = (time_t)seconds;
  ts->tv_nsec = (long)((seconds - (double)ts->tv_sec) * 1e9);
  return ts;
}
#endif

#ifdef MC_FUTEX
/* The hub's own thread sleeps on the `news` word while it is not exposed:
** one system call on each side, where the descriptor takes a write, a
** poll and a read. */
static void futex_wake (mc_Hub *h) {
  syscall(SYS_futex, &h->news, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void futex_sleep (mc_Hub *h, double seconds) {
  struct timespec ts;
  syscall(SYS_futex, &h->news, FUTEX_WAIT_PRIVATE, 0,
          timeout_of(seconds, &ts), NULL, 0);
}
#endif

/*
** Wakes whoever waits for the hub's news. Called with the lock held; a
** thread asleep on the futex is woken by the caller once it has let go of
** the lock (returns 1 then), so that the woken thread does not at once
** block on that lock while the caller still holds it.
*/
static int wake (mc_Hub *h) {
#ifdef MC_FUTEX
  if (h->waiting == 2) {
    h->waiting = 3;  /* woken: later news needs no other wake */
    return 1;
  }
  if (h->waiting == 3)
    return 0;
#endif
  if (h->waiting || h->exposed)
    signal_fd(h);
  return 0;
}

/* The wake that wake() left to its caller, after the lock. It may come
** late, after the sleeper woke on its own and began another sleep, which
** it then ends early: the waits of mc_hub_wait may return early anyway
** (a signal does the same), and their callers look again. */
static void wake_after (mc_Hub *h, int futex) {
#ifdef MC_FUTEX
  if (futex)
    futex_wake(h);
#else
  (void)h;
  (void)futex;
#endif
}

/* Ids a hub keeps before it asks its state to look at every object: a
** state that takes messages without waiting (receive with messages
** always there) does not drain its hub, and each arrival after it looked
** tells it again. */
#define IDS_MAX 4096

void mc_hub_notify (mc_Hub *h, uint32_t id) {
  int futex = 0;
  pthread_mutex_lock(&h->lock);
  if (h->alive) {
    if (h->n == 0 || h->ids[h->n - 1] != id) {  /* else told already, and
                                               ** not yet taken */
      if (h->n == h->cap && h->cap < IDS_MAX) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        uint32_t *ids = (uint32_t *)realloc(h->ids, cap * sizeof *ids);
        if (ids != NULL) {
          h->ids = ids;
          h->cap = cap;
        }
      }
      if (h->n < h->cap)
        h->ids[h->n++] = id;
      else
        h->overflow = 1;  /* full, or out of memory: the hub's state
                          ** looks at everything */
    }
    __atomic_store_n(&h->news, 1, __ATOMIC_RELEASE);
    futex = wake(h);
  }
  pthread_mutex_unlock(&h->lock);
  wake_after(h, futex);
}

void mc_hub_ping (mc_Hub *h) {
  pthread_mutex_lock(&h->lock);
  if (h->exposed)
    signal_fd(h);
  pthread_mutex_unlock(&h->lock);
}

int mc_hub_expose (mc_Hub *h) {
  int fd;
  pthread_mutex_lock(&h->lock);
  h->exposed = 1;
  if (h->n > 0 || h->stop || h->overflow)
    signal_fd(h);
  fd = h->fd[0];
  pthread_mutex_unlock(&h->lock);
  return fd;
}

size_t mc_hub_queued (mc_Hub *h) {
  size_t n;
  pthread_mutex_lock(&h->lock);
  n = h->n;
  pthread_mutex_unlock(&h->lock);
  return n;
}

int mc_hub_pending (mc_Hub *h) {
  int r;
  pthread_mutex_lock(&h->lock);
  r = h->n > 0 || h->stop || h->overflow;
  pthread_mutex_unlock(&h->lock);
  return r;
}

void mc_hub_stop (mc_Hub *h) {
  int futex;
  pthread_mutex_lock(&h->lock);
  __atomic_store_n(&h->stop, 1, __ATOMIC_RELEASE);
  __atomic_store_n(&h->news, 1, __ATOMIC_RELEASE);
  futex = wake(h);
  signal_fd(h);
  if (h->stopfd[1] >= 0)
    write_one(h->stopfd[1]);
  pthread_mutex_unlock(&h->lock);
  wake_after(h, futex);
}

int mc_hub_stopped (mc_Hub *h) {
  return __atomic_load_n(&h->stop, __ATOMIC_ACQUIRE);
}

int mc_hub_stopfd (mc_Hub *h) {
  int fd;
  pthread_mutex_lock(&h->lock);
  if (h->stopfd[0] < 0 && open_fds(h->stopfd) && h->stop)
    write_one(h->stopfd[1]);
  fd = h->stopfd[0];
  pthread_mutex_unlock(&h->lock);
  return fd;
}

void mc_hub_close_stopfd (mc_Hub *h) {
  pthread_mutex_lock(&h->lock);
  close_fds(h->stopfd);
  pthread_mutex_unlock(&h->lock);
}

void mc_hub_close (mc_Hub *h) {
  pthread_mutex_lock(&h->lock);
  h->alive = 0;
  h->n = 0;
  close_fds(h->fd);
  pthread_mutex_unlock(&h->lock);
}

/* Sleeps in poll(2) until the descriptor or one of the n others at extra
** is readable, a signal arrives, or `seconds` pass (< 0: no limit).
** Called without the lock. extra has room for one more, at its end. */
static void sleep_on_fd (int fd, struct pollfd *extra, size_t n,
                         double seconds) {
  struct pollfd one, *p = n > 0 ? extra : &one;
  p[n].fd = fd;
  p[n].events = POLLIN;
  p[n].revents = 0;
#ifdef __linux__
  {
    struct timespec ts;
    ppoll(p, (nfds_t)n + 1, timeout_of(seconds, &ts), NULL);
  }
#else
  if (seconds > 1e6)
    seconds = 1e6;
  /* poll counts milliseconds: round up, so as not to wake before time */
  poll(p, (nfds_t)n + 1, seconds >= 0 ? (int)(seconds * 1e3 + 0.999) : -1);
#endif
}

static long spin_ns = 50000;  /* atomic */

long mc_hub_spin (long ns) {
  if (ns < 0)
    return __atomic_load_n(&spin_ns, __ATOMIC_RELAXED);
  return __atomic_exchange_n(&spin_ns, ns, __ATOMIC_RELAXED);
}

double mc_hub_now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One turn of a busy wait: tells the CPU, where it can be told. */
static void relax (void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Whether one of the n descriptors at extra is readable now. */
static int ready (struct pollfd *extra, size_t n) {
  return n > 0 && poll(extra, (nfds_t)n, 0) > 0;
}

/* Watches h->news (and every 32nd turn the n descriptors at extra) for up
** to `seconds`; returns whether news came or one is readable. */
static int spin (mc_Hub *h, double seconds, struct pollfd *extra, size_t n) {
  double end = mc_hub_now() + seconds;
  unsigned i;
  for (i = 1; ; i++) {
    if (__atomic_load_n(&h->news, __ATOMIC_ACQUIRE))
      return 1;
    relax();
    if (i % 32 == 0 && (ready(extra, n) || mc_hub_now() >= end))
      return ready(extra, n);
  }
}

/* Takes the lock after a spin saw news: the notifier holds it still, for
** a moment, and a thread that blocked on it would cost both sides a system
** call (the sleep here, the wake at the notifier's unlock). */
static void lock_after_spin (mc_Hub *h) {
  int i;
  for (i = 0; i < 1024; i++) {
    if (pthread_mutex_trylock(&h->lock) == 0)
      return;
    relax();
  }
  pthread_mutex_lock(&h->lock);
}

/* A wait that found news within this many seconds keeps the hub warm. */
#define SOON 1e-3

/* The wait of mc_hub_wait and mc_hub_sleep, with the lock held. */
static void doze (mc_Hub *h, double seconds, struct pollfd *extra,
                  size_t nextra) {
  if (seconds != 0 && !h->news && !h->signalled && h->fd[0] >= 0
      && !ready(extra, nextra)) {
    int fd = h->fd[0], spun = 0, caught = 0;
    double t0 = mc_hub_now(), s = (double)mc_hub_spin(-1) * 1e-9;
    if (seconds > 0 && s > seconds)
      s = seconds;
    if (h->skip > 0)
      h->skip--;
    else if (h->warm && s > 0) {
      pthread_mutex_unlock(&h->lock);
      caught = spin(h, s, extra, nextra);
      spun = 1;
      lock_after_spin(h);
    }
    if (!h->news && !h->signalled && !caught) {
      double left = seconds;
      if (seconds > 0 && (left -= mc_hub_now() - t0) < 0)
        left = 0;
#ifdef MC_FUTEX
      if (!h->exposed && nextra == 0) {
        h->waiting = 2;
        pthread_mutex_unlock(&h->lock);
        futex_sleep(h, left);
      }
      else
#endif
      {
        h->waiting = 1;
        pthread_mutex_unlock(&h->lock);
        sleep_on_fd(fd, extra, nextra, left);
      }
      pthread_mutex_lock(&h->lock);
      h->waiting = 0;
      caught = ready(extra, nextra);
    }
    h->warm = (h->news || caught) && mc_hub_now() - t0 <= SOON + s;
    if (spun) {  /* a spin that missed (the other thread needed this CPU,
                 ** or answers late) is not tried again for a while */
      h->misses = caught ? 0 : h->misses < 6 ? h->misses + 1 : 6;
      h->skip = caught ? 0 : 1u << h->misses;
    }
  }
}

void mc_hub_sleep (mc_Hub *h, double seconds, struct pollfd *extra,
                   size_t n) {
  pthread_mutex_lock(&h->lock);
  doze(h, seconds, extra, n);
  pthread_mutex_unlock(&h->lock);
}

size_t mc_hub_wait (mc_Hub *h, double seconds, uint32_t **buf, size_t *cap,
                    int *flags) {
  size_t n;
  pthread_mutex_lock(&h->lock);
  doze(h, seconds, NULL, 0);
  h->taken = h->bound = __atomic_load_n(&h->arrivals, __ATOMIC_RELAXED);
  n = h->n;
  if (n > 0) {
    uint32_t *ids = h->ids;
    size_t c = h->cap;
    h->ids = *buf;
    h->cap = *cap;
    *buf = ids;
    *cap = c;
    h->n = 0;
  }
  *flags = (h->stop ? MC_HUB_STOP : 0) | (h->overflow ? MC_HUB_ALL : 0);
  h->overflow = 0;
  __atomic_store_n(&h->news, h->stop, __ATOMIC_RELAXED);
  drain_fd(h);
  pthread_mutex_unlock(&h->lock);
  return n;
}

/* A thread of the library's own runs its code, so the library must not
** be unloaded (lua_close unloads C modules) while one may still run: from
** the first such thread on, the library is resident. */
static const char anchor = 0;  /* an address inside this library */

void mc_keep_loaded (void) {
  Dl_info info;
  if (dladdr(&anchor, &info) != 0 && info.dli_fname != NULL)
    dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
}
