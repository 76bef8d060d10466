/* Emulated NCCL over MPI, with the real <nccl.h> signatures: a communicator is a duplicate of
 * the MPI communicator named by emu_nccl_use_comm (nccl_emu.h), and each collective is the MPI
 * collective on the (host-accessible) device buffers, blocking: the stream argument is ignored,
 * since all emulated work is synchronous. Calls inside ncclGroupStart/End run at once, in issue
 * order; every rank issues the same sequence, so they match up as NCCL's fused group would.
 *
 * Types: ncclInt8, Uint8, Int32, Uint32, Int64, Uint64, Float32, Float64 map to MPI's; bf16
 * travels as 16-bit words reduced by user-defined MPI ops that widen to float, combine and
 * round to nearest even at every step, as NCCL's bf16 kernels do. ncclAvg is the sum divided by
 * the rank count (integers: C division, truncating). ncclFloat16/fp8 are not emulated
 * (ncclInvalidArgument). Counts above INT_MAX are refused (MPI counts are int). */
#include <nccl.h>

#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "emu.h"
#include "gemm_ref.h"
#include "nccl_emu.h"

struct ncclComm {
  MPI_Comm mpi;
  int rank, size, device;
};

namespace {

MPI_Comm g_base = MPI_COMM_NULL; /* emu_nccl_use_comm; MPI_COMM_NULL: MPI_COMM_WORLD */
thread_local std::string g_last_error;
thread_local int g_group_depth;

ncclResult_t fail(ncclResult_t r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ncclResult_t fail(ncclResult_t r, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  g_last_error = buf;
  return r;
}

/* ---- bf16 reductions: MPI user ops on 16-bit words --------------------------------------- */

template <int OP> float combine(float a, float b) {
  return OP == ncclSum ? a + b : OP == ncclProd ? a * b : OP == ncclMax ? (a > b ? a : b) : (a < b ? a : b);
}

template <int OP> void bf16_op(void *in, void *inout, int *len, MPI_Datatype *) {
  const uint16_t *x = (const uint16_t *)in;
  uint16_t *y = (uint16_t *)inout;
  for (int i = 0; i < *len; ++i)
    y[i] = emu::float_to_bf16(combine<OP>(emu::bf16_to_float(x[i]), emu::bf16_to_float(y[i])));
}

/* The MPI op for (type, op); Avg reduces with the sum (divided afterwards). */
MPI_Op mpi_op(ncclDataType_t t, ncclRedOp_t op) {
  static MPI_Op bf16[4] = {MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL};
  const int o = op == ncclAvg ? (int)ncclSum : (int)op;
  if (t == ncclBfloat16) {
    static MPI_User_function *fns[4] = {bf16_op<ncclSum>, bf16_op<ncclProd>, bf16_op<ncclMax>,
                                        bf16_op<ncclMin>};
    if (bf16[o] == MPI_OP_NULL) MPI_Op_create(fns[o], 1, &bf16[o]);
    return bf16[o];
  }
  static const MPI_Op builtin[4] = {MPI_SUM, MPI_PROD, MPI_MAX, MPI_MIN};
  return builtin[o];
}

/* MPI type and size of an NCCL type the emulation has; MPI_DATATYPE_NULL otherwise. */
MPI_Datatype mpi_type(ncclDataType_t t, size_t *size) {
  switch (t) {
  case ncclInt8: *size = 1; return MPI_INT8_T;
  case ncclUint8: *size = 1; return MPI_UINT8_T;
  case ncclInt32: *size = 4; return MPI_INT32_T;
  case ncclUint32: *size = 4; return MPI_UINT32_T;
  case ncclInt64: *size = 8; return MPI_INT64_T;
  case ncclUint64: *size = 8; return MPI_UINT64_T;
  case ncclFloat32: *size = 4; return MPI_FLOAT;
  case ncclFloat64: *size = 8; return MPI_DOUBLE;
  case ncclBfloat16: *size = 2; return MPI_UINT16_T;
  default: *size = 0; return MPI_DATATYPE_NULL;
  }
}

template <typename T> void divide(void *p, size_t n, int by) {
  T *x = (T *)p;
  for (size_t i = 0; i < n; ++i) x[i] = (T)(x[i] / (T)by);
}

/* ncclAvg's last step: the sum in p (n elements) divided by the rank count. */
void average(void *p, size_t n, ncclDataType_t t, int ranks) {
  switch (t) {
  case ncclInt8: divide<int8_t>(p, n, ranks); break;
  case ncclUint8: divide<uint8_t>(p, n, ranks); break;
  case ncclInt32: divide<int32_t>(p, n, ranks); break;
  case ncclUint32: divide<uint32_t>(p, n, ranks); break;
  case ncclInt64: divide<int64_t>(p, n, ranks); break;
  case ncclUint64: divide<uint64_t>(p, n, ranks); break;
  case ncclFloat32: divide<float>(p, n, ranks); break;
  case ncclFloat64: divide<double>(p, n, ranks); break;
  case ncclBfloat16: {
    uint16_t *x = (uint16_t *)p;
    for (size_t i = 0; i < n; ++i)
      x[i] = emu::float_to_bf16(emu::bf16_to_float(x[i]) / (float)ranks);
    break;
  }
  default: break;
  }
}

/* The checks every collective makes. */
struct args {
  MPI_Datatype type;
  size_t size;
};

ncclResult_t check(const char *what, ncclComm_t comm, size_t count, ncclDataType_t t, int op,
                   int root, args *a) {
  if (!comm) return fail(ncclInvalidArgument, "%s: NULL communicator", what);
  a->type = mpi_type(t, &a->size);
  if (a->type == MPI_DATATYPE_NULL)
    return fail(ncclInvalidArgument, "%s: datatype %d is not emulated", what, (int)t);
  if (op < 0 || op > ncclAvg) return fail(ncclInvalidArgument, "%s: invalid op %d", what, op);
  if (root < 0 || root >= comm->size)
    return fail(ncclInvalidArgument, "%s: root %d of %d ranks", what, root, comm->size);
  if (count > (size_t)INT_MAX / (size_t)comm->size)
    return fail(ncclInvalidArgument, "%s: count %zu too large for the MPI emulation", what, count);
  return ncclSuccess;
}

/* NCCL refuses a NULL buffer wherever the call would touch one. */
ncclResult_t buffers(const char *what, const void *send, bool need_send, const void *recv,
                     bool need_recv) {
  if ((need_send && !send) || (need_recv && !recv))
    return fail(ncclInvalidArgument, "%s: NULL %s buffer", what, need_send && !send ? "send" : "receive");
  return ncclSuccess;
}

ncclResult_t mpi_result(const char *what, int rc) {
  if (rc == MPI_SUCCESS) return ncclSuccess;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return fail(ncclSystemError, "%s: MPI: %s", what, msg);
}

/* Brackets host access to device buffers (the emulation's memory guard). */
struct host_access {
  host_access() { emu_host_access_begin(); }
  ~host_access() { emu_host_access_end(); }
};

uint64_t fnv1a(const void *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
  return h;
}

} // namespace

extern "C" {

void emu_nccl_use_comm(MPI_Comm comm) { g_base = comm; }

ncclResult_t ncclGetVersion(int *version) {
  if (!version) return fail(ncclInvalidArgument, "ncclGetVersion: NULL");
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

/* Unique per call: host, process, time and a counter (only its equality across ranks is used). */
ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
  if (!id) return fail(ncclInvalidArgument, "ncclGetUniqueId: NULL");
  static uint64_t counter;
  std::memset(id->internal, 0, sizeof id->internal);
  uint64_t v[4] = {(uint64_t)getpid(), ++counter,
                   (uint64_t)std::chrono::steady_clock::now().time_since_epoch().count(), 0};
  char host[64] = {0};
  gethostname(host, sizeof host - 1);
  v[3] = fnv1a(host, std::strlen(host));
  std::memcpy(id->internal, v, sizeof v);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank) {
  if (!out) return fail(ncclInvalidArgument, "ncclCommInitRank: NULL comm");
  *out = nullptr;
  int init = 0;
  MPI_Initialized(&init);
  if (!init) return fail(ncclInvalidUsage, "ncclCommInitRank: the emulation needs MPI initialized");
  MPI_Comm base = g_base == MPI_COMM_NULL ? MPI_COMM_WORLD : g_base;
  int size = 0, me = 0;
  MPI_Comm_size(base, &size);
  MPI_Comm_rank(base, &me);
  /* One allreduce tells every rank whether any rank's arguments disagree with the MPI
   * communicator, and (max of h and of ~h) whether all ids hash alike, so all ranks return the
   * same result and none is left waiting. */
  const uint64_t h = fnv1a(id.internal, sizeof id.internal);
  uint64_t v[3] = {(uint64_t)(nranks != size || rank != me), h, ~h}, all[3];
  ncclResult_t r = mpi_result("ncclCommInitRank", MPI_Allreduce(v, all, 3, MPI_UINT64_T, MPI_MAX, base));
  if (r != ncclSuccess) return r;
  if (all[0])
    return fail(ncclInvalidArgument,
                "ncclCommInitRank: nranks %d rank %d here; the MPI communicator has %d ranks, this is %d "
                "(every rank must pass its MPI size and rank; see emu_nccl_use_comm)",
                nranks, rank, size, me);
  if (all[1] != h || all[2] != ~h)
    return fail(ncclInvalidUsage, "ncclCommInitRank: the ranks passed different unique ids");
  ncclComm *c = new (std::nothrow) ncclComm{MPI_COMM_NULL, rank, nranks, 0};
  if (!c) return fail(ncclSystemError, "ncclCommInitRank: out of memory");
  r = mpi_result("ncclCommInitRank", MPI_Comm_dup(base, &c->mpi));
  if (r != ncclSuccess) {
    delete c;
    return r;
  }
  if (cudaGetDevice(&c->device) != cudaSuccess) c->device = 0;
  *out = c;
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return fail(ncclInvalidArgument, "ncclCommDestroy: NULL comm");
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Comm_free(&comm->mpi);
  delete comm;
  return ncclSuccess;
}

/* Abort: the peers may be gone, so the MPI communicator is left (not freed collectively). */
ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (!comm) return fail(ncclInvalidArgument, "ncclCommAbort: NULL comm");
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int *count) {
  if (!comm || !count) return fail(ncclInvalidArgument, "ncclCommCount: NULL argument");
  *count = comm->size;
  return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank) {
  if (!comm || !rank) return fail(ncclInvalidArgument, "ncclCommUserRank: NULL argument");
  *rank = comm->rank;
  return ncclSuccess;
}

ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int *device) {
  if (!comm || !device) return fail(ncclInvalidArgument, "ncclCommCuDevice: NULL argument");
  *device = comm->device;
  return ncclSuccess;
}

/* Collectives complete before they return, so there is never an asynchronous error. */
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *err) {
  if (!comm || !err) return fail(ncclInvalidArgument, "ncclCommGetAsyncError: NULL argument");
  *err = ncclSuccess;
  return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t r) {
  switch (r) {
  case ncclSuccess: return "no error";
  case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
  case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
  case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
  case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
  case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
  case ncclRemoteError: return "remote process exited or there was a network error";
  case ncclInProgress: return "NCCL operation in progress";
  default: return "unknown result code";
  }
}

/* The last error message of this thread (NCCL keeps it per thread too; comm is not needed). */
const char *ncclGetLastError(ncclComm_t) { return g_last_error.c_str(); }

ncclResult_t ncclGroupStart() {
  ++g_group_depth;
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd() {
  if (g_group_depth == 0) return fail(ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
  --g_group_depth;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t t,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t) {
  args a;
  ncclResult_t r = check("ncclAllReduce", comm, count, t, op, 0, &a);
  if (r != ncclSuccess || count == 0) return r;
  if ((r = buffers("ncclAllReduce", send, true, recv, true)) != ncclSuccess) return r;
  host_access guard;
  r = mpi_result("ncclAllReduce", MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv,
                                                (int)count, a.type, mpi_op(t, op), comm->mpi));
  if (r == ncclSuccess && op == ncclAvg) average(recv, count, t, comm->size);
  return r;
}

ncclResult_t ncclReduce(const void *send, void *recv, size_t count, ncclDataType_t t,
                        ncclRedOp_t op, int root, ncclComm_t comm, cudaStream_t) {
  args a;
  ncclResult_t r = check("ncclReduce", comm, count, t, op, root, &a);
  if (r != ncclSuccess || count == 0) return r;
  const bool at_root = comm->rank == root;
  if ((r = buffers("ncclReduce", send, true, recv, at_root)) != ncclSuccess) return r;
  host_access guard;
  r = mpi_result("ncclReduce", MPI_Reduce(at_root && send == recv ? MPI_IN_PLACE : send, recv,
                                          (int)count, a.type, mpi_op(t, op), root, comm->mpi));
  if (r == ncclSuccess && at_root && op == ncclAvg) average(recv, count, t, comm->size);
  return r;
}

ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t t, int root,
                           ncclComm_t comm, cudaStream_t) {
  args a;
  ncclResult_t r = check("ncclBroadcast", comm, count, t, ncclSum, root, &a);
  if (r != ncclSuccess || count == 0) return r;
  if ((r = buffers("ncclBroadcast", send, comm->rank == root, recv, true)) != ncclSuccess) return r;
  host_access guard;
  if (comm->rank == root && send != recv) std::memmove(recv, send, count * a.size);
  return mpi_result("ncclBroadcast", MPI_Bcast(recv, (int)count, a.type, root, comm->mpi));
}

/* In place when send is this rank's block of recv (recv + rank * sendcount), as NCCL. */
ncclResult_t ncclAllGather(const void *send, void *recv, size_t sendcount, ncclDataType_t t,
                           ncclComm_t comm, cudaStream_t) {
  args a;
  ncclResult_t r = check("ncclAllGather", comm, sendcount, t, ncclSum, 0, &a);
  if (r != ncclSuccess || sendcount == 0) return r;
  if ((r = buffers("ncclAllGather", send, true, recv, true)) != ncclSuccess) return r;
  host_access guard;
  const bool in_place = send == (const char *)recv + (size_t)comm->rank * sendcount * a.size;
  return mpi_result("ncclAllGather", MPI_Allgather(in_place ? MPI_IN_PLACE : send, (int)sendcount,
                                                   a.type, recv, (int)sendcount, a.type, comm->mpi));
}

/* In place when recv is this rank's block of send (send + rank * recvcount), as NCCL. MPI's
 * in-place reduce-scatter puts the result at the start of the buffer instead, so overlapping
 * buffers go through a host copy of the result. */
ncclResult_t ncclReduceScatter(const void *send, void *recv, size_t recvcount, ncclDataType_t t,
                               ncclRedOp_t op, ncclComm_t comm, cudaStream_t) {
  args a;
  ncclResult_t r = check("ncclReduceScatter", comm, recvcount, t, op, 0, &a);
  if (r != ncclSuccess || recvcount == 0) return r;
  if ((r = buffers("ncclReduceScatter", send, true, recv, true)) != ncclSuccess) return r;
  host_access guard;
  const size_t bytes = recvcount * a.size, total = bytes * (size_t)comm->size;
  const char *s = (const char *)send, *d = (const char *)recv;
  const bool overlap = d < s + total && s < d + bytes;
  std::vector<char> tmp;
  if (overlap) {
    try {
      tmp.resize(bytes);
    } catch (const std::bad_alloc &) {
      return fail(ncclSystemError, "ncclReduceScatter: out of memory");
    }
  }
  void *out = overlap ? tmp.data() : recv;
  r = mpi_result("ncclReduceScatter", MPI_Reduce_scatter_block(send, out, (int)recvcount, a.type,
                                                               mpi_op(t, op), comm->mpi));
  if (r != ncclSuccess) return r;
  if (op == ncclAvg) average(out, recvcount, t, comm->size);
  if (overlap) std::memcpy(recv, tmp.data(), bytes);
  return ncclSuccess;
}

} // extern "C"
