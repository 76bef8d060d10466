/* MPI backend of the comm layer (cohort/comm.h, cohort/comm_mpi.h): collectives on host memory.
 * Blocking collectives run on the calling (main) thread through coll.c, which picks MPI's own
 * algorithm or cohort's ring. Non-blocking ones are queued to the group's progress thread
 * (progress.c), which runs them while the main thread computes; with COHORT_COMM_ALGO=mpi, or
 * when MPI does not provide MPI_THREAD_MULTIPLE, they are MPI's non-blocking collectives
 * instead, which advance only inside ch_comm_test / ch_comm_wait.
 * Every blocking collective and every wait runs between ch_watchdog_enter and _leave, so the
 * collective watchdog (cohort/watchdog.h) can tell how long this rank has waited in which one;
 * non-blocking starts and ch_comm_test return at once and are not marked. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/mpi_impl.h"
#include "cohort/comm_mpi.h"
#include "cohort/log.h"
#include "cohort/watchdog.h"

/* A request's backend state, kept in ch_request.state: a progress-thread job, or an MPI
 * non-blocking collective. */
typedef struct mpi_req {
  comm_job *job;
  MPI_Request req;
  void *scale_buf;    /* AVG: buffer divided by the group size on completion */
  size_t scale_count;
  int *counts;        /* partition arrays MPI reads until completion (owned) */
  ch_dtype dtype;
  int group_size;
} mpi_req;
_Static_assert(sizeof(mpi_req) <= sizeof(((ch_request *)0)->state), "mpi_req outgrew ch_request");

static const ch_comm_ops mpi_ops;
static void mpi_destroy(ch_group *g);

/* Copies in and out of the request's byte storage (memcpy keeps this free of aliasing UB). */
static mpi_req load_req(const ch_request *r) {
  mpi_req s;
  memcpy(&s, r->state, sizeof s);
  return s;
}
static void store_req(ch_request *r, const mpi_req *s) { memcpy(r->state, s, sizeof *s); }

static mpi_group *impl_of(const ch_group *g) { return (mpi_group *)g->impl; }

/* Validates the backend's limits shared by every collective (the front checked the group). */
static ch_status check_args(size_t count, ch_dtype t) {
  if (comm_mpi_type(t) == MPI_DATATYPE_NULL)
    return CH_FAIL(CH_ERR_UNSUPPORTED, "dtype %s is not supported by the MPI backend", ch_dtype_name(t));
  if (count > INT_MAX)
    return CH_FAIL(CH_ERR_INVALID, "collective of %zu elements exceeds the MPI count limit", count);
  return CH_OK;
}

/* Whether non-blocking collectives go to the progress thread: it calls MPI concurrently with
 * the main thread, which needs MPI_THREAD_MULTIPLE. */
static int use_thread(void) {
  static int v = -1;
  if (v < 0) {
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    v = coll_algo() != ALGO_MPI && level >= MPI_THREAD_MULTIPLE;
    if (coll_algo() != ALGO_MPI && !v)
      CH_DEBUG("MPI lacks MPI_THREAD_MULTIPLE: non-blocking collectives use MPI's, without a "
               "progress thread");
  }
  return v;
}

/* Runs (req == NULL) or starts collective `a` on group `g`. */
static ch_status run(const ch_group *g, const coll_args *a, ch_request *req) {
  mpi_group *m = impl_of(g);
  if (!req) {
    ch_watchdog_enter(coll_kind_name(a->kind));
    ch_status st = coll_run(m, &m->main, g->rank, g->size, a, 0);
    ch_watchdog_leave();
    return st;
  }
  mpi_req s = {.req = MPI_REQUEST_NULL, .dtype = a->dtype, .group_size = g->size};
  /* A group of one has nothing to wait for: MPI completes its collective at once, and a hand-off
   * to the thread would only add a wake-up per call (a 1-rank server's header broadcast). */
  if (use_thread() && g->size > 1) {
    CH_CHECK(progress_submit(m, g->rank, g->size, a, &s.job));
  } else {
    int rc = coll_start_mpi(m->main.comm, g->rank, g->size, a, 1, &s.req, &s.counts);
    if (rc != MPI_SUCCESS) return comm_mpi_fail(rc, coll_kind_name(a->kind));
    if (a->op == CH_AVG && (a->kind == K_ALLREDUCE || a->kind == K_REDUCE_SCATTER)) {
      s.scale_buf = a->buf;
      s.scale_count = a->kind == K_ALLREDUCE ? a->count : ch_part_count(a->count, g->size, g->rank);
    }
  }
  memset(req, 0, sizeof *req);
  store_req(req, &s);
  req->ops = &mpi_ops;
  req->active = 1;
  return CH_OK;
}

/* Fills `out` as a group over `comm` (adopted: freed by destroy). */
static ch_status adopt(MPI_Comm comm, ch_group *out) {
  mpi_group *m = calloc(1, sizeof *m);
  if (!m) {
    MPI_Comm_free(&comm);
    return CH_FAIL(CH_ERR_NOMEM, "group state");
  }
  comm_set_init(&m->main, comm);
  comm_set_init(&m->thread, MPI_COMM_NULL);
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm, &out->rank);
  MPI_Comm_size(comm, &out->size);
  out->ops = &mpi_ops;
  out->impl = m;
  if (use_thread()) {
    ch_status st = progress_prepare(m, out->rank, out->size);
    if (st != CH_OK) {
      mpi_destroy(out);
      memset(out, 0, sizeof *out);
      return st;
    }
  }
  return CH_OK;
}

ch_status ch_group_from_mpi(MPI_Comm c, ch_group *out) {
  memset(out, 0, sizeof *out);
  MPI_Comm dup = MPI_COMM_NULL;
  if (MPI_Comm_dup(c, &dup) != MPI_SUCCESS) return CH_FAIL(CH_ERR_MPI, "MPI_Comm_dup failed");
  return adopt(dup, out);
}

/* Only backend today: the world group is MPI's. */
ch_status ch_group_world(ch_group *out) { return ch_group_from_mpi(MPI_COMM_WORLD, out); }

MPI_Comm ch_group_mpi_comm(const ch_group *g) {
  return g && g->ops == &mpi_ops && g->impl ? impl_of(g)->main.comm : MPI_COMM_NULL;
}

uint64_t ch_comm_bytes_sent(const ch_group *g) {
  return g && g->ops == &mpi_ops && g->impl ? atomic_load(&impl_of(g)->bytes_sent) : 0;
}

static ch_status mpi_split(const ch_group *parent, int color, int key, ch_group *out) {
  memset(out, 0, sizeof *out);
  MPI_Comm sub = MPI_COMM_NULL;
  int rc = MPI_Comm_split(impl_of(parent)->main.comm, color < 0 ? MPI_UNDEFINED : color, key, &sub);
  if (rc != MPI_SUCCESS) return comm_mpi_fail(rc, "MPI_Comm_split");
  if (sub == MPI_COMM_NULL) { /* no color: this rank joins no group */
    out->rank = -1;
    return CH_OK;
  }
  return adopt(sub, out);
}

/* Stops the progress thread (its queue drained: callers complete their requests first), then
 * frees the communicators. */
static void mpi_destroy(ch_group *g) {
  mpi_group *m = g->impl;
  if (!m) return;
  progress_stop(m);
  uint64_t sent = atomic_load(&m->bytes_sent);
  const char *stats = getenv("COHORT_COMM_STATS");
  if (stats && !strcmp(stats, "1") && sent > 0) {
    int wr = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &wr);
    fprintf(stderr, "[cohort r%d] comm stats: group rank %d/%d sent %llu bytes\n", wr, g->rank,
            g->size, (unsigned long long)sent);
  }
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) {
    if (m->thread_ready) comm_set_free(&m->thread);
    comm_set_free(&m->main);
  }
  free(m);
}

static ch_status mpi_allreduce(const ch_group *g, void *buf, size_t count, ch_dtype t,
                               ch_redop op, ch_request *req) {
  CH_CHECK(check_args(count, t));
  coll_args a = {.kind = K_ALLREDUCE, .buf = buf, .count = count, .dtype = t, .op = op};
  return run(g, &a, req);
}

static ch_status mpi_reduce_scatter(const ch_group *g, const void *send, void *recv, size_t total,
                                    ch_dtype t, ch_redop op, ch_request *req) {
  CH_CHECK(check_args(total, t));
  coll_args a = {.kind = K_REDUCE_SCATTER, .send = send, .buf = recv, .count = total, .dtype = t,
                 .op = op};
  return run(g, &a, req);
}

static ch_status mpi_allgather(const ch_group *g, const void *send, void *recv, size_t total,
                               ch_dtype t, ch_request *req) {
  CH_CHECK(check_args(total, t));
  coll_args a = {.kind = K_ALLGATHER, .send = send, .buf = recv, .count = total, .dtype = t};
  return run(g, &a, req);
}

static ch_status mpi_broadcast(const ch_group *g, void *buf, size_t count, ch_dtype t, int root,
                               ch_request *req) {
  CH_CHECK(check_args(count, t));
  if (root < 0 || root >= g->size) return CH_FAIL(CH_ERR_INVALID, "broadcast root %d of %d", root, g->size);
  coll_args a = {.kind = K_BROADCAST, .buf = buf, .count = count, .dtype = t, .root = root};
  return run(g, &a, req);
}

static ch_status mpi_barrier(const ch_group *g, ch_request *req) {
  coll_args a = {.kind = K_BARRIER, .dtype = CH_U8};
  return run(g, &a, req);
}

/* Finishes an MPI request's work (AVG scaling unless `scale` is 0) and marks it inactive. */
static void complete(ch_request *req, mpi_req *s, int scale) {
  if (scale && s->scale_buf) comm_scale_avg(s->scale_buf, s->scale_count, s->dtype, s->group_size);
  free(s->counts);
  s->counts = NULL;
  s->scale_buf = NULL;
  s->job = NULL;
  store_req(req, s);
  req->active = 0;
}

static ch_status mpi_wait(ch_request *req) {
  mpi_req s = load_req(req);
  ch_watchdog_enter("wait");
  if (s.job) {
    progress_wait(s.job);
    ch_watchdog_leave();
    comm_job *j = s.job;
    complete(req, &s, 0);
    return progress_take(j);
  }
  int rc = MPI_Wait(&s.req, MPI_STATUS_IGNORE);
  ch_watchdog_leave();
  complete(req, &s, rc == MPI_SUCCESS);
  return rc == MPI_SUCCESS ? CH_OK : comm_mpi_fail(rc, "wait");
}

static ch_status mpi_test(ch_request *req, int *done) {
  mpi_req s = load_req(req);
  if (s.job) {
    *done = progress_done(s.job);
    if (!*done) return CH_OK;
    comm_job *j = s.job;
    complete(req, &s, 0);
    return progress_take(j);
  }
  int flag = 0;
  int rc = MPI_Test(&s.req, &flag, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) {
    complete(req, &s, 0);
    return comm_mpi_fail(rc, "test");
  }
  *done = flag;
  if (flag) complete(req, &s, 1);
  else store_req(req, &s);
  return CH_OK;
}

static const ch_comm_ops mpi_ops = {
    .name = "mpi",
    .allreduce = mpi_allreduce,
    .reduce_scatter = mpi_reduce_scatter,
    .allgather = mpi_allgather,
    .broadcast = mpi_broadcast,
    .barrier = mpi_barrier,
    .wait = mpi_wait,
    .test = mpi_test,
    .split = mpi_split,
    .destroy = mpi_destroy,
};
