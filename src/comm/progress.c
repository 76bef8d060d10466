/* The progress thread: runs a group's non-blocking collectives to completion, one at a time in
 * the order they were started (the same on every rank, as the callers guarantee), on the
 * group's second communicator so they never match the main thread's blocking calls. They
 * progress while the main thread computes, not only inside ch_comm_test. The thread waits by
 * polling MPI_Test with back-off (ring.c), never spinning in MPI_Wait, so it takes little
 * from compute on a core it shares. One thread per group: a single process-wide FIFO could
 * deadlock when two groups' collectives are started in different orders on different ranks.
 * Threads are stopped by ch_group_destroy and, for groups still alive, before MPI_Finalize. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/mpi_impl.h"
#include "cohort/runtime.h"

struct comm_job {
  coll_args a;
  int rank, size;
  progress *p;
  comm_job *next;
  _Atomic int done;
  ch_status st;
  char msg[512]; /* the thread's error message, re-raised by the waiting thread */
};

struct progress {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t work, finished;
  comm_job *head, *tail;
  int stop;
  mpi_group *m;
  progress *next_live; /* registry of running threads (main thread only) */
};

static progress *g_live;
static int g_hook;

static void *progress_main(void *arg) {
  progress *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->head && !p->stop) pthread_cond_wait(&p->work, &p->mu);
    comm_job *j = p->head;
    if (!j) break; /* stopping with an empty queue */
    p->head = j->next;
    if (!p->head) p->tail = NULL;
    pthread_mutex_unlock(&p->mu);
    ch_status st = coll_run(p->m, &p->m->thread, j->rank, j->size, &j->a, 1);
    if (st != CH_OK) {
      snprintf(j->msg, sizeof j->msg, "%s", ch_error_message());
      ch_error_clear();
    }
    pthread_mutex_lock(&p->mu);
    j->st = st;
    /* The waiting thread may free the job as soon as it sees this: not touched after it. */
    atomic_store_explicit(&j->done, 1, memory_order_release);
    pthread_cond_broadcast(&p->finished);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void stop_all(void *ctx) {
  (void)ctx;
  while (g_live) progress_stop(g_live->m);
}

ch_status progress_prepare(mpi_group *m, int rank, int size) {
  MPI_Comm dup = MPI_COMM_NULL;
  int rc = MPI_Comm_dup(m->main.comm, &dup);
  if (rc != MPI_SUCCESS) return comm_mpi_fail(rc, "MPI_Comm_dup for the progress thread");
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  comm_set_init(&m->thread, dup);
  m->thread_ready = 1;
  rc = size > 1 ? comm_set_prepare(&m->thread, rank) : MPI_SUCCESS;
  return rc == MPI_SUCCESS ? CH_OK : comm_mpi_fail(rc, "node communicators");
}

static ch_status start_thread(mpi_group *m) {
  progress *p = calloc(1, sizeof *p);
  if (!p) return CH_FAIL(CH_ERR_NOMEM, "progress thread state");
  p->m = m;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work, NULL);
  pthread_cond_init(&p->finished, NULL);
  /* Signals go to the main thread (cohort's handlers set flags it polls). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = pthread_create(&p->thread, NULL, progress_main, p);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    pthread_cond_destroy(&p->finished);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return CH_FAIL(CH_ERR_INTERNAL, "cannot start the progress thread (error %d)", rc);
  }
  if (!g_hook) {
    CH_CHECK(ch_runtime_on_finalize(stop_all, NULL));
    g_hook = 1;
  }
  p->next_live = g_live;
  g_live = p;
  m->prog = p;
  return CH_OK;
}

ch_status progress_submit(mpi_group *m, int rank, int size, const coll_args *a, comm_job **out) {
  *out = NULL;
  if (!m->thread_ready) CH_CHECK(progress_prepare(m, rank, size));
  if (!m->prog) CH_CHECK(start_thread(m));
  comm_job *j = calloc(1, sizeof *j);
  if (!j) return CH_FAIL(CH_ERR_NOMEM, "collective job");
  j->a = *a;
  j->rank = rank;
  j->size = size;
  j->p = m->prog;
  progress *p = m->prog;
  pthread_mutex_lock(&p->mu);
  if (p->tail) p->tail->next = j;
  else p->head = j;
  p->tail = j;
  pthread_cond_signal(&p->work);
  pthread_mutex_unlock(&p->mu);
  *out = j;
  return CH_OK;
}

int progress_done(const comm_job *j) {
  return atomic_load_explicit(&j->done, memory_order_acquire);
}

void progress_wait(comm_job *j) {
  if (progress_done(j)) return;
  progress *p = j->p;
  pthread_mutex_lock(&p->mu);
  while (!atomic_load_explicit(&j->done, memory_order_acquire))
    pthread_cond_wait(&p->finished, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

ch_status progress_take(comm_job *j) {
  ch_status st = j->st;
  ch_status out = st == CH_OK ? CH_OK : CH_FAIL(st, "%s", j->msg);
  free(j);
  return out;
}

void progress_stop(mpi_group *m) {
  progress *p = m->prog;
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_signal(&p->work);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  for (progress **q = &g_live; *q; q = &(*q)->next_live)
    if (*q == p) {
      *q = p->next_live;
      break;
    }
  pthread_cond_destroy(&p->finished);
  pthread_cond_destroy(&p->work);
  pthread_mutex_destroy(&p->mu);
  free(p);
  m->prog = NULL;
}
