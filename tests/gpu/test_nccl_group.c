/* The NCCL comm backend (kernels/cuda/comm_nccl.cu) on device buffers against the MPI backend
 * on host copies of the same data (cohort/comm.h). Runs at 2 and 3 ranks: emulated (CI) or on
 * one GPU per rank; exits 77 (skipped) without a device, or with fewer GPUs than local ranks.
 *
 * Each rank's input is integers in [-20, 20] stored in the dtype (a function of the index, the
 * rank and the case), so that:
 * - SUM, MAX, MIN are EXACT in every dtype: sums of at most 3 such integers are exact in fp32,
 *   fp64 and bf16 (8 significant bits hold every integer up to 256);
 * - AVG (floating types only) may differ in its last bits: NCCL's ncclAvg may scale each input
 *   by 1/n before summing, MPI sums and then scales. Both are within a few roundings of the
 *   exact mean, so the error measured as max|got - ref| / max(1, max|ref|) is below
 *   4 * 2^-24 ~ 2.4e-7 in fp32 (tolerance 1e-6) and 4 * 2^-53 in fp64 (tolerance 1e-14).
 *   A lost or doubled rank, or a wrong partition offset, gives errors of 1e-2 and more.
 * bf16 has no MPI reduction: its reference is computed here from every rank's formula.
 *
 * Every collective runs blocking, non-blocking + ch_comm_wait, and non-blocking + a
 * ch_comm_test loop; totals are even (6n) and uneven (7n+1, and 2 < n at 3 ranks, where a
 * rank's part is empty), out of place and in place. Also: requests in flight together, ordering
 * against the compute stream, host buffers delegated to the MPI group, split (with and without
 * a color), barrier. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/comm_mpi.h"
#include "cohort/cuda.h"
#include "cohort/device.h"
#include "cohort/runtime.h"
#include "cohort/tensor.h"
#include "testlib.h"

#define TOL_AVG_F32 1e-6
#define TOL_AVG_F64 1e-14

enum { M_BLOCK = 0, M_WAIT, M_TEST, M_COUNT };
static const char *mode_name[] = {"blocking", "wait", "test"};
static const char *op_name[] = {"SUM", "AVG", "MAX", "MIN"};

static const ch_backend *BE;
static ch_group W, G; /* MPI world (reference) and the NCCL group over it */
static double worst_avg;  /* largest AVG error seen, printed at the end */

/* ---- data ---------------------------------------------------------------------------------- */

static int value(size_t i, int rank, int salt) { return (int)((i * 7 + (size_t)rank * 13 + (size_t)salt * 5) % 41) - 20; }

static void put(void *b, ch_dtype t, size_t i, double v) {
  switch (t) {
    case CH_F32: ((float *)b)[i] = (float)v; break;
    case CH_F64: ((double *)b)[i] = v; break;
    case CH_I32: ((int32_t *)b)[i] = (int32_t)v; break;
    case CH_I64: ((int64_t *)b)[i] = (int64_t)v; break;
    case CH_U8: ((uint8_t *)b)[i] = (uint8_t)v; break;
    case CH_BF16: { /* integers in [-256, 256] are exact: the high half of the fp32 */
      float f = (float)v;
      uint32_t u;
      memcpy(&u, &f, 4);
      ((uint16_t *)b)[i] = (uint16_t)(u >> 16);
      break;
    }
  }
}
static double get(const void *b, ch_dtype t, size_t i) {
  switch (t) {
    case CH_F32: return ((const float *)b)[i];
    case CH_F64: return ((const double *)b)[i];
    case CH_I32: return ((const int32_t *)b)[i];
    case CH_I64: return (double)((const int64_t *)b)[i];
    case CH_U8: return ((const uint8_t *)b)[i];
    case CH_BF16: {
      uint32_t u = (uint32_t)((const uint16_t *)b)[i] << 16;
      float f;
      memcpy(&f, &u, 4);
      return f;
    }
  }
  return 0;
}
static void *host_data(ch_dtype t, size_t n, int rank, int salt) {
  void *b = calloc(n + 1, 8);
  CHT_ASSERT(b, "out of memory");
  for (size_t i = 0; i < n; i++) put(b, t, i, value(i, rank, salt));
  return b;
}
static void *dev_copy(const void *host, size_t bytes) {
  void *d;
  CHT_OK(BE->ops->alloc(BE, bytes + 8, &d));
  CHT_OK(BE->ops->upload(BE, d, host, bytes));
  return d;
}
static void *download(const void *dev, size_t bytes) {
  void *h = calloc(bytes + 8, 1);
  CHT_ASSERT(h, "out of memory");
  CHT_OK(BE->ops->download(BE, h, dev, bytes));
  return h;
}

/* The reference reduction of element i over ranks 0..n-1 (bf16 only: MPI has no bf16). */
static double reduce_ref(ch_redop op, size_t i, int n, int salt) {
  double acc = value(i, 0, salt);
  for (int r = 1; r < n; r++) {
    double v = value(i, r, salt);
    acc = op == CH_MAX ? fmax(acc, v) : op == CH_MIN ? fmin(acc, v) : acc + v;
  }
  return op == CH_AVG ? acc / n : acc;
}

/* Asserts got == ref (AVG on floating types: within its tolerance). */
static void compare(const void *got, const void *ref, ch_dtype t, size_t n, ch_redop op, const char *what) {
  double num = 0, den = 1;
  for (size_t i = 0; i < n; i++) {
    num = fmax(num, fabs(get(got, t, i) - get(ref, t, i)));
    den = fmax(den, fabs(get(ref, t, i)));
    CHT_ASSERT(get(got, t, i) == get(got, t, i), "%s: NaN at %zu", what, i);
  }
  double tol = op != CH_AVG ? 0 : t == CH_F64 ? TOL_AVG_F64 : TOL_AVG_F32;
  if (op == CH_AVG) worst_avg = fmax(worst_avg, num / den);
  CHT_ASSERT(num / den <= tol, "%s [%s]: error %.3g > tolerance %.3g", what, ch_dtype_name(t), num / den, tol);
}

/* Finishes a request started in `mode` (nothing for blocking). */
static void finish(ch_request *req, int mode, const char *what) {
  if (mode == M_WAIT) CHT_OK(ch_comm_wait(req));
  if (mode == M_TEST) {
    int done = 0;
    for (long spins = 0; !done; spins++) {
      CHT_OK(ch_comm_test(req, &done));
      CHT_ASSERT(spins < 100000000L, "%s: ch_comm_test never completed", what);
    }
    CHT_ASSERT(!req->active, "%s: request still active after completion", what);
  }
}
static ch_request *req_for(ch_request *r, int mode) {
  memset(r, 0, sizeof *r);
  return mode == M_BLOCK ? NULL : r;
}

/* ---- collectives ------------------------------------------------------------------------- */

static void check_allreduce(const ch_group *g, const ch_group *ref_g, ch_dtype t, ch_redop op, size_t n, int mode, int salt) {
  char what[128];
  snprintf(what, sizeof what, "allreduce %s n=%zu %s", op_name[op], n, mode_name[mode]);
  size_t bytes = n * ch_dtype_size(t);
  void *h = host_data(t, n, g->rank, salt), *d = dev_copy(h, bytes);
  ch_request r;
  CHT_OK(ch_comm_allreduce(g, d, n, t, op, req_for(&r, mode)));
  if (mode != M_BLOCK) CHT_ASSERT(r.active && !strcmp(r.ops->name, "nccl"), "%s: not a NCCL request", what);
  finish(&r, mode, what);
  if (t == CH_BF16) {
    for (size_t i = 0; i < n; i++) put(h, t, i, reduce_ref(op, i, g->size, salt));
  } else {
    CHT_OK(ch_comm_allreduce(ref_g, h, n, t, op, NULL));
  }
  void *got = download(d, bytes);
  compare(got, h, t, n, op, what);
  BE->ops->free(BE, d);
  free(h), free(got);
}

/* reduce_scatter of `total` into rank's part, in place (recv = send + offset) or not. */
static void check_reduce_scatter(ch_dtype t, ch_redop op, size_t total, int inplace, int mode) {
  char what[128];
  snprintf(what, sizeof what, "reduce_scatter %s total=%zu%s %s", op_name[op], total, inplace ? " in place" : "", mode_name[mode]);
  size_t es = ch_dtype_size(t), mine = ch_part_count(total, G.size, G.rank), off = ch_part_offset(total, G.size, G.rank);
  void *h = host_data(t, total, G.rank, 1), *ref = calloc(mine + 1, es);
  void *d = dev_copy(h, total * es), *drecv = d;
  if (inplace) drecv = (char *)d + off * es;
  else CHT_OK(BE->ops->alloc(BE, mine * es + 8, &drecv));
  ch_request r;
  CHT_OK(ch_comm_reduce_scatter(&G, d, drecv, total, t, op, req_for(&r, mode)));
  finish(&r, mode, what);
  CHT_OK(ch_comm_reduce_scatter(&W, h, ref, total, t, op, NULL));
  void *got = download(drecv, mine * es);
  compare(got, ref, t, mine, op, what);
  if (!inplace) BE->ops->free(BE, drecv);
  BE->ops->free(BE, d);
  free(h), free(ref), free(got);
}

/* allgather of each rank's part; in place: the part already sits at its offset of recv. */
static void check_allgather(ch_dtype t, size_t total, int inplace, int mode) {
  char what[128];
  snprintf(what, sizeof what, "allgather total=%zu%s %s", total, inplace ? " in place" : "", mode_name[mode]);
  size_t es = ch_dtype_size(t), mine = ch_part_count(total, G.size, G.rank), off = ch_part_offset(total, G.size, G.rank);
  void *all = host_data(t, total, 0, 2); /* rank r contributes elements [off_r, +count_r) of this */
  void *dsend, *drecv;
  CHT_OK(BE->ops->alloc(BE, total * es + 8, &drecv));
  CHT_OK(BE->ops->memset(BE, drecv, 0, total * es));
  if (inplace) {
    dsend = (char *)drecv + off * es;
    CHT_OK(BE->ops->upload(BE, dsend, (char *)all + off * es, mine * es));
  } else {
    dsend = dev_copy((char *)all + off * es, mine * es);
  }
  ch_request r;
  CHT_OK(ch_comm_allgather(&G, dsend, drecv, total, t, req_for(&r, mode)));
  finish(&r, mode, what);
  void *got = download(drecv, total * es);
  compare(got, all, t, total, CH_SUM, what);
  if (!inplace) BE->ops->free(BE, dsend);
  BE->ops->free(BE, drecv);
  free(all), free(got);
}

static void check_broadcast(ch_dtype t, size_t n, int root, int mode) {
  char what[128];
  snprintf(what, sizeof what, "broadcast n=%zu root=%d %s", n, root, mode_name[mode]);
  size_t bytes = n * ch_dtype_size(t);
  void *h = host_data(t, n, G.rank, 3), *ref = host_data(t, n, root, 3), *d = dev_copy(h, bytes);
  ch_request r;
  CHT_OK(ch_comm_broadcast(&G, d, n, t, root, req_for(&r, mode)));
  finish(&r, mode, what);
  void *got = download(d, bytes);
  compare(got, ref, t, n, CH_SUM, what);
  BE->ops->free(BE, d);
  free(h), free(ref), free(got);
}

/* Several requests in flight at once, completed in reverse order; and the collective's order
 * against the compute stream: a memset queued just before it must be seen by it, one queued
 * just after it must land after it. */
static void check_overlap_and_order(void) {
  enum { K = 4, N = 1000 };
  void *h[K], *d[K];
  ch_request r[K];
  for (int k = 0; k < K; k++) {
    h[k] = host_data(CH_F32, N, G.rank, 10 + k);
    d[k] = dev_copy(h[k], N * 4);
    memset(&r[k], 0, sizeof r[k]);
    CHT_OK(ch_comm_allreduce(&G, d[k], N, CH_F32, CH_SUM, &r[k]));
  }
  for (int k = K - 1; k >= 0; k--) CHT_OK(ch_comm_wait(&r[k]));
  for (int k = 0; k < K; k++) {
    CHT_OK(ch_comm_allreduce(&W, h[k], N, CH_F32, CH_SUM, NULL));
    float *got = download(d[k], N * 4);
    compare(got, h[k], CH_F32, N, CH_SUM, "allreduce, 4 in flight");
    free(got);
  }
  /* d[0] := 1.0f everywhere (bytes 0x3f800000), first quarter zeroed on the compute stream,
   * allreduce, then the last quarter zeroed: got = n, 0 (before) ... n, 0 (after). */
  float *ones = malloc(N * 4);
  for (int i = 0; i < N; i++) ones[i] = 1.0f;
  CHT_OK(BE->ops->upload(BE, d[0], ones, N * 4));
  CHT_OK(BE->ops->memset(BE, d[0], 0, N));
  CHT_OK(ch_comm_allreduce(&G, d[0], N, CH_F32, CH_SUM, NULL));
  CHT_OK(BE->ops->memset(BE, (char *)d[0] + 3 * N, 0, N));
  float *got = download(d[0], N * 4);
  for (int i = 0; i < N; i++) {
    float want = (i < N / 4 || i >= 3 * N / 4) ? 0.0f : (float)G.size;
    CHT_ASSERT(got[i] == want, "ordering against compute: element %d = %g, want %g", i, got[i], want);
  }
  free(got), free(ones);
  for (int k = 0; k < K; k++) BE->ops->free(BE, d[k]), free(h[k]);
}

/* Host buffers given to the NCCL group go to its MPI group (requests of the MPI backend). */
static void check_host_delegation(void) {
  double loss = G.rank + 0.5, want = 0;
  for (int r = 0; r < G.size; r++) want += r + 0.5;
  CHT_OK(ch_comm_allreduce(&G, &loss, 1, CH_F64, CH_SUM, NULL));
  CHT_ASSERT(loss == want, "host allreduce: %g, want %g", loss, want);
  int64_t flag = G.rank == 1 ? 7 : 0;
  ch_request r = {0};
  CHT_OK(ch_comm_allreduce(&G, &flag, 1, CH_I64, CH_MAX, &r));
  CHT_ASSERT(r.active && !strcmp(r.ops->name, "mpi"), "a host buffer's request should be MPI's");
  CHT_OK(ch_comm_wait(&r));
  CHT_ASSERT(flag == 7, "host allreduce MAX: %lld", (long long)flag);
  int32_t parts[8] = {0};
  parts[G.rank] = G.rank * 10 + 1;
  CHT_OK(ch_comm_allgather(&G, &parts[G.rank], parts, (size_t)G.size, CH_I32, NULL));
  for (int i = 0; i < G.size; i++) CHT_ASSERT(parts[i] == i * 10 + 1, "host allgather [%d] = %d", i, parts[i]);
  int32_t root_val = G.rank == 0 ? 42 : -1;
  CHT_OK(ch_comm_broadcast(&G, &root_val, 1, CH_I32, 0, NULL));
  CHT_ASSERT(root_val == 42, "host broadcast: %d", root_val);
  CHT_OK(ch_comm_barrier(&G, NULL));
  CHT_OK(ch_comm_barrier(&G, &r));
  CHT_OK(ch_comm_wait(&r));
}

/* Split by parity, reverse order (key = -rank), against the same split of the MPI group; then
 * a split where rank 0 joins no group. */
static void check_split(void) {
  ch_group s, ref_s;
  CHT_OK(ch_group_split(&G, G.rank % 2, -G.rank, &s));
  CHT_OK(ch_group_split(&W, W.rank % 2, -W.rank, &ref_s));
  CHT_ASSERT(s.ops && !strcmp(s.ops->name, "nccl"), "split of a NCCL group should be NCCL");
  CHT_ASSERT(s.rank == ref_s.rank && s.size == ref_s.size, "split: rank %d/%d, MPI's %d/%d", s.rank, s.size, ref_s.rank, ref_s.size);
  for (int mode = 0; mode < M_COUNT; mode++) check_allreduce(&s, &ref_s, CH_F32, CH_SUM, 1001, mode, 4);
  ch_group_destroy(&s);
  ch_group_destroy(&ref_s);

  CHT_OK(ch_group_split(&G, G.rank == 0 ? CH_GROUP_NO_COLOR : 0, G.rank, &s));
  CHT_OK(ch_group_split(&W, W.rank == 0 ? CH_GROUP_NO_COLOR : 0, W.rank, &ref_s));
  if (G.rank == 0) {
    CHT_ASSERT(!s.ops && s.rank == -1 && s.size == 0, "no color: ops %p rank %d size %d", (void *)s.ops, s.rank, s.size);
    float x = 1;
    CHT_ASSERT(ch_comm_allreduce(&s, &x, 1, CH_F32, CH_SUM, NULL) == CH_ERR_INVALID, "collective on a no-color group");
  } else {
    CHT_ASSERT(s.size == G.size - 1 && s.rank == G.rank - 1, "split without rank 0: %d/%d", s.rank, s.size);
    check_allreduce(&s, &ref_s, CH_F32, CH_MAX, 77, M_WAIT, 5);
  }
  ch_group_destroy(&s);
  ch_group_destroy(&ref_s);
}

int main(int argc, char **argv) {
  ch_runtime *rt;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  const ch_cuda_plugin *p = cohort_cuda_plugin();
  int emulated = strstr(p->flavor, "emulated") != NULL, count = p->device_count();
  int skip = count == 0 || (!emulated && count < rt->local_size), any_skip = 0;
  MPI_Allreduce(&skip, &any_skip, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (any_skip) {
    if (rt->world_rank == 0)
      printf(count == 0 ? "no CUDA device: skipped\n" : "%d CUDA devices for %d local ranks: skipped\n", count, rt->local_size);
    ch_runtime_finalize();
    return 77;
  }
  ch_backend *be;
  CHT_OK(p->backend_create(emulated ? 0 : rt->local_rank, CH_PRECISION_FP32, &be));
  BE = be;
  CHT_OK(ch_group_world(&W));
  CHT_OK(p->group_create(&W, BE, &G));
  CHT_ASSERT(G.rank == W.rank && G.size == W.size && !strcmp(G.ops->name, "nccl"), "NCCL group over world");
  const int n = G.size;
  const size_t totals[] = {6 * (size_t)n, 7 * (size_t)n + 1, 2};

  for (int mode = 0; mode < M_COUNT; mode++) {
    for (ch_redop op = CH_SUM; op <= CH_MIN; op++) {
      check_allreduce(&G, &W, CH_F32, op, 4099, mode, op);
      check_allreduce(&G, &W, CH_F64, op, 33, mode, op);
    }
    check_allreduce(&G, &W, CH_F32, CH_SUM, 1, mode, 6);
    check_allreduce(&G, &W, CH_I32, CH_SUM, 100, mode, 7);
    check_allreduce(&G, &W, CH_I64, CH_MAX, 100, mode, 8);
    check_allreduce(&G, &W, CH_BF16, CH_SUM, 257, mode, 9);
    check_allreduce(&G, &W, CH_BF16, CH_MAX, 257, mode, 9);
    for (int ti = 0; ti < 3; ti++)
      for (int inplace = 0; inplace < 2; inplace++) {
        check_reduce_scatter(CH_F32, CH_SUM, totals[ti], inplace, mode);
        check_reduce_scatter(CH_F32, CH_AVG, totals[ti], inplace, mode);
        check_reduce_scatter(CH_F64, CH_MAX, totals[ti], inplace, mode);
        check_allgather(CH_F32, totals[ti], inplace, mode);
        check_allgather(CH_I64, totals[ti], inplace, mode);
        check_allgather(CH_BF16, totals[ti], inplace, mode);
      }
    check_broadcast(CH_F32, 1001, n - 1, mode);
    check_broadcast(CH_I32, 5, 0, mode);
  }
  check_overlap_and_order();
  check_host_delegation();
  check_split();

  ch_group_destroy(&G);
  ch_group_destroy(&W);
  p->backend_destroy(be);
  if (rt->world_rank == 0)
    printf("nccl group (%s, %d ranks): all collectives match MPI; worst AVG error %.3g (tol fp32 %.0e, fp64 %.0e)\n",
           p->flavor, n, worst_avg, TOL_AVG_F32, TOL_AVG_F64);
  ch_runtime_finalize();
  return 0;
}
