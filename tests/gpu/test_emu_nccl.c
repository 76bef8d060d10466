/* The NCCL calls cohort makes, on MPI_COMM_WORLD and on an uneven split of it (3 ranks: groups
 * of 2 and 1): every collective, data type and reduction, in place and out of place, inside
 * and outside ncclGroupStart/End, and the error paths. Built against the emulation (NCCL over
 * MPI) and against the real NCCL (then it needs a GPU per rank, else exits 77).
 *
 * Reference: every rank's input gathered with MPI_Allgather and reduced here in double.
 * Tolerance: integers, max, min, gathers and broadcasts exact; a float sum or product over n
 * ranks rounds at most n times, each step within eps of the partial result, so
 *   sum, avg: (n + 1) * eps * sum_r |x_r|      prod: (n + 1) * eps * |prod_r x_r|
 * with eps = 2^-24 (fp32), 2^-53 (fp64), 2^-8 (bf16: 8 significant bits, reduced in bf16 at
 * every step as NCCL does). */
#include <cuda_runtime.h>
#include <math.h>
#include <mpi.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/emu/nccl_emu.h"
#include "testlib.h"

#define COUNT 37 /* elements per rank: odd on purpose */

static const ncclDataType_t TYPES[] = {ncclFloat32, ncclFloat64, ncclBfloat16, ncclInt32,
                                       ncclInt64,   ncclUint8,   ncclInt8};
static const char *const TYPE_NAMES[] = {"f32", "f64", "bf16", "i32", "i64", "u8", "i8"};
static const ncclRedOp_t OPS[] = {ncclSum, ncclProd, ncclMax, ncclMin, ncclAvg};
static double worst; /* worst err / tol over float cases */
static int checks;

static void nccl_ok(ncclResult_t r, const char *what) {
  CHT_ASSERT(r == ncclSuccess, "%s: %s (%s)", what, ncclGetErrorString(r), ncclGetLastError(NULL));
}

static size_t tsize(ncclDataType_t t) {
  return t == ncclFloat64 || t == ncclInt64 ? 8 : t == ncclBfloat16 ? 2 : t == ncclUint8 || t == ncclInt8 ? 1 : 4;
}
static int is_float(ncclDataType_t t) { return t == ncclFloat32 || t == ncclFloat64 || t == ncclBfloat16; }
static double eps(ncclDataType_t t) {
  return t == ncclFloat32 ? 0x1p-24 : t == ncclFloat64 ? 0x1p-53 : t == ncclBfloat16 ? 0x1p-8 : 0;
}

static double get(const void *p, ncclDataType_t t, size_t i) {
  switch (t) {
  case ncclFloat32: return ((const float *)p)[i];
  case ncclFloat64: return ((const double *)p)[i];
  case ncclBfloat16: {
    float f;
    cpu_bf16_to_f32(&f, (const uint16_t *)p + i, 1);
    return f;
  }
  case ncclInt32: return ((const int32_t *)p)[i];
  case ncclInt64: return (double)((const int64_t *)p)[i];
  case ncclUint8: return ((const uint8_t *)p)[i];
  default: return ((const int8_t *)p)[i];
  }
}
static void set(void *p, ncclDataType_t t, size_t i, double v) {
  float f = (float)v;
  switch (t) {
  case ncclFloat32: ((float *)p)[i] = f; break;
  case ncclFloat64: ((double *)p)[i] = v; break;
  case ncclBfloat16: cpu_f32_to_bf16((uint16_t *)p + i, &f, 1); break;
  case ncclInt32: ((int32_t *)p)[i] = (int32_t)v; break;
  case ncclInt64: ((int64_t *)p)[i] = (int64_t)v; break;
  case ncclUint8: ((uint8_t *)p)[i] = (uint8_t)v; break;
  default: ((int8_t *)p)[i] = (int8_t)v; break;
  }
}

/* n values of type t for this rank: floats in [0.5, 1.5) (products stay near 1) or (-1, 1);
 * integers small enough that no sum or product over 3 ranks overflows an int8. */
static void fill(void *p, ncclDataType_t t, size_t n, uint64_t seed, int positive) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(seed >> 11) / 9007199254740992.0; /* [0, 1) */
    double v = is_float(t) ? (positive ? 0.5 + u : 2 * u - 1) : (t == ncclUint8 ? floor(5 * u) : floor(7 * u) - 3);
    set(p, t, i, v);
  }
}

static void *dev_copy(const void *host, size_t bytes) {
  void *d = NULL;
  CHT_ASSERT(cudaMalloc(&d, bytes ? bytes : 1) == cudaSuccess, "cudaMalloc");
  if (host && bytes) CHT_ASSERT(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice) == cudaSuccess, "upload");
  return d;
}
static void host_copy(void *host, const void *dev, size_t bytes) {
  CHT_ASSERT(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost) == cudaSuccess, "download");
}

/* Element i of the reduction over all ranks' inputs (all[r * stride + i]), and its tolerance. */
static double reduce_ref(const void *all, size_t stride, int n, size_t i, ncclDataType_t t,
                         ncclRedOp_t op, double *tol) {
  double acc = get(all, t, i), mag = fabs(acc);
  for (int r = 1; r < n; r++) {
    double x = get(all, t, (size_t)r * stride + i);
    acc = op == ncclProd ? acc * x : op == ncclMax ? fmax(acc, x) : op == ncclMin ? fmin(acc, x) : acc + x;
    mag += fabs(x);
  }
  if (op == ncclAvg) acc = is_float(t) ? acc / n : trunc(acc / n);
  *tol = op == ncclMax || op == ncclMin ? 0
         : op == ncclProd              ? (n + 1) * eps(t) * fabs(acc)
                                       : (n + 1) * eps(t) * mag;
  return acc;
}

static void expect(const char *what, const void *got, size_t i, ncclDataType_t t, double ref, double tol) {
  double g = get(got, t, i), e = fabs(g - ref);
  CHT_ASSERT(e <= tol, "%s: [%zu] = %.17g, want %.17g (tol %.3g)", what, i, g, ref, tol);
  if (tol > 0 && e / tol > worst) worst = e / tol;
  checks++;
}

/* allreduce, reduce (root n-1) and reduce-scatter for one type and op, in place or not. */
static void test_reductions(ncclComm_t comm, MPI_Comm mc, int ti, ncclRedOp_t op, int in_place, uint64_t seed) {
  const ncclDataType_t t = TYPES[ti];
  const size_t es = tsize(t);
  int n, me;
  MPI_Comm_size(mc, &n);
  MPI_Comm_rank(mc, &me);
  const size_t total = (size_t)COUNT * (size_t)n; /* reduce-scatter input: COUNT per rank */
  char *in = malloc(total * es), *all = malloc(total * es * (size_t)n), *out = malloc(total * es);
  CHT_ASSERT(in && all && out, "out of memory");
  fill(in, t, total, seed + 7919u * (uint64_t)me, op == ncclProd);
  MPI_Allgather(in, (int)(total * es), MPI_BYTE, all, (int)(total * es), MPI_BYTE, mc);
  char what[96];

  /* allreduce of the first COUNT elements */
  void *ds = dev_copy(in, COUNT * es), *dr = in_place ? ds : dev_copy(NULL, COUNT * es);
  nccl_ok(ncclAllReduce(ds, dr, COUNT, t, op, comm, 0), "ncclAllReduce");
  host_copy(out, dr, COUNT * es);
  snprintf(what, sizeof what, "allreduce %s op %d in_place %d", TYPE_NAMES[ti], (int)op, in_place);
  for (size_t i = 0; i < COUNT; i++) {
    double tol, ref = reduce_ref(all, total, n, i, t, op, &tol);
    expect(what, out, i, t, ref, tol);
  }
  /* reduce to the last rank; recvbuff is NULL on the others when out of place (as NCCL allows) */
  const int root = n - 1;
  CHT_ASSERT(cudaMemcpy(ds, in, COUNT * es, cudaMemcpyHostToDevice) == cudaSuccess, "upload");
  void *rr = in_place ? ds : me == root ? dr : NULL;
  nccl_ok(ncclReduce(ds, rr, COUNT, t, op, root, comm, 0), "ncclReduce");
  if (me == root) {
    host_copy(out, rr, COUNT * es);
    snprintf(what, sizeof what, "reduce %s op %d in_place %d", TYPE_NAMES[ti], (int)op, in_place);
    for (size_t i = 0; i < COUNT; i++) {
      double tol, ref = reduce_ref(all, total, n, i, t, op, &tol);
      expect(what, out, i, t, ref, tol);
    }
  }
  cudaFree(ds);
  if (!in_place) cudaFree(dr);

  /* reduce-scatter: this rank gets block `me`; in place means recv = send + me * COUNT */
  ds = dev_copy(in, total * es);
  dr = in_place ? (char *)ds + (size_t)me * COUNT * es : dev_copy(NULL, COUNT * es);
  nccl_ok(ncclReduceScatter(ds, dr, COUNT, t, op, comm, 0), "ncclReduceScatter");
  host_copy(out, dr, COUNT * es);
  snprintf(what, sizeof what, "reduce_scatter %s op %d in_place %d", TYPE_NAMES[ti], (int)op, in_place);
  for (size_t i = 0; i < COUNT; i++) {
    double tol, ref = reduce_ref(all, total, n, (size_t)me * COUNT + i, t, op, &tol);
    expect(what, out, i, t, ref, tol);
  }
  cudaFree(ds);
  if (!in_place) cudaFree(dr);
  free(in), free(all), free(out);
}

/* allgather and broadcast (from each root in turn): pure data movement, compared bitwise. */
static void test_moves(ncclComm_t comm, MPI_Comm mc, int ti, int in_place, uint64_t seed) {
  const ncclDataType_t t = TYPES[ti];
  const size_t es = tsize(t), bytes = COUNT * es;
  int n, me;
  MPI_Comm_size(mc, &n);
  MPI_Comm_rank(mc, &me);
  char *in = malloc(bytes), *all = malloc(bytes * (size_t)n), *out = malloc(bytes * (size_t)n);
  CHT_ASSERT(in && all && out, "out of memory");
  fill(in, t, COUNT, seed + 104729u * (uint64_t)me, 0);
  MPI_Allgather(in, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, mc);

  char *dr = dev_copy(NULL, bytes * (size_t)n), *ds = in_place ? dr + (size_t)me * bytes : dev_copy(NULL, bytes);
  CHT_ASSERT(cudaMemcpy(ds, in, bytes, cudaMemcpyHostToDevice) == cudaSuccess, "upload");
  nccl_ok(ncclAllGather(ds, dr, COUNT, t, comm, 0), "ncclAllGather");
  host_copy(out, dr, bytes * (size_t)n);
  CHT_ASSERT(memcmp(out, all, bytes * (size_t)n) == 0, "allgather %s in_place %d differs", TYPE_NAMES[ti], in_place);
  checks++;
  if (!in_place) cudaFree(ds);

  for (int root = 0; root < n; root++) {
    ds = in_place ? dr : dev_copy(in, bytes);
    CHT_ASSERT(cudaMemcpy(dr, in, bytes, cudaMemcpyHostToDevice) == cudaSuccess, "upload");
    nccl_ok(ncclBroadcast(ds, dr, COUNT, t, root, comm, 0), "ncclBroadcast");
    host_copy(out, dr, bytes);
    CHT_ASSERT(memcmp(out, all + (size_t)root * bytes, bytes) == 0, "broadcast %s root %d in_place %d differs",
               TYPE_NAMES[ti], root, in_place);
    checks++;
    if (!in_place) cudaFree(ds);
  }
  cudaFree(dr);
  free(in), free(all), free(out);
}

/* Two allreduces in one group: both done, in issue order, after ncclGroupEnd. */
static void test_group(ncclComm_t comm, MPI_Comm mc) {
  int n;
  MPI_Comm_size(mc, &n);
  float one[COUNT], two[COUNT], back[COUNT];
  for (int i = 0; i < COUNT; i++) one[i] = 1, two[i] = 2;
  float *a = dev_copy(one, sizeof one), *b = dev_copy(two, sizeof two);
  nccl_ok(ncclGroupStart(), "ncclGroupStart");
  nccl_ok(ncclAllReduce(a, a, COUNT, ncclFloat32, ncclSum, comm, 0), "ncclAllReduce");
  nccl_ok(ncclAllReduce(b, b, COUNT, ncclFloat32, ncclMax, comm, 0), "ncclAllReduce");
  nccl_ok(ncclGroupEnd(), "ncclGroupEnd");
  host_copy(back, a, sizeof back);
  for (int i = 0; i < COUNT; i++) CHT_ASSERT(back[i] == (float)n, "group sum [%d] = %g", i, back[i]);
  host_copy(back, b, sizeof back);
  for (int i = 0; i < COUNT; i++) CHT_ASSERT(back[i] == 2.0f, "group max [%d] = %g", i, back[i]);
  cudaFree(a), cudaFree(b);
}

/* A communicator over mc: the unique id from mc's rank 0 by MPI_Bcast, as cohort makes them. */
static ncclComm_t open_comm(MPI_Comm mc) {
  int n, me, count = 0, rank = -1, dev = -1;
  MPI_Comm_size(mc, &n);
  MPI_Comm_rank(mc, &me);
  ncclUniqueId id;
  if (me == 0) nccl_ok(ncclGetUniqueId(&id), "ncclGetUniqueId");
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mc);
  ncclComm_t comm = NULL;
  emu_nccl_use_comm(mc);
  nccl_ok(ncclCommInitRank(&comm, n, id, me), "ncclCommInitRank");
  nccl_ok(ncclCommCount(comm, &count), "ncclCommCount");
  nccl_ok(ncclCommUserRank(comm, &rank), "ncclCommUserRank");
  nccl_ok(ncclCommCuDevice(comm, &dev), "ncclCommCuDevice");
  CHT_ASSERT(count == n && rank == me && dev >= 0, "count %d rank %d device %d", count, rank, dev);
  ncclResult_t async = ncclInternalError;
  nccl_ok(ncclCommGetAsyncError(comm, &async), "ncclCommGetAsyncError");
  CHT_ASSERT(async == ncclSuccess, "async error %d", (int)async);
  return comm;
}

static void test_group_of(MPI_Comm mc, const char *name, uint64_t seed) {
  ncclComm_t comm = open_comm(mc);
  int before = checks;
  for (int ti = 0; ti < 7; ti++)
    for (int in_place = 0; in_place < 2; in_place++) {
      for (int o = 0; o < 5; o++) test_reductions(comm, mc, ti, OPS[o], in_place, seed++ * 1000);
      test_moves(comm, mc, ti, in_place, seed++ * 1000);
    }
  test_group(comm, mc);
  nccl_ok(ncclCommDestroy(comm), "ncclCommDestroy");
  int n, me;
  MPI_Comm_size(mc, &n);
  MPI_Comm_rank(mc, &me);
  if (me == 0) printf("%s (%d ranks): %d checks on its rank 0\n", name, n, checks - before);
}

static void test_errors(void) {
  int v = 0;
  nccl_ok(ncclGetVersion(&v), "ncclGetVersion");
  CHT_ASSERT(v >= 22800, "version %d", v);
  float x = 0;
  CHT_ASSERT(ncclAllReduce(&x, &x, 1, ncclFloat32, ncclSum, NULL, 0) == ncclInvalidArgument, "NULL comm accepted");
  CHT_ASSERT(strlen(ncclGetErrorString(ncclInvalidUsage)) > 0, "no error string");
  CHT_ASSERT(ncclGroupEnd() == ncclInvalidUsage, "ncclGroupEnd without start accepted");
#ifdef COHORT_CUDA_EMU
  /* Real NCCL would hang on these; the emulation checks them collectively and says so. */
  int n, me;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  ncclComm_t comm = NULL;
  emu_nccl_use_comm(MPI_COMM_WORLD);
  CHT_ASSERT(ncclCommInitRank(&comm, n + 1, id, me) == ncclInvalidArgument && !comm, "wrong nranks accepted");
  CHT_ASSERT(strstr(ncclGetLastError(NULL), "nranks"), "message: %s", ncclGetLastError(NULL));
  if (n > 1) {
    id.internal[0] = (char)me;
    CHT_ASSERT(ncclCommInitRank(&comm, n, id, me) == ncclInvalidUsage && !comm, "different ids accepted");
  }
  comm = NULL;
  id.internal[0] = 0;
  CHT_ASSERT(ncclCommInitRank(&comm, n, id, (me + 1) % n) == (n > 1 ? ncclInvalidArgument : ncclSuccess),
             "wrong rank accepted");
  if (comm) nccl_ok(ncclCommDestroy(comm), "destroy");
  CHT_ASSERT(ncclAllReduce(&x, &x, 1, ncclFloat16, ncclSum, NULL, 0) == ncclInvalidArgument, "fp16");
#endif
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int n, me, ndev = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  if (cudaGetDeviceCount(&ndev) != cudaSuccess) ndev = 0;
#ifndef COHORT_CUDA_EMU
  if (ndev < n) { /* real NCCL: one GPU per rank */
    if (me == 0) printf("%d GPUs for %d ranks: skipped\n", ndev, n);
    MPI_Finalize();
    return 77;
  }
#endif
  CHT_ASSERT(ndev > 0 && cudaSetDevice(me % ndev) == cudaSuccess, "no device");
  test_errors();
  test_group_of(MPI_COMM_WORLD, "world", 1);
  /* Uneven groups: ranks 0, 2, 4.. and 1, 3, 5.. (3 ranks: sizes 2 and 1). */
  MPI_Comm half;
  MPI_Comm_split(MPI_COMM_WORLD, me % 2, me, &half);
  test_group_of(half, me % 2 ? "odd ranks" : "even ranks", 100 + (uint64_t)(me % 2));
  MPI_Comm_free(&half);
  if (me == 0) printf("worst err/tol over float reductions %.3f; ok\n", worst);
  MPI_Finalize();
  return 0;
}
