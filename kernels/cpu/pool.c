/* The CPU kernels' thread pool (see pool.h for the contract).
 *
 * A job is cut into `pieces` contiguous ranges that the caller and the workers claim one at a
 * time from a shared counter, so a worker that wakes late (or a core another process holds)
 * only takes fewer pieces. The claim counter carries the job's generation and piece count: a
 * worker can only claim a piece of job g while job g is still open, job g stays open (its caller
 * waits) until every piece is done, and the worker reads the job's function and range after its
 * claim; so a late worker never runs one job's function on the next job's ranges, nor counts a
 * piece of one job as done for the next.
 *
 * Idle workers spin for POOL_SPIN_NS, then sleep on a condition variable. The spin bridges the
 * gap between two kernels of one layer (a LayerNorm right after a residual add); the sleep
 * leaves the cores to OpenBLAS's own threads during a GEMM, which is where a training step
 * spends most of its time. */
#include "kernels/cpu/pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "cohort/kernels.h"
#include "cohort/log.h"

/* How long an idle worker polls before it sleeps: longer than the step from one kernel to the
 * next of a layer, far shorter than a GEMM. */
#define POOL_SPIN_NS 30000
/* Up to this many pieces per thread: small enough that claiming costs nothing, enough that a
 * late or preempted thread leaves its share to the others. */
#define PIECES_PER_THREAD 4
/* A bound on the pool's size (the pieces of a job, at most 4 per thread, are counted in 16
 * bits). */
#define POOL_MAX_THREADS 1024

static struct {
  pthread_mutex_t lock; /* with wake: the sleeping workers */
  pthread_cond_t wake;
  int sleepers;         /* workers waiting on wake (under lock) */
  _Atomic int busy;     /* a caller owns the workers and the job fields */
  _Atomic unsigned gen; /* the job generation the workers watch; bumped to publish */
  _Atomic uint64_t claim; /* CLAIM(gen, pieces, next unclaimed piece) */
  _Atomic int done;       /* pieces finished */
  _Atomic(cpu_range_fn) fn;
  _Atomic(void *) ctx;
  _Atomic int64_t n;
  _Atomic int quit;  /* workers exit at the next generation */
  _Atomic int want;  /* threads asked for by cpu_pool_set_threads (0 = not yet: 1) */
  int env;           /* COHORT_KERNEL_THREADS (0 = unset) */
  pthread_t *workers; /* owned by the busy holder */
  int nworkers;
  int started_for; /* the thread count the workers were started for */
} g_pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* A fork()ed child has none of the parent's workers: it starts with an empty pool. */
static void pool_atfork_child(void) {
  pthread_mutex_init(&g_pool.lock, NULL);
  pthread_cond_init(&g_pool.wake, NULL);
  g_pool.sleepers = 0;
  free(g_pool.workers);
  g_pool.workers = NULL;
  g_pool.nworkers = g_pool.started_for = 0;
  atomic_store(&g_pool.busy, 0);
}

static void pool_once(void) {
  const char *e = getenv("COHORT_KERNEL_THREADS");
  int v = e && *e ? atoi(e) : 0;
  g_pool.env = v < 1 ? 0 : v > POOL_MAX_THREADS ? POOL_MAX_THREADS : v;
  pthread_atfork(NULL, NULL, pool_atfork_child);
}

void cpu_pool_set_threads(int n) {
  atomic_store(&g_pool.want, n < 1 ? 1 : n > POOL_MAX_THREADS ? POOL_MAX_THREADS : n);
}

int ch_kernel_threads(void) { return cpu_pool_threads(); }

int cpu_pool_threads(void) {
  pthread_once(&g_once, pool_once);
  if (g_pool.env) return g_pool.env;
  int w = atomic_load_explicit(&g_pool.want, memory_order_relaxed);
  return w < 1 ? 1 : w;
}

/* The claim word: (gen << 32) | (pieces << 16) | next unclaimed piece. */
#define CLAIM(g, pieces, next) (((uint64_t)(g) << 32) | ((uint64_t)(pieces) << 16) | (uint64_t)(next))

/* Claims and runs pieces of job g until none is left (or job g is over). The job's fields are
 * read only after a claim succeeded: job g cannot end while one of its pieces is unfinished, so
 * they are still job g's (read before the claim, they could already be the next job's, stored
 * by its caller before it publishes). */
static void run_pieces(unsigned g) {
  uint64_t c = atomic_load(&g_pool.claim);
  for (;;) {
    if ((unsigned)(c >> 32) != g) return;
    int64_t pieces = (int64_t)((c >> 16) & 0xffff), p = (int64_t)(c & 0xffff);
    if (p >= pieces) return;
    if (!atomic_compare_exchange_weak(&g_pool.claim, &c, c + 1)) continue;
    cpu_range_fn fn = atomic_load_explicit(&g_pool.fn, memory_order_relaxed);
    void *ctx = atomic_load_explicit(&g_pool.ctx, memory_order_relaxed);
    int64_t n = atomic_load_explicit(&g_pool.n, memory_order_relaxed);
    fn(ctx, n * p / pieces, n * (p + 1) / pieces);
    atomic_fetch_add_explicit(&g_pool.done, 1, memory_order_release);
    c = atomic_load(&g_pool.claim);
  }
}

/* The next generation after `seen`: polled for POOL_SPIN_NS, then slept for. */
static unsigned wait_next(unsigned seen) {
  int64_t t0 = now_ns();
  for (unsigned i = 1;; i++) {
    unsigned g = atomic_load_explicit(&g_pool.gen, memory_order_acquire);
    if (g != seen) return g;
    cpu_relax();
    if ((i & 127) == 0 && now_ns() - t0 > POOL_SPIN_NS) break;
  }
  pthread_mutex_lock(&g_pool.lock);
  g_pool.sleepers++;
  unsigned g;
  while ((g = atomic_load_explicit(&g_pool.gen, memory_order_acquire)) == seen)
    pthread_cond_wait(&g_pool.wake, &g_pool.lock);
  g_pool.sleepers--;
  pthread_mutex_unlock(&g_pool.lock);
  return g;
}

static void *worker_main(void *arg) {
  unsigned seen = (unsigned)(uintptr_t)arg;
  for (;;) {
    seen = wait_next(seen);
    if (atomic_load(&g_pool.quit)) return NULL;
    run_pieces(seen);
  }
}

/* Bumps the generation (under the lock, so that a worker about to sleep sees it) and wakes the
 * sleepers. Returns the new generation. */
static unsigned publish(int pieces) {
  pthread_mutex_lock(&g_pool.lock);
  unsigned g = atomic_load(&g_pool.gen) + 1;
  atomic_store_explicit(&g_pool.claim, CLAIM(g, pieces, 0), memory_order_release);
  atomic_store_explicit(&g_pool.gen, g, memory_order_release);
  if (g_pool.sleepers) pthread_cond_broadcast(&g_pool.wake);
  pthread_mutex_unlock(&g_pool.lock);
  return g;
}

/* Busy holder only. */
static void stop_workers(void) {
  if (!g_pool.nworkers) return;
  atomic_store(&g_pool.quit, 1);
  publish(0);
  for (int i = 0; i < g_pool.nworkers; i++) pthread_join(g_pool.workers[i], NULL);
  atomic_store(&g_pool.quit, 0);
  free(g_pool.workers);
  g_pool.workers = NULL;
  g_pool.nworkers = 0;
}

/* At exit, the workers are joined (unless a caller is inside a job, e.g. exit() from another
 * thread mid-step: then they are left to the process's end). The pool stays marked busy, so
 * that kernels run after this (other exit handlers) run inline. */
static void pool_exit(void) {
  if (!atomic_exchange(&g_pool.busy, 1)) stop_workers();
}

/* Busy holder only: the workers for `threads` in all. Returns how many there are. */
static int ensure_workers(int threads) {
  if (g_pool.started_for == threads) return g_pool.nworkers;
  static int registered;
  if (!registered) registered = atexit(pool_exit) == 0;
  stop_workers();
  g_pool.started_for = threads;
  g_pool.workers = malloc(sizeof *g_pool.workers * (size_t)(threads - 1));
  if (!g_pool.workers) return 0;
  unsigned g = atomic_load(&g_pool.gen);
  /* Signals go to the main thread (cohort's handlers set flags it polls): the workers block
   * them all, as the MPI progress and watchdog threads do. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  for (int i = 0; i < threads - 1; i++) {
    if (pthread_create(&g_pool.workers[i], NULL, worker_main, (void *)(uintptr_t)g) != 0) {
      CH_WARN("kernel thread pool: started %d of %d threads", i + 1, threads);
      break;
    }
    g_pool.nworkers++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return g_pool.nworkers;
}

void cpu_parallel_for(int64_t n, int64_t grain, cpu_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int threads = cpu_pool_threads();
  int64_t pieces = n / grain;
  if (pieces > (int64_t)threads * PIECES_PER_THREAD) pieces = (int64_t)threads * PIECES_PER_THREAD;
  if (threads < 2 || pieces < 2 || atomic_exchange(&g_pool.busy, 1)) {
    fn(ctx, 0, n);
    return;
  }
  if (ensure_workers(threads) < 1) {
    atomic_store(&g_pool.busy, 0);
    fn(ctx, 0, n);
    return;
  }
  atomic_store_explicit(&g_pool.fn, fn, memory_order_relaxed);
  atomic_store_explicit(&g_pool.ctx, ctx, memory_order_relaxed);
  atomic_store_explicit(&g_pool.n, n, memory_order_relaxed);
  atomic_store_explicit(&g_pool.done, 0, memory_order_relaxed);
  run_pieces(publish((int)pieces));
  /* The last pieces are in the workers' hands: they finish within a piece's time, unless a
   * worker lost its core, so yield now and then. */
  for (unsigned i = 1; atomic_load_explicit(&g_pool.done, memory_order_acquire) < pieces; i++) {
    cpu_relax();
    if ((i & 1023) == 0) sched_yield();
  }
  atomic_store_explicit(&g_pool.busy, 0, memory_order_release);
}

/* cpu_parallel_chunks over chunk indices: [c0, c1) -> one call per chunk. */
typedef struct {
  cpu_range_fn fn;
  void *ctx;
  int64_t n, chunk;
} chunks_job;

static void chunks_run(void *p, int64_t c0, int64_t c1) {
  const chunks_job *j = p;
  for (int64_t c = c0; c < c1; c++) {
    int64_t end = (c + 1) * j->chunk;
    j->fn(j->ctx, c * j->chunk, end < j->n ? end : j->n);
  }
}

void cpu_parallel_chunks(int64_t n, int64_t chunk, cpu_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (chunk < 1) chunk = 1;
  chunks_job j = {fn, ctx, n, chunk};
  cpu_parallel_for((n + chunk - 1) / chunk, 1, chunks_run, &j);
}

typedef struct {
  cpu_sum_fn fn;
  void *ctx;
  int64_t chunk;
  double *partial;
} sum_job;

static void sum_run(void *p, int64_t begin, int64_t end) {
  const sum_job *j = p;
  j->partial[begin / j->chunk] = j->fn(j->ctx, begin, end);
}

double cpu_parallel_sum(int64_t n, int64_t chunk, cpu_sum_fn fn, void *ctx) {
  if (n <= 0) return 0.0;
  if (chunk < 1) chunk = 1;
  int64_t nchunks = (n + chunk - 1) / chunk;
  if (nchunks == 1) return fn(ctx, 0, n);
  double local[64];
  double *partial = nchunks <= 64 ? local : malloc(sizeof *partial * (size_t)nchunks);
  if (!partial) { /* no memory for the partials: the same sums, one after the other */
    double total = 0.0;
    for (int64_t c = 0; c < nchunks; c++)
      total += fn(ctx, c * chunk, (c + 1) * chunk < n ? (c + 1) * chunk : n);
    return total;
  }
  sum_job j = {fn, ctx, chunk, partial};
  cpu_parallel_chunks(n, chunk, sum_run, &j);
  double total = 0.0;
  for (int64_t c = 0; c < nchunks; c++) total += partial[c];
  if (partial != local) free(partial);
  return total;
}
