/* MPI backend of the comm layer: collectives on host memory.
 * Every blocking collective and ch_comm_wait runs between ch_watchdog_enter and _leave, so the
 * collective watchdog (cohort/watchdog.h) can tell how long this rank has waited in which one;
 * non-blocking starts and ch_comm_test return at once and are not marked. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/comm.h"
#include "cohort/watchdog.h"

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

/* Validates arguments shared by every collective. */
static ch_status check_args(const ch_group *g, size_t count, ch_dtype t) {
  if (!g || g->comm == MPI_COMM_NULL) return CH_FAIL(CH_ERR_INVALID, "collective on a null group");
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
    memset(req, 0, sizeof *req);
    req->req = mreq;
    req->scale_buf = avg_buf;
    req->scale_count = avg_count;
    req->dtype = t;
    req->group_size = g->size;
    req->counts = counts;
    req->active = 1;
    return CH_OK;
  }
  if (avg_buf) scale_avg(avg_buf, avg_count, t, g->size);
  return CH_OK;
}

ch_status ch_group_create(MPI_Comm world, ch_group *out) {
  memset(out, 0, sizeof *out);
  if (MPI_Comm_dup(world, &out->comm) != MPI_SUCCESS) return CH_FAIL(CH_ERR_MPI, "MPI_Comm_dup failed");
  MPI_Comm_set_errhandler(out->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(out->comm, &out->rank);
  MPI_Comm_size(out->comm, &out->size);
  return CH_OK;
}

ch_status ch_group_split(const ch_group *parent, int color, int key, ch_group *out) {
  memset(out, 0, sizeof *out);
  int rc = MPI_Comm_split(parent->comm, color, key, &out->comm);
  if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Comm_split");
  if (out->comm == MPI_COMM_NULL) { /* color MPI_UNDEFINED: this rank joins no group */
    out->rank = -1;
    return CH_OK;
  }
  MPI_Comm_set_errhandler(out->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(out->comm, &out->rank);
  MPI_Comm_size(out->comm, &out->size);
  return CH_OK;
}

void ch_group_destroy(ch_group *g) {
  if (g->comm != MPI_COMM_NULL && g->comm != 0) MPI_Comm_free(&g->comm);
  g->comm = MPI_COMM_NULL;
}

ch_status ch_comm_allreduce(const ch_group *g, void *buf, size_t count, ch_dtype t, ch_redop op,
                            ch_request *req) {
  CH_CHECK(check_args(g, count, t));
  MPI_Request mreq = MPI_REQUEST_NULL;
  if (!req) ch_watchdog_enter("allreduce");
  int rc = req ? MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, mpi_type(t), mpi_op(op), g->comm, &mreq)
               : MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, mpi_type(t), mpi_op(op), g->comm);
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

ch_status ch_comm_reduce_scatter(const ch_group *g, const void *send, void *recv, size_t total,
                                 ch_dtype t, ch_redop op, ch_request *req) {
  CH_CHECK(check_args(g, total, t));
  int *counts;
  CH_CHECK(partition(g, total, &counts));
  MPI_Request mreq = MPI_REQUEST_NULL;
  size_t mine = (size_t)counts[g->rank];
  if (!req) ch_watchdog_enter("reduce_scatter");
  int rc = req ? MPI_Ireduce_scatter(send, recv, counts, mpi_type(t), mpi_op(op), g->comm, &mreq)
               : MPI_Reduce_scatter(send, recv, counts, mpi_type(t), mpi_op(op), g->comm);
  if (!req) ch_watchdog_leave();
  return finish_or_defer(g, req, mreq, rc, "reduce_scatter", op == CH_AVG ? recv : NULL, mine, t,
                         counts);
}

ch_status ch_comm_allgather(const ch_group *g, const void *send, void *recv, size_t total,
                            ch_dtype t, ch_request *req) {
  CH_CHECK(check_args(g, total, t));
  int *counts;
  CH_CHECK(partition(g, total, &counts));
  int *displs = counts + g->size;
  const char *own = (const char *)recv + (size_t)displs[g->rank] * ch_dtype_size(t);
  const void *sbuf = (send == own) ? MPI_IN_PLACE : send;
  MPI_Request mreq = MPI_REQUEST_NULL;
  if (!req) ch_watchdog_enter("allgather");
  int rc = req ? MPI_Iallgatherv(sbuf, counts[g->rank], mpi_type(t), recv, counts, displs,
                                 mpi_type(t), g->comm, &mreq)
               : MPI_Allgatherv(sbuf, counts[g->rank], mpi_type(t), recv, counts, displs,
                                mpi_type(t), g->comm);
  if (!req) ch_watchdog_leave();
  return finish_or_defer(g, req, mreq, rc, "allgather", NULL, 0, t, counts);
}

ch_status ch_comm_broadcast(const ch_group *g, void *buf, size_t count, ch_dtype t, int root,
                            ch_request *req) {
  CH_CHECK(check_args(g, count, t));
  if (root < 0 || root >= g->size) return CH_FAIL(CH_ERR_INVALID, "broadcast root %d of %d", root, g->size);
  MPI_Request mreq = MPI_REQUEST_NULL;
  if (!req) ch_watchdog_enter("broadcast");
  int rc = req ? MPI_Ibcast(buf, (int)count, mpi_type(t), root, g->comm, &mreq)
               : MPI_Bcast(buf, (int)count, mpi_type(t), root, g->comm);
  if (!req) ch_watchdog_leave();
  return finish_or_defer(g, req, mreq, rc, "broadcast", NULL, 0, t, NULL);
}

ch_status ch_comm_barrier(const ch_group *g, ch_request *req) {
  CH_CHECK(check_args(g, 0, CH_U8));
  MPI_Request mreq = MPI_REQUEST_NULL;
  if (!req) ch_watchdog_enter("barrier");
  int rc = req ? MPI_Ibarrier(g->comm, &mreq) : MPI_Barrier(g->comm);
  if (!req) ch_watchdog_leave();
  return finish_or_defer(g, req, mreq, rc, "barrier", NULL, 0, CH_U8, NULL);
}

static void complete(ch_request *req) {
  if (req->scale_buf) scale_avg(req->scale_buf, req->scale_count, req->dtype, req->group_size);
  free(req->counts);
  req->counts = NULL;
  req->active = 0;
}

ch_status ch_comm_wait(ch_request *req) {
  /* Marked even when there is nothing to wait for: whether ch_comm_test already completed the
   * request depends on timing, and the watchdog's collective numbers must agree across ranks. */
  ch_watchdog_enter("wait");
  if (!req || !req->active) {
    ch_watchdog_leave();
    return CH_OK;
  }
  int rc = MPI_Wait(&req->req, MPI_STATUS_IGNORE);
  ch_watchdog_leave();
  if (rc != MPI_SUCCESS) {
    req->scale_buf = NULL;
    complete(req);
    return mpi_fail(rc, "wait");
  }
  complete(req);
  return CH_OK;
}

ch_status ch_comm_test(ch_request *req, int *done) {
  *done = 1;
  if (!req || !req->active) return CH_OK;
  int flag = 0;
  int rc = MPI_Test(&req->req, &flag, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) {
    req->scale_buf = NULL;
    complete(req);
    return mpi_fail(rc, "test");
  }
  *done = flag;
  if (flag) complete(req);
  return CH_OK;
}
