/* MPI backend of the comm layer (cohort/comm.h, cohort/comm_mpi.h): collectives on host memory.
 * Every blocking collective and every wait runs between ch_watchdog_enter and _leave, so the
 * collective watchdog (cohort/watchdog.h) can tell how long this rank has waited in which one;
 * non-blocking starts and ch_comm_test return at once and are not marked. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/comm_mpi.h"
#include "cohort/watchdog.h"

/* The group's backend state. */
typedef struct mpi_group {
  MPI_Comm comm;
} mpi_group;

/* A request's backend state, kept in ch_request.state. */
typedef struct mpi_req {
  MPI_Request req;
  void *scale_buf;    /* AVG: buffer divided by the group size on completion */
  size_t scale_count;
  int *counts;        /* partition arrays MPI reads until completion (owned) */
  ch_dtype dtype;
  int group_size;
} mpi_req;
_Static_assert(sizeof(mpi_req) <= sizeof(((ch_request *)0)->state), "mpi_req outgrew ch_request");

static const ch_comm_ops mpi_ops;

/* Copies in and out of the request's byte storage (memcpy keeps this free of aliasing UB). */
static mpi_req load_req(const ch_request *r) {
  mpi_req s;
  memcpy(&s, r->state, sizeof s);
  return s;
}
static void store_req(ch_request *r, const mpi_req *s) { memcpy(r->state, s, sizeof *s); }

static MPI_Comm comm_of(const ch_group *g) { return ((const mpi_group *)g->impl)->comm; }

static MPI_Datatype mpi_type(ch_dtype t) {
  switch (t) {
    case CH_F32: return MPI_FLOAT;
    case CH_F64: return MPI_DOUBLE;
    case CH_I32: return MPI_INT32_T;
    case CH_I64: return MPI_INT64_T;
    case CH_U8: return MPI_UINT8_T;
    case CH_BF16: return MPI_DATATYPE_NULL; /* reductions on bf16 belong to the NCCL backend */
  }
  return MPI_DATATYPE_NULL;
}

static MPI_Op mpi_op(ch_redop op) {
  switch (op) {
    case CH_SUM: case CH_AVG: return MPI_SUM;
    case CH_MAX: return MPI_MAX;
    case CH_MIN: return MPI_MIN;
  }
  return MPI_OP_NULL;
}

static ch_status mpi_fail(int rc, const char *what) {
  char msg[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return CH_FAIL(CH_ERR_MPI, "%s failed: %s", what, msg);
}

/* Validates the backend's limits shared by every collective (the front checked the group). */
static ch_status check_args(size_t count, ch_dtype t) {
  if (mpi_type(t) == MPI_DATATYPE_NULL)
    return CH_FAIL(CH_ERR_UNSUPPORTED, "dtype %s is not supported by the MPI backend", ch_dtype_name(t));
  if (count > INT_MAX)
    return CH_FAIL(CH_ERR_INVALID, "collective of %zu elements exceeds the MPI count limit", count);
  return CH_OK;
}

static void scale_avg(void *buf, size_t count, ch_dtype t, int n) {
  if (t == CH_F32) {
    float s = 1.0f / (float)n, *x = buf;
    for (size_t i = 0; i < count; i++) x[i] *= s;
  } else if (t == CH_F64) {
    double s = 1.0 / n, *x = buf;
    for (size_t i = 0; i < count; i++) x[i] *= s;
  } else if (t == CH_I32) {
    int32_t *x = buf;
    for (size_t i = 0; i < count; i++) x[i] /= n;
  } else if (t == CH_I64) {
    int64_t *x = buf;
    for (size_t i = 0; i < count; i++) x[i] /= n;
  } else if (t == CH_U8) {
    uint8_t *x = buf;
    for (size_t i = 0; i < count; i++) x[i] = (uint8_t)(x[i] / n);
  }
}

/* Either completes at once (blocking) or records what finishing the request must do.
 * Takes ownership of `counts` (may be NULL). */
static ch_status finish_or_defer(const ch_group *g, ch_request *req, MPI_Request mreq, int rc,
                                 const char *what, void *avg_buf, size_t avg_count, ch_dtype t,
                                 int *counts) {
  if (rc != MPI_SUCCESS || !req) free(counts);
  if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
  if (req) {
    mpi_req s = {.req = mreq, .scale_buf = avg_buf, .scale_count = avg_count, .counts = counts,
                 .dtype = t, .group_size = g->size};
    memset(req, 0, sizeof *req);
    store_req(req, &s);
    req->ops = &mpi_ops;
    req->active = 1;
    return CH_OK;
  }
  if (avg_buf) scale_avg(avg_buf, avg_count, t, g->size);
  return CH_OK;
}

/* Fills `out` as a group over `comm` (adopted: freed by destroy). */
static ch_status adopt(MPI_Comm comm, ch_group *out) {
  mpi_group *m = malloc(sizeof *m);
  if (!m) {
    MPI_Comm_free(&comm);
    return CH_FAIL(CH_ERR_NOMEM, "group state");
  }
  m->comm = comm;
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm, &out->rank);
  MPI_Comm_size(comm, &out->size);
  out->ops = &mpi_ops;
  out->impl = m;
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
  return g && g->ops == &mpi_ops && g->impl ? comm_of(g) : MPI_COMM_NULL;
}

static ch_status mpi_split(const ch_group *parent, int color, int key, ch_group *out) {
  memset(out, 0, sizeof *out);
  MPI_Comm sub = MPI_COMM_NULL;
  int rc = MPI_Comm_split(comm_of(parent), color < 0 ? MPI_UNDEFINED : color, key, &sub);
  if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Comm_split");
  if (sub == MPI_COMM_NULL) { /* no color: this rank joins no group */
    out->rank = -1;
    return CH_OK;
  }
  return adopt(sub, out);
}

static void mpi_destroy(ch_group *g) {
  mpi_group *m = g->impl;
  if (m && m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
  free(m);
}

static ch_status mpi_allreduce(const ch_group *g, void *buf, size_t count, ch_dtype t,
                               ch_redop op, ch_request *req) {
  CH_CHECK(check_args(count, t));
  MPI_Request mreq = MPI_REQUEST_NULL;
  if (!req) ch_watchdog_enter("allreduce");
  int rc = req ? MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, mpi_type(t), mpi_op(op), comm_of(g), &mreq)
               : MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, mpi_type(t), mpi_op(op), comm_of(g));
  if (!req) ch_watchdog_leave();
  return finish_or_defer(g, req, mreq, rc, "allreduce", op == CH_AVG ? buf : NULL, count, t, NULL);
}

/* Per-rank counts and displacements of the standard 1/n partition of `total`, in one
 * allocation (displs = counts + size). MPI-3 needs them valid until a non-blocking call
 * completes, so a request owns them; a blocking call frees them on return. */
static ch_status partition(const ch_group *g, size_t total, int **counts) {
  *counts = malloc(sizeof(int) * 2 * (size_t)g->size);
  if (!*counts) return CH_FAIL(CH_ERR_NOMEM, "collective partition");
  for (int r = 0; r < g->size; r++) {
    (*counts)[r] = (int)ch_part_count(total, g->size, r);
    (*counts)[g->size + r] = (int)ch_part_offset(total, g->size, r);
  }
  return CH_OK;
}

static ch_status mpi_reduce_scatter(const ch_group *g, const void *send, void *recv, size_t total,
                                    ch_dtype t, ch_redop op, ch_request *req) {
  CH_CHECK(check_args(total, t));
  int *counts;
  CH_CHECK(partition(g, total, &counts));
  MPI_Request mreq = MPI_REQUEST_NULL;
  size_t mine = (size_t)counts[g->rank];
  if (!req) ch_watchdog_enter("reduce_scatter");
  int rc = req ? MPI_Ireduce_scatter(send, recv, counts, mpi_type(t), mpi_op(op), comm_of(g), &mreq)
               : MPI_Reduce_scatter(send, recv, counts, mpi_type(t), mpi_op(op), comm_of(g));
  if (!req) ch_watchdog_leave();
  return finish_or_defer(g, req, mreq, rc, "reduce_scatter", op == CH_AVG ? recv : NULL, mine, t,
                         counts);
}

static ch_status mpi_allgather(const ch_group *g, const void *send, void *recv, size_t total,
                               ch_dtype t, ch_request *req) {
  CH_CHECK(check_args(total, t));
  int *counts;
  CH_CHECK(partition(g, total, &counts));
  int *displs = counts + g->size;
  const char *own = (const char *)recv + (size_t)displs[g->rank] * ch_dtype_size(t);
  const void *sbuf = (send == own) ? MPI_IN_PLACE : send;
  MPI_Request mreq = MPI_REQUEST_NULL;
  if (!req) ch_watchdog_enter("allgather");
  int rc = req ? MPI_Iallgatherv(sbuf, counts[g->rank], mpi_type(t), recv, counts, displs,
                                 mpi_type(t), comm_of(g), &mreq)
               : MPI_Allgatherv(sbuf, counts[g->rank], mpi_type(t), recv, counts, displs,
                                mpi_type(t), comm_of(g));
  if (!req) ch_watchdog_leave();
  return finish_or_defer(g, req, mreq, rc, "allgather", NULL, 0, t, counts);
}

static ch_status mpi_broadcast(const ch_group *g, void *buf, size_t count, ch_dtype t, int root,
                               ch_request *req) {
  CH_CHECK(check_args(count, t));
  if (root < 0 || root >= g->size) return CH_FAIL(CH_ERR_INVALID, "broadcast root %d of %d", root, g->size);
  MPI_Request mreq = MPI_REQUEST_NULL;
  if (!req) ch_watchdog_enter("broadcast");
  int rc = req ? MPI_Ibcast(buf, (int)count, mpi_type(t), root, comm_of(g), &mreq)
               : MPI_Bcast(buf, (int)count, mpi_type(t), root, comm_of(g));
  if (!req) ch_watchdog_leave();
  return finish_or_defer(g, req, mreq, rc, "broadcast", NULL, 0, t, NULL);
}

static ch_status mpi_barrier(const ch_group *g, ch_request *req) {
  MPI_Request mreq = MPI_REQUEST_NULL;
  if (!req) ch_watchdog_enter("barrier");
  int rc = req ? MPI_Ibarrier(comm_of(g), &mreq) : MPI_Barrier(comm_of(g));
  if (!req) ch_watchdog_leave();
  return finish_or_defer(g, req, mreq, rc, "barrier", NULL, 0, CH_U8, NULL);
}

/* Finishes a request's work (AVG scaling unless `scale` is 0) and marks it inactive. */
static void complete(ch_request *req, mpi_req *s, int scale) {
  if (scale && s->scale_buf) scale_avg(s->scale_buf, s->scale_count, s->dtype, s->group_size);
  free(s->counts);
  s->counts = NULL;
  s->scale_buf = NULL;
  store_req(req, s);
  req->active = 0;
}

static ch_status mpi_wait(ch_request *req) {
  mpi_req s = load_req(req);
  ch_watchdog_enter("wait");
  int rc = MPI_Wait(&s.req, MPI_STATUS_IGNORE);
  ch_watchdog_leave();
  complete(req, &s, rc == MPI_SUCCESS);
  return rc == MPI_SUCCESS ? CH_OK : mpi_fail(rc, "wait");
}

static ch_status mpi_test(ch_request *req, int *done) {
  mpi_req s = load_req(req);
  int flag = 0;
  int rc = MPI_Test(&s.req, &flag, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) {
    complete(req, &s, 0);
    return mpi_fail(rc, "test");
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
