/* The NCCL backend of the comm layer (cohort/comm.h): a process group whose collectives take
 * DEVICE memory of one CUDA backend and run NCCL on a stream of their own.
 *
 * Ordering against compute. Every collective records an event on the backend's compute stream
 * (`ready`), makes the group's communication stream wait on it, enqueues the NCCL call there and
 * records a `done` event after it. So the collective sees everything the compute stream did
 * before the call, and compute kernels enqueued after it run concurrently with it until someone
 * waits on `done`:
 * - blocking (req NULL): the compute stream waits on `done` at once. Later kernels are ordered
 *   after the collective on the device; the host does not wait (no cudaStreamSynchronize), so
 *   it keeps enqueueing ahead of the GPU. The call is marked for the collective watchdog like
 *   the MPI backend's, so the ranks' collective numbers agree.
 * - non-blocking: the request keeps its own `done` event (created per call, destroyed on
 *   completion, so any number may be in flight: DDP's buckets, ZeRO's prefetch).
 *   ch_comm_test = cudaEventQuery; ch_comm_wait makes the compute stream wait on the event and
 *   returns without a host sync. That is what comm.h's contract needs here: "completed before
 *   its buffers are reused" holds for every later use through the backend, because its ops all
 *   run on the compute stream (downloads included: they sync that stream). A caller that reads
 *   the buffers by other means must sync the backend (ch_backend ops->sync) first.
 *
 * Partitions. reduce_scatter / allgather use cohort's 1/n partition (ch_part_offset/count),
 * which is uneven when n does not divide the total. Even totals map to ncclReduceScatter /
 * ncclAllGather; uneven ones to one grouped sequence (ncclGroupStart/End) of n ncclReduce (root
 * r gets part r) or n ncclBroadcast (root r sends part r), which NCCL runs as one launch.
 *
 * Host buffers. A collective whose buffer is not device memory (cudaPointerGetAttributes) goes
 * to the group's own MPI group over the same ranks, so callers may reduce host scalars (loss
 * sums, flags) on the same group; its requests then belong to the MPI backend (ch_request.ops).
 * barrier has no buffer and NCCL none: it is the MPI group's barrier.
 *
 * The group owns a duplicate of the parent's communicator (ch_group_from_mpi): NCCL's unique
 * id is broadcast over it, it serves the host-buffer collectives and split, and the parent may
 * be destroyed before this group. */
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1 /* MPI's C API only: its C++ bindings would need libmpi_cxx */
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/comm_mpi.h"
extern "C" { /* cohort/watchdog.h has no C++ guard of its own */
#include "cohort/watchdog.h"
}
#include "kernels/cuda/emu/nccl_emu.h" /* emu_nccl_use_comm: a no-op outside the emulation */
#include "kernels/cuda/ops.h"

namespace {

struct nccl_group {
  ch_group host;           /* MPI group over the same ranks (owned): id broadcast, host buffers */
  const ch_backend *be;    /* the CUDA backend whose device memory and stream this group serves */
  ncclComm_t comm;
  cudaStream_t stream;     /* communication stream (non-blocking) */
  cudaEvent_t ready;       /* recorded on the compute stream before each collective */
  cudaEvent_t done;        /* recorded after each blocking collective */
};

/* A non-blocking collective's state in ch_request.state. */
struct nccl_req {
  cudaEvent_t done;        /* recorded on the communication stream after the NCCL call */
  cudaStream_t compute;    /* made to wait on `done` when the request completes */
};
static_assert(sizeof(nccl_req) <= sizeof(((ch_request *)0)->state), "nccl_req outgrew ch_request");

extern const ch_comm_ops kNcclOps;

#define NCCL_TRY(call, what)                                                                   \
  do {                                                                                         \
    ncclResult_t r_ = (call);                                                                  \
    if (r_ != ncclSuccess) return nccl_fail(r_, what);                                         \
  } while (0)

ch_status nccl_fail(ncclResult_t r, const char *what) {
  const char *last = ncclGetLastError(NULL);
  return CH_FAIL(r == ncclInvalidArgument || r == ncclInvalidUsage ? CH_ERR_INVALID : CH_ERR_INTERNAL,
                 "%s: %s%s%s", what, ncclGetErrorString(r), last && *last ? ": " : "",
                 last ? last : "");
}

nccl_group *state_of(const ch_group *g) { return (nccl_group *)g->impl; }
cudaStream_t compute_of(const nccl_group *ng) { return cuda_ctx_of(ng->be)->stream; }

/* Every cohort dtype has a NCCL type. */
ncclDataType_t nccl_type(ch_dtype t) {
  switch (t) {
    case CH_F32: return ncclFloat32;
    case CH_F64: return ncclFloat64;
    case CH_I32: return ncclInt32;
    case CH_I64: return ncclInt64;
    case CH_U8: return ncclUint8;
    case CH_BF16: return ncclBfloat16;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ch_redop op) {
  switch (op) {
    case CH_SUM: return ncclSum;
    case CH_AVG: return ncclAvg; /* integers: divided with truncation, as the MPI backend does */
    case CH_MAX: return ncclMax;
    case CH_MIN: return ncclMin;
  }
  return ncclSum;
}

ch_status check_args(ch_dtype t, ch_redop op) {
  if ((unsigned)t > (unsigned)CH_BF16) return CH_FAIL(CH_ERR_INVALID, "dtype %d", (int)t);
  if ((unsigned)op > (unsigned)CH_MIN) return CH_FAIL(CH_ERR_INVALID, "reduction op %d", (int)op);
  return CH_OK;
}

/* Whether p is memory the device's kernels address directly (device or managed); host
 * pointers, registered or not, go to the MPI group. */
bool on_device(const void *p) {
  cudaPointerAttributes a;
  if (!p || cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError(); /* an unknown pointer is host memory, not an error to keep */
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

/* Orders the communication stream after the work enqueued so far on the compute stream. */
ch_status begin(nccl_group *ng) {
  CH_CUDA_TRY(cudaEventRecord(ng->ready, compute_of(ng)), "NCCL group: record on compute stream");
  CH_CUDA_TRY(cudaStreamWaitEvent(ng->stream, ng->ready, 0), "NCCL group: wait for compute");
  return CH_OK;
}

/* After the NCCL call(s) were enqueued: blocking, the compute stream waits for them; otherwise
 * the request gets a done event of its own. */
ch_status finish(nccl_group *ng, ch_request *req) {
  if (!req) {
    CH_CUDA_TRY(cudaEventRecord(ng->done, ng->stream), "NCCL group: record done");
    CH_CUDA_TRY(cudaStreamWaitEvent(compute_of(ng), ng->done, 0), "NCCL group: compute waits");
    return CH_OK;
  }
  nccl_req s = {NULL, compute_of(ng)};
  CH_CUDA_TRY(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "NCCL request event");
  cudaError_t e = cudaEventRecord(s.done, ng->stream);
  if (e != cudaSuccess) {
    (void)cudaEventDestroy(s.done);
    CH_CUDA_TRY(e, "NCCL group: record done");
  }
  memset(req, 0, sizeof *req);
  memcpy(req->state, &s, sizeof s);
  req->ops = &kNcclOps;
  req->active = 1;
  return CH_OK;
}

/* One device collective: `enqueue` issues the NCCL call(s) on the communication stream.
 * Blocking calls are marked for the watchdog under `what`. */
template <typename F>
ch_status run(const ch_group *g, ch_request *req, const char *what, F enqueue) {
  nccl_group *ng = state_of(g);
  CH_CUDA_TRY(cudaSetDevice(cuda_ctx_of(ng->be)->device), "cudaSetDevice");
  CH_CHECK(begin(ng));
  if (!req) ch_watchdog_enter(what);
  ncclResult_t r = enqueue(ng);
  if (!req) ch_watchdog_leave();
  if (r != ncclSuccess) return nccl_fail(r, what);
  return finish(ng, req);
}

ch_status nccl_allreduce(const ch_group *g, void *buf, size_t count, ch_dtype t, ch_redop op,
                         ch_request *req) {
  CH_CHECK(check_args(t, op));
  if (!count) return CH_OK; /* every rank passes the same count: all return here */
  if (!on_device(buf)) return ch_comm_allreduce(&state_of(g)->host, buf, count, t, op, req);
  return run(g, req, "allreduce", [&](nccl_group *ng) {
    return ncclAllReduce(buf, buf, count, nccl_type(t), nccl_op(op), ng->comm, ng->stream);
  });
}

/* Whether every rank's part of `total` has the same count (NCCL's own collectives need that). */
bool even(size_t total, int n) { return total % (size_t)n == 0; }

ch_status nccl_reduce_scatter(const ch_group *g, const void *send, void *recv, size_t total,
                              ch_dtype t, ch_redop op, ch_request *req) {
  CH_CHECK(check_args(t, op));
  if (!total) return CH_OK;
  if (!on_device(send)) return ch_comm_reduce_scatter(&state_of(g)->host, send, recv, total, t, op, req);
  const int n = g->size, me = g->rank;
  const size_t esz = ch_dtype_size(t);
  return run(g, req, "reduce_scatter", [&](nccl_group *ng) {
    if (even(total, n))
      return ncclReduceScatter(send, recv, total / (size_t)n, nccl_type(t), nccl_op(op), ng->comm,
                               ng->stream);
    ncclResult_t r = ncclGroupStart();
    for (int root = 0; root < n && r == ncclSuccess; root++) {
      const char *part = (const char *)send + ch_part_offset(total, n, root) * esz;
      r = ncclReduce(part, root == me ? recv : NULL, ch_part_count(total, n, root), nccl_type(t),
                     nccl_op(op), root, ng->comm, ng->stream);
    }
    ncclResult_t e = ncclGroupEnd(); /* always closes the group, even after a failed call */
    return r != ncclSuccess ? r : e;
  });
}

ch_status nccl_allgather(const ch_group *g, const void *send, void *recv, size_t total,
                         ch_dtype t, ch_request *req) {
  CH_CHECK(check_args(t, CH_SUM));
  if (!total) return CH_OK;
  if (!on_device(recv)) return ch_comm_allgather(&state_of(g)->host, send, recv, total, t, req);
  const int n = g->size, me = g->rank;
  const size_t esz = ch_dtype_size(t);
  return run(g, req, "allgather", [&](nccl_group *ng) {
    if (even(total, n))
      return ncclAllGather(send, recv, total / (size_t)n, nccl_type(t), ng->comm, ng->stream);
    ncclResult_t r = ncclGroupStart();
    for (int root = 0; root < n && r == ncclSuccess; root++) {
      char *part = (char *)recv + ch_part_offset(total, n, root) * esz;
      r = ncclBroadcast(root == me ? send : NULL, part, ch_part_count(total, n, root),
                        nccl_type(t), root, ng->comm, ng->stream);
    }
    ncclResult_t e = ncclGroupEnd();
    return r != ncclSuccess ? r : e;
  });
}

ch_status nccl_broadcast(const ch_group *g, void *buf, size_t count, ch_dtype t, int root,
                         ch_request *req) {
  CH_CHECK(check_args(t, CH_SUM));
  if (root < 0 || root >= g->size) return CH_FAIL(CH_ERR_INVALID, "broadcast root %d of %d", root, g->size);
  if (!count) return CH_OK;
  if (!on_device(buf)) return ch_comm_broadcast(&state_of(g)->host, buf, count, t, root, req);
  return run(g, req, "broadcast", [&](nccl_group *ng) {
    return ncclBroadcast(buf, buf, count, nccl_type(t), root, ng->comm, ng->stream);
  });
}

ch_status nccl_barrier(const ch_group *g, ch_request *req) {
  return ch_comm_barrier(&state_of(g)->host, req);
}

/* Completion: the compute stream waits for the collective; the event is released (CUDA defers
 * the release until the wait has been satisfied). */
ch_status complete(ch_request *req, const nccl_req &s) {
  cudaError_t e = cudaStreamWaitEvent(s.compute, s.done, 0);
  (void)cudaEventDestroy(s.done);
  req->active = 0;
  CH_CUDA_TRY(e, "NCCL request: compute waits");
  return CH_OK;
}

ch_status nccl_wait(ch_request *req) {
  nccl_req s;
  memcpy(&s, req->state, sizeof s);
  ch_watchdog_enter("wait");
  ch_status st = complete(req, s);
  ch_watchdog_leave();
  return st;
}

ch_status nccl_test(ch_request *req, int *done) {
  nccl_req s;
  memcpy(&s, req->state, sizeof s);
  cudaError_t e = cudaEventQuery(s.done);
  *done = e != cudaErrorNotReady;
  if (e == cudaErrorNotReady) return CH_OK;
  ch_status st = complete(req, s);
  CH_CUDA_TRY(e, "NCCL request: cudaEventQuery"); /* a fault of the collective itself */
  return st;
}

void destroy_state(nccl_group *ng) {
  if (!ng) return;
  if (ng->stream) (void)cudaStreamSynchronize(ng->stream);
  if (ng->comm) (void)ncclCommDestroy(ng->comm);
  if (ng->done) (void)cudaEventDestroy(ng->done);
  if (ng->ready) (void)cudaEventDestroy(ng->ready);
  if (ng->stream) (void)cudaStreamDestroy(ng->stream);
  ch_group_destroy(&ng->host);
  free(ng);
}

/* Builds the NCCL side of `ng` over ng->host: rank 0's unique id over MPI, the communicator on
 * the backend's device, the stream and events. Collective over ng->host. */
ch_status init_state(nccl_group *ng) {
  MPI_Comm mc = ch_group_mpi_comm(&ng->host);
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  /* Whether rank 0 made an id travels first, so that every rank fails together rather than
   * the others hanging in ncclCommInitRank. */
  int ok = 1;
  if (ng->host.rank == 0) ok = ncclGetUniqueId(&id) == ncclSuccess;
  if (MPI_Bcast(&ok, 1, MPI_INT, 0, mc) != MPI_SUCCESS ||
      (ok && MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, mc) != MPI_SUCCESS))
    return CH_FAIL(CH_ERR_MPI, "NCCL group: broadcast of the unique id failed");
  if (!ok) return CH_FAIL(CH_ERR_INTERNAL, "NCCL group: ncclGetUniqueId failed on rank 0");
  CH_CUDA_TRY(cudaSetDevice(cuda_ctx_of(ng->be)->device), "cudaSetDevice");
  emu_nccl_use_comm(mc); /* the emulated NCCL runs over this communicator */
  ch_watchdog_enter("nccl_init");
  ncclResult_t r = ncclCommInitRank(&ng->comm, ng->host.size, id, ng->host.rank);
  ch_watchdog_leave();
  if (r != ncclSuccess) {
    ng->comm = NULL;
    return nccl_fail(r, "ncclCommInitRank");
  }
  CH_CUDA_TRY(cudaStreamCreateWithFlags(&ng->stream, cudaStreamNonBlocking), "NCCL stream");
  CH_CUDA_TRY(cudaEventCreateWithFlags(&ng->ready, cudaEventDisableTiming), "NCCL event");
  CH_CUDA_TRY(cudaEventCreateWithFlags(&ng->done, cudaEventDisableTiming), "NCCL event");
  return CH_OK;
}

/* Makes `out` a NCCL group over `host` (adopted: freed with the group, or here on failure). */
ch_status adopt(ch_group *host, const ch_backend *be, ch_group *out) {
  nccl_group *ng = (nccl_group *)calloc(1, sizeof *ng);
  if (!ng) {
    ch_group_destroy(host);
    return CH_FAIL(CH_ERR_NOMEM, "NCCL group state");
  }
  ng->host = *host;
  ng->be = be;
  ch_status st = init_state(ng);
  if (st != CH_OK) {
    destroy_state(ng);
    return st;
  }
  out->rank = ng->host.rank;
  out->size = ng->host.size;
  out->ops = &kNcclOps;
  out->impl = ng;
  return CH_OK;
}

ch_status nccl_split(const ch_group *parent, int color, int key, ch_group *out) {
  memset(out, 0, sizeof *out);
  ch_group sub;
  CH_CHECK(ch_group_split(&state_of(parent)->host, color, key, &sub));
  if (!sub.ops) { /* no color: this rank joins no group */
    out->rank = -1;
    return CH_OK;
  }
  return adopt(&sub, state_of(parent)->be, out);
}

void nccl_destroy(ch_group *g) { destroy_state(state_of(g)); }

const ch_comm_ops kNcclOps = {
    "nccl",         nccl_allreduce, nccl_reduce_scatter, nccl_allgather, nccl_broadcast,
    nccl_barrier,   nccl_wait,      nccl_test,           nccl_split,     nccl_destroy,
};

} // namespace

ch_status cuda_group_create(const ch_group *parent, const ch_backend *be, ch_group *out) {
  memset(out, 0, sizeof *out);
  out->rank = -1;
  MPI_Comm mc = ch_group_mpi_comm(parent);
  if (mc == MPI_COMM_NULL)
    return CH_FAIL(CH_ERR_INVALID, "NCCL group: the parent must be a live MPI group");
  if (!be || !be->ctx) return CH_FAIL(CH_ERR_INVALID, "NCCL group: no CUDA backend");
  ch_group host;
  CH_CHECK(ch_group_from_mpi(mc, &host));
  return adopt(&host, be, out);
}
