/* A group of this process alone, without MPI (cohort/comm.h, ch_group_self): every collective of
 * one rank is a copy at most, so the serial tools (`cohort ckpt import`) run the same
 * collective code as the ranks of a job without initialising MPI. */
#include <string.h>

#include "cohort/comm.h"

static ch_status self_allreduce(const ch_group *g, void *buf, size_t count, ch_dtype t,
                                ch_redop op, ch_request *req) {
  (void)g, (void)buf, (void)count, (void)t, (void)op, (void)req;
  return CH_OK; /* the sum, max, min or mean of one value is the value */
}

/* reduce_scatter and allgather of one rank: the whole `total` elements, copied. */
static ch_status self_copy(const void *send, void *recv, size_t total, ch_dtype t) {
  if (send != recv && total) memmove(recv, send, total * ch_dtype_size(t));
  return CH_OK;
}

static ch_status self_reduce_scatter(const ch_group *g, const void *send, void *recv,
                                     size_t total, ch_dtype t, ch_redop op, ch_request *req) {
  (void)g, (void)op, (void)req;
  return self_copy(send, recv, total, t);
}

static ch_status self_allgather(const ch_group *g, const void *send, void *recv, size_t total,
                                ch_dtype t, ch_request *req) {
  (void)g, (void)req;
  return self_copy(send, recv, total, t);
}

static ch_status self_broadcast(const ch_group *g, void *buf, size_t count, ch_dtype t, int root,
                                ch_request *req) {
  (void)g, (void)buf, (void)count, (void)t, (void)req;
  if (root != 0) return CH_FAIL(CH_ERR_INVALID, "broadcast from rank %d in a group of 1", root);
  return CH_OK;
}

static ch_status self_barrier(const ch_group *g, ch_request *req) {
  (void)g, (void)req;
  return CH_OK;
}

/* Nothing is ever left pending (req->active is never set), so the front never calls these. */
static ch_status self_wait(ch_request *req) {
  req->active = 0;
  return CH_OK;
}

static ch_status self_test(ch_request *req, int *done) {
  req->active = 0;
  *done = 1;
  return CH_OK;
}

static const ch_comm_ops self_ops;

static ch_status self_split(const ch_group *parent, int color, int key, ch_group *out) {
  (void)parent, (void)key;
  if (color < 0) {
    *out = (ch_group){.rank = -1, .size = 0};
    return CH_OK;
  }
  return ch_group_self(out);
}

static void self_destroy(ch_group *g) { (void)g; }

static const ch_comm_ops self_ops = {"self",         self_allreduce, self_reduce_scatter,
                                     self_allgather, self_broadcast, self_barrier,
                                     self_wait,      self_test,      self_split,
                                     self_destroy};

ch_status ch_group_self(ch_group *out) {
  *out = (ch_group){.rank = 0, .size = 1, .ops = &self_ops, .impl = NULL};
  return CH_OK;
}
