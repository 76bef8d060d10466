/* Collective watchdog (include/cohort/watchdog.h): a helper thread that notices when the main
 * thread has waited in one collective for longer than the timeout, asks the other ranks where
 * they are, names the ranks at fault and aborts the job.
 *
 * The main thread publishes one word, state = seq << 1 | in_collective, plus the op name and
 * the step; enter/leave are plain stores. The thread samples the word every tick and times a
 * wait from the first tick that saw it, so a measured wait is never longer than the real one
 * and no rank aborts before the timeout. Every rank keeps one receive posted on the watchdog's
 * communicator: a rank that is not stalled answers a stall report with its own status, so a
 * rank whose main thread spins or sleeps outside collectives is told apart from one that is
 * stopped or dead (no answer at all). */
#include "cohort/watchdog.h"

#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/comm_mpi.h"
#include "cohort/log.h"
#include "cohort/runtime.h"

enum { WD_STALL = 1, WD_STATUS = 2 };
#define WD_TAG 0x7d0
#define WD_OP_LEN 24
#define WD_MAX_LISTED 6 /* ranks described one by one in a summary, the rest are counted */

/* Where one rank's main thread is. Sent as bytes: every rank runs the same build. */
typedef struct wd_report {
  int32_t kind;    /* WD_STALL: the sender timed out; WD_STATUS: an answer to a stall report */
  int32_t rank;    /* world rank */
  int32_t in_coll; /* 1: waiting in collective number `seq`, named op; 0: past it, computing */
  int32_t pad;
  int64_t step;    /* -1: not set */
  int64_t seq;
  double seconds;  /* waiting in the collective (in_coll) or computing since it ended */
  char op[WD_OP_LEN];
} wd_report;

static struct {
  /* Main thread only. */
  int on, depth;
  uint64_t seq;
  /* Written by the main thread, read by the watchdog thread. */
  _Atomic uint64_t state;
  _Atomic(const char *) op;
  _Atomic int64_t step;
  /* Thread control (under lock). */
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int stopping;
  /* Set by start; owned by the watchdog thread while it runs. */
  MPI_Comm comm;
  int multiple, rank, size, world_rank;
  int *world_of;        /* group rank -> world rank */
  double timeout, tick, grace;
  MPI_Request recv_req; /* the receive kept posted, into inbox */
  wd_report inbox, stall_msg;
  wd_report *table;     /* latest report from each group rank */
  double *got_at;       /* when it arrived, 0 = never */
  wd_report *outbox;    /* answers, one buffer per destination */
  MPI_Request *send_req;
} g_wd = {.step = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .comm = MPI_COMM_NULL};

void ch_watchdog_set_step(int64_t step) { atomic_store_explicit(&g_wd.step, step, memory_order_relaxed); }

void ch_watchdog_enter(const char *op) {
  if (!g_wd.on || g_wd.depth++ > 0) return;
  g_wd.seq++;
  atomic_store_explicit(&g_wd.op, op, memory_order_relaxed);
  /* Release: the thread that sees the new state also sees `op`. A plain store on x86. */
  atomic_store_explicit(&g_wd.state, g_wd.seq << 1 | 1, memory_order_release);
}

void ch_watchdog_leave(void) {
  if (!g_wd.on || g_wd.depth == 0 || --g_wd.depth > 0) return;
  atomic_store_explicit(&g_wd.state, g_wd.seq << 1, memory_order_release);
}

/* This rank's report, for the state word `st` first seen at time `since`. */
static wd_report make_report(int kind, uint64_t st, double since, double now) {
  wd_report r;
  memset(&r, 0, sizeof r);
  r.kind = kind;
  r.rank = g_wd.world_rank;
  r.in_coll = (int32_t)(st & 1);
  r.seq = (int64_t)(st >> 1);
  r.step = atomic_load_explicit(&g_wd.step, memory_order_relaxed);
  r.seconds = now - since;
  const char *op = atomic_load_explicit(&g_wd.op, memory_order_relaxed);
  snprintf(r.op, sizeof r.op, "%s", op ? op : "none");
  return r;
}

/* Completes a finished answer to `q`; returns whether its buffer is free again. */
static int send_free(int q) {
  if (g_wd.send_req[q] == MPI_REQUEST_NULL) return 1;
  int done = 0;
  MPI_Test(&g_wd.send_req[q], &done, MPI_STATUS_IGNORE);
  return done;
}

/* Takes every report that has arrived. Stall reports are answered with `mine` (kind STATUS)
 * unless mine is NULL (this rank has sent its own stall report to everyone). */
static void drain_inbox(const wd_report *mine) {
  for (;;) {
    int flag = 0;
    MPI_Status status;
    if (MPI_Test(&g_wd.recv_req, &flag, &status) != MPI_SUCCESS || !flag) return;
    int q = status.MPI_SOURCE;
    if (q >= 0 && q < g_wd.size) {
      g_wd.table[q] = g_wd.inbox;
      g_wd.table[q].op[WD_OP_LEN - 1] = '\0';
      g_wd.got_at[q] = ch_time();
      if (mine && g_wd.inbox.kind == WD_STALL && send_free(q)) {
        g_wd.outbox[q] = *mine;
        MPI_Isend(&g_wd.outbox[q], (int)sizeof(wd_report), MPI_BYTE, q, WD_TAG, g_wd.comm,
                  &g_wd.send_req[q]);
      }
    }
    if (MPI_Irecv(&g_wd.inbox, (int)sizeof(wd_report), MPI_BYTE, MPI_ANY_SOURCE, WD_TAG, g_wd.comm,
                  &g_wd.recv_req) != MPI_SUCCESS)
      return;
  }
}

/* Appendable message text, truncated (never overflowing) when too long. */
typedef struct wd_text {
  char s[6144];
  size_t n;
} wd_text;

__attribute__((format(printf, 2, 3))) static void add(wd_text *t, const char *fmt, ...) {
  if (t->n >= sizeof t->s - 1) return;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(t->s + t->n, sizeof t->s - t->n, fmt, ap);
  va_end(ap);
  if (k > 0) t->n = t->n + (size_t)k < sizeof t->s ? t->n + (size_t)k : sizeof t->s - 1;
}

static int cmp_int(const void *pa, const void *pb) {
  int a = *(const int *)pa, b = *(const int *)pb;
  return (a > b) - (a < b);
}

/* "rank 3" or "ranks 0-2,5" for the world ranks `r[0..n)` (sorted in place). */
static void add_ranks(wd_text *t, int *r, int n) {
  qsort(r, (size_t)n, sizeof *r, cmp_int);
  add(t, "rank%s ", n == 1 ? "" : "s");
  for (int i = 0; i < n;) {
    int j = i;
    while (j + 1 < n && r[j + 1] == r[j] + 1) j++;
    add(t, "%s%d", i ? "," : "", r[i]);
    if (j > i) add(t, "%s%d", j == i + 1 ? "," : "-", r[j]);
    i = j + 1;
  }
}

/* "allreduce (step 12, collective #345)". */
static void add_where(wd_text *t, const wd_report *r) {
  if (r->step >= 0)
    add(t, "%s (step %lld, collective #%lld)", r->op, (long long)r->step, (long long)r->seq);
  else
    add(t, "%s (collective #%lld)", r->op, (long long)r->seq);
}

/* The summary printed by the lowest stalled rank: who waits, who never came, who waits
 * elsewhere (a desync). `completed`: this rank's collective ended during the grace period, so
 * the ranks' answers may describe later states; only who was seen waiting is reliable. */
static void print_summary(const wd_report *me, double waited, int completed) {
  int n = g_wd.size, nwait = 0, nsilent = 0, nother = 0;
  int *wait = malloc(sizeof(int) * 2 * (size_t)n), *rest = wait ? wait + n : NULL;
  if (!wait) {
    ch_log(CH_LOG_ERROR, "collective watchdog: %s has waited %.1f s; aborting the job", me->op, waited);
    return;
  }
  for (int q = 0; q < n; q++) {
    const wd_report *r = &g_wd.table[q];
    if (g_wd.got_at[q] && r->in_coll && r->seq == me->seq && !strcmp(r->op, me->op))
      wait[nwait++] = r->rank;
    else if (!g_wd.got_at[q] || completed)
      rest[nsilent++] = g_wd.world_of[q];
    else
      nother++;
  }
  wd_text t = {.n = 0};
  add(&t, "collective watchdog: ");
  add_where(&t, me);
  if (completed) {
    add(&t, " took %.2f s on rank %d, over the %g s timeout, and completed while the ranks "
            "exchanged reports (a slow rank rather than a hung one); seen waiting in it: ",
        waited, me->rank, g_wd.timeout);
    add_ranks(&t, wait, nwait);
    if (nsilent) {
      add(&t, "; not seen waiting (the late ones are among them): ");
      add_ranks(&t, rest, nsilent);
    }
    add(&t, "; aborting the job (raise the timeout if waits this long are expected)");
    ch_log(CH_LOG_ERROR, "%s", t.s);
    free(wait);
    return;
  }
  add(&t, " waited %.1f s on ", waited);
  add_ranks(&t, wait, nwait);
  if (nsilent) {
    add(&t, "; ");
    add_ranks(&t, rest, nsilent);
    add(&t, " did not reach it (hung or dead)");
  }
  int listed = 0;
  for (int q = 0; q < n && nother; q++) {
    const wd_report *r = &g_wd.table[q];
    if (!g_wd.got_at[q] || (r->in_coll && r->seq == me->seq && !strcmp(r->op, me->op))) continue;
    if (listed++ == WD_MAX_LISTED) {
      add(&t, "; and %d more rank%s elsewhere", nother - WD_MAX_LISTED, nother - WD_MAX_LISTED == 1 ? "" : "s");
      break;
    }
    if (r->in_coll) {
      add(&t, "; desync: rank %d waits in ", r->rank);
      add_where(&t, r);
      continue;
    }
    if (r->seq < me->seq)
      add(&t, "; rank %d did not reach it (alive, computing", r->rank);
    else
      add(&t, "; desync: rank %d is past it (computing", r->rank);
    if (r->step >= 0) add(&t, " at step %lld", (long long)r->step);
    add(&t, " for %.1f s since collective #%lld ended)", r->seconds, (long long)r->seq);
  }
  add(&t, "; aborting the job");
  ch_log(CH_LOG_ERROR, "%s", t.s);
  free(wait);
}

/* Ends the job after a report. The pause lets the launcher forward what was just printed:
 * MPICH's Hydra kills the job on MPI_Abort and drops output it has not read yet (seen: 2 of 16
 * runs lost every rank's report when two ranks aborted within a few ms of each other). */
static _Noreturn void abort_job(void) {
  fflush(stderr);
  struct timespec pause = {0, 500 * 1000 * 1000};
  nanosleep(&pause, NULL);
  MPI_Abort(MPI_COMM_WORLD, 3);
  _Exit(3);
}

/* The stall protocol (MPI_THREAD_MULTIPLE): report to everyone, collect for the grace period,
 * let the lowest stalled rank print the summary, abort. */
static _Noreturn void stall(uint64_t st, double since) {
  double t0 = ch_time();
  wd_report *me = &g_wd.stall_msg;
  *me = make_report(WD_STALL, st, since, t0);
  g_wd.table[g_wd.rank] = *me;
  g_wd.got_at[g_wd.rank] = t0;
  /* One buffer for all sends: MPI-3 allows concurrent sends from the same memory. Requests
   * are freed at once; the job ends in any case. */
  for (int q = 0; q < g_wd.size; q++) {
    if (q == g_wd.rank) continue;
    MPI_Request r;
    if (MPI_Isend(me, (int)sizeof *me, MPI_BYTE, q, WD_TAG, g_wd.comm, &r) == MPI_SUCCESS)
      MPI_Request_free(&r);
  }
  /* The collective may still complete (a slow rank, not a hung one). The job ends anyway, as
   * the timeout promises, but the report must not claim a wait that ended. */
  double done_at = 0;
  struct timespec pause = {0, 20 * 1000 * 1000};
  while (ch_time() - t0 < g_wd.grace) {
    drain_inbox(NULL);
    if (!done_at && atomic_load_explicit(&g_wd.state, memory_order_acquire) != st) done_at = ch_time();
    nanosleep(&pause, NULL);
  }
  drain_inbox(NULL);
  int lowest = g_wd.rank;
  for (int q = 0; q < g_wd.rank; q++)
    if (g_wd.got_at[q] && g_wd.table[q].kind == WD_STALL) {
      lowest = q;
      break;
    }
  double waited = (done_at ? done_at : ch_time()) - since;
  if (lowest == g_wd.rank) {
    print_summary(me, waited, done_at != 0);
  } else {
    wd_text t = {.n = 0};
    add(&t, "collective watchdog: ");
    add_where(&t, me);
    add(&t, done_at ? " completed only after %.2f s" : " waited %.1f s", waited);
    add(&t, "; aborting the job (rank %d reports which ranks are at fault)", g_wd.world_of[lowest]);
    ch_log(CH_LOG_ERROR, "%s", t.s);
    /* Give the lowest rank time to print its summary and abort first. */
    double until = g_wd.got_at[lowest] + g_wd.grace + 2.0;
    while (ch_time() < until) nanosleep(&pause, NULL);
  }
  abort_job();
}

/* Below MPI_THREAD_MULTIPLE this thread may not talk to the others: report this rank alone. */
static _Noreturn void stall_alone(uint64_t st, double since) {
  double now = ch_time();
  wd_report me = make_report(WD_STALL, st, since, now);
  wd_text t = {.n = 0};
  add(&t, "collective watchdog: ");
  add_where(&t, &me);
  add(&t, " has waited %.1f s; another rank is hung or dead (MPI thread level below "
          "MULTIPLE: no reports from the other ranks); aborting the job", me.seconds);
  ch_log(CH_LOG_ERROR, "%s", t.s);
  abort_job();
}

static void *wd_main(void *arg) {
  (void)arg;
  uint64_t seen = 0;
  double since = ch_time();
  pthread_mutex_lock(&g_wd.lock);
  while (!g_wd.stopping) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    long ns = until.tv_nsec + (long)(g_wd.tick * 1e9);
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&g_wd.cond, &g_wd.lock, &until);
    if (g_wd.stopping) break;
    pthread_mutex_unlock(&g_wd.lock);
    uint64_t st = atomic_load_explicit(&g_wd.state, memory_order_acquire);
    double now = ch_time();
    if (st != seen) { /* a new collective, or the last one ended: restart the clock */
      seen = st;
      since = now;
    }
    if (g_wd.multiple) {
      wd_report mine = make_report(WD_STATUS, st, since, now);
      drain_inbox(&mine);
    }
    if ((st & 1) && now - since > g_wd.timeout) {
      if (g_wd.multiple) stall(st, since);
      stall_alone(st, since);
    }
    pthread_mutex_lock(&g_wd.lock);
  }
  pthread_mutex_unlock(&g_wd.lock);
  return NULL;
}

static void release(void) {
  free(g_wd.world_of);
  free(g_wd.table);
  free(g_wd.got_at);
  free(g_wd.outbox);
  free(g_wd.send_req);
  g_wd.world_of = NULL;
  g_wd.table = g_wd.outbox = NULL;
  g_wd.got_at = NULL;
  g_wd.send_req = NULL;
  if (g_wd.comm != MPI_COMM_NULL) MPI_Comm_free(&g_wd.comm);
  g_wd.comm = MPI_COMM_NULL;
}

/* Communicator, rank map, tables and the posted receive (MPI_THREAD_MULTIPLE only). */
static ch_status setup_messaging(const ch_group *g) {
  if (MPI_Comm_dup(ch_group_mpi_comm(g), &g_wd.comm) != MPI_SUCCESS)
    return CH_FAIL(CH_ERR_MPI, "watchdog: MPI_Comm_dup failed");
  MPI_Comm_set_errhandler(g_wd.comm, MPI_ERRORS_RETURN);
  int n = g_wd.size;
  g_wd.world_of = malloc(sizeof(int) * (size_t)n);
  g_wd.table = calloc((size_t)n, sizeof *g_wd.table);
  g_wd.got_at = calloc((size_t)n, sizeof *g_wd.got_at);
  g_wd.outbox = calloc((size_t)n, sizeof *g_wd.outbox);
  g_wd.send_req = malloc(sizeof(MPI_Request) * (size_t)n);
  int *mine = malloc(sizeof(int) * (size_t)n);
  if (!g_wd.world_of || !g_wd.table || !g_wd.got_at || !g_wd.outbox || !g_wd.send_req || !mine) {
    free(mine);
    return CH_FAIL(CH_ERR_NOMEM, "watchdog tables for %d ranks", n);
  }
  MPI_Group grp, world;
  MPI_Comm_group(g_wd.comm, &grp);
  MPI_Comm_group(MPI_COMM_WORLD, &world);
  for (int q = 0; q < n; q++) {
    mine[q] = q;
    g_wd.send_req[q] = MPI_REQUEST_NULL;
  }
  MPI_Group_translate_ranks(grp, n, mine, world, g_wd.world_of);
  MPI_Group_free(&grp);
  MPI_Group_free(&world);
  free(mine);
  if (MPI_Irecv(&g_wd.inbox, (int)sizeof(wd_report), MPI_BYTE, MPI_ANY_SOURCE, WD_TAG, g_wd.comm,
                &g_wd.recv_req) != MPI_SUCCESS)
    return CH_FAIL(CH_ERR_MPI, "watchdog: MPI_Irecv failed");
  return CH_OK;
}

static void stop_hook(void *ctx) {
  (void)ctx;
  ch_watchdog_stop();
}

ch_status ch_watchdog_start(const ch_group *g, double timeout_s) {
  if (ch_group_mpi_comm(g) == MPI_COMM_NULL) return CH_FAIL(CH_ERR_INVALID, "watchdog on a null group");
  if (g_wd.on) return CH_FAIL(CH_ERR_INVALID, "the watchdog is already running");
  if (!(timeout_s > 0)) return CH_OK;
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  g_wd.multiple = level >= MPI_THREAD_MULTIPLE;
  g_wd.rank = g->rank;
  g_wd.size = g->size;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_wd.world_rank);
  g_wd.timeout = timeout_s;
  /* A few ticks per timeout, and per grace period so that answers come in time. */
  g_wd.grace = timeout_s < 3.0 ? timeout_s : 3.0;
  g_wd.tick = g_wd.grace / 4 < 0.2 ? g_wd.grace / 4 : 0.2;
  if (g_wd.tick < 0.005) g_wd.tick = 0.005;
  g_wd.recv_req = MPI_REQUEST_NULL;
  if (g_wd.multiple) {
    ch_status st = setup_messaging(g);
    if (st != CH_OK) {
      if (g_wd.recv_req != MPI_REQUEST_NULL) {
        MPI_Cancel(&g_wd.recv_req);
        MPI_Wait(&g_wd.recv_req, MPI_STATUS_IGNORE);
      }
      release();
      return st;
    }
  }
  g_wd.depth = 0;
  g_wd.seq = 0;
  atomic_store(&g_wd.state, 0);
  atomic_store(&g_wd.op, NULL);
  g_wd.stopping = 0;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&g_wd.cond, &ca);
  pthread_condattr_destroy(&ca);
  /* Signals (SIGTERM, SIGUSR1 for preemption) belong to the main thread. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = pthread_create(&g_wd.thread, NULL, wd_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    pthread_cond_destroy(&g_wd.cond);
    if (g_wd.recv_req != MPI_REQUEST_NULL) {
      MPI_Cancel(&g_wd.recv_req);
      MPI_Wait(&g_wd.recv_req, MPI_STATUS_IGNORE);
    }
    release();
    return CH_FAIL(CH_ERR_NOMEM, "cannot start the watchdog thread: %s", strerror(rc));
  }
  g_wd.on = 1;
  /* ch_runtime_finalize stops the thread before MPI_Finalize (it must not call MPI after). */
  static int registered;
  if (!registered) registered = ch_runtime_on_finalize(stop_hook, NULL) == CH_OK;
  CH_DEBUG("collective watchdog: timeout %.1f s, %s", timeout_s,
           g_wd.multiple ? "reports across ranks" : "this rank only (MPI thread level below MULTIPLE)");
  return CH_OK;
}

void ch_watchdog_stop(void) {
  if (!g_wd.on) return;
  pthread_mutex_lock(&g_wd.lock);
  g_wd.stopping = 1;
  pthread_cond_signal(&g_wd.cond);
  pthread_mutex_unlock(&g_wd.lock);
  pthread_join(g_wd.thread, NULL);
  pthread_cond_destroy(&g_wd.cond);
  g_wd.on = 0;
  g_wd.depth = 0;
  if (g_wd.multiple) {
    if (g_wd.recv_req != MPI_REQUEST_NULL) {
      MPI_Cancel(&g_wd.recv_req);
      MPI_Wait(&g_wd.recv_req, MPI_STATUS_IGNORE);
    }
    /* Answers exist only when another rank stalled, and then the job is ending; still, a send
     * that does not complete within a second keeps its buffer (leaked) rather than have MPI
     * read freed memory. */
    int pending = 0;
    for (double t0 = ch_time();;) {
      pending = 0;
      for (int q = 0; q < g_wd.size; q++) pending += !send_free(q);
      if (!pending || ch_time() - t0 > 1.0) break;
      struct timespec pause = {0, 1000 * 1000};
      nanosleep(&pause, NULL);
    }
    if (pending) {
      for (int q = 0; q < g_wd.size; q++)
        if (g_wd.send_req[q] != MPI_REQUEST_NULL) MPI_Request_free(&g_wd.send_req[q]);
      g_wd.outbox = NULL;
    }
  }
  release();
}
