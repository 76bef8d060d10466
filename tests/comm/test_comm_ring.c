/* cohort's own collectives (src/comm/ring.c, progress.c, coll.c), run with
 * COHORT_COMM_ALGO=ring unless the environment says otherwise:
 * - a large non-blocking allreduce finishes while the main thread computes without calling
 *   ch_comm_test (the progress thread drives it; MPI's non-blocking collectives would not);
 * - several non-blocking collectives of every kind in flight, completed out of order (FIFO);
 * - the traffic counter: each rank sends exactly the ring's share, every part but one per
 *   reduce-scatter / allgather, i.e. (n-1)/n of the payload to rounding, on every rank; with
 *   COHORT_COMM_NODE_SIZE=k (hierarchical allreduce), node leaders send the leaders' ring
 *   share and the others nothing;
 * - a group alive at ch_runtime_finalize (its thread stopped by the finalize hook) and
 *   destroyed afterwards.
 * The values themselves are checked against a reference by test_comm, run with every
 * COHORT_COMM_ALGO (tests/comm/CMakeLists.txt). */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/comm_mpi.h"
#include "cohort/runtime.h"
#include "cohort/tensor.h"
#include "testlib.h"

static int g_rank, g_size;

/* Busy arithmetic for about `seconds` (no MPI call, no sleep). */
static double compute(double seconds) {
  double t0 = ch_time(), acc = 0.0;
  while (ch_time() - t0 < seconds)
    for (int i = 0; i < 100000; i++) acc += sqrt((double)i);
  return acc;
}

static void test_progress(const ch_group *g) {
  const size_t n = (size_t)4 << 20; /* 16 MiB: rendezvous messages that need progress */
  float *x = malloc(n * sizeof *x);
  CHT_ASSERT(x, "out of memory");
  for (size_t i = 0; i < n; i++) x[i] = (float)(g_rank + 1);
  ch_request req = {0};
  CHT_OK(ch_comm_allreduce(g, x, n, CH_F32, CH_SUM, &req));
  volatile double sink = compute(3.0);
  (void)sink;
  int done = 0;
  CHT_OK(ch_comm_test(&req, &done));
  CHT_ASSERT(done, "a 16 MiB allreduce did not finish during 3 s of computing without tests");
  const float want = (float)g_size * (g_size + 1) / 2;
  for (size_t i = 0; i < n; i += 4099) CHT_ASSERT(x[i] == want, "x[%zu] = %g, want %g", i, x[i], want);
  free(x);
}

static void test_fifo(const ch_group *g) {
  const size_t n = 300007; /* uneven partition, several segments per part */
  const int k = g_size;
  int32_t *a = malloc(n * 4), *rs_in = malloc(n * 4), *rs_out = malloc(n * 4), *ag = malloc(n * 4);
  int32_t *b = malloc(n * 4);
  CHT_ASSERT(a && rs_in && rs_out && ag && b, "out of memory");
  for (size_t i = 0; i < n; i++) {
    a[i] = (int32_t)(i % 1000) + g_rank;
    rs_in[i] = (int32_t)(i % 77) * (g_rank + 1);
    b[i] = g_rank == k - 1 ? (int32_t)(i % 555) : -1;
  }
  size_t off = ch_part_offset(n, k, g_rank), cnt = ch_part_count(n, k, g_rank);
  for (size_t i = 0; i < n; i++) ag[i] = -1;
  for (size_t i = 0; i < cnt; i++) ag[off + i] = (int32_t)(off + i);
  ch_request r[4] = {{0}};
  CHT_OK(ch_comm_allreduce(g, a, n, CH_I32, CH_MAX, &r[0]));
  CHT_OK(ch_comm_reduce_scatter(g, rs_in, rs_out, n, CH_I32, CH_SUM, &r[1]));
  CHT_OK(ch_comm_allgather(g, ag + off, ag, n, CH_I32, &r[2]));
  CHT_OK(ch_comm_broadcast(g, b, n, CH_I32, k - 1, &r[3]));
  for (int i = 3; i >= 0; i--) CHT_OK(ch_comm_wait(&r[i]));
  for (int i = 0; i < 4; i++) CHT_ASSERT(!r[i].active, "request %d still active", i);
  const int32_t tri = (int32_t)(k * (k + 1) / 2);
  for (size_t i = 0; i < n; i++) {
    CHT_ASSERT(a[i] == (int32_t)(i % 1000) + k - 1, "allreduce MAX [%zu] = %d", i, a[i]);
    CHT_ASSERT(ag[i] == (int32_t)i, "allgather [%zu] = %d", i, ag[i]);
    CHT_ASSERT(b[i] == (int32_t)(i % 555), "broadcast [%zu] = %d", i, b[i]);
  }
  for (size_t i = 0; i < cnt; i++)
    CHT_ASSERT(rs_out[i] == (int32_t)((off + i) % 77) * tri, "reduce_scatter [%zu] = %d", i, rs_out[i]);
  free(a), free(rs_in), free(rs_out), free(ag), free(b);
}

/* Bytes rank r of n sends in a ring reduce-scatter (every part but its own) plus a ring
 * allgather (every part but its right neighbour's) of `total` elements of `es` bytes. */
static uint64_t ring_allreduce_bytes(size_t total, int n, int r, size_t es) {
  if (n == 1) return 0;
  return (uint64_t)(2 * total - ch_part_count(total, n, r) - ch_part_count(total, n, (r + 1) % n)) * es;
}

static void test_traffic(const ch_group *g) {
  const char *algo = getenv("COHORT_COMM_ALGO");
  if (algo && strcmp(algo, "ring")) return; /* only the ring counts every byte */
  const char *ns = getenv("COHORT_COMM_NODE_SIZE");
  int node = ns ? atoi(ns) : 0;
  int hier = node > 1 && g_size > node; /* several fake nodes of several ranks */
  const size_t n = 1000003;
  float *x = calloc(n, sizeof *x);
  int32_t *y = calloc(n, sizeof *y);
  CHT_ASSERT(x && y, "out of memory");
  uint64_t before = ch_comm_bytes_sent(g);
  CHT_OK(ch_comm_allreduce(g, x, n, CH_F32, CH_SUM, NULL));
  uint64_t got = ch_comm_bytes_sent(g) - before, want;
  if (!hier) {
    want = ring_allreduce_bytes(n, g_size, g_rank, sizeof(float));
  } else {
    /* Leaders are the first rank of each node; their ring runs over the node count (the
     * last node may be smaller). */
    int nodes = (g_size + node - 1) / node;
    want = g_rank % node ? 0 : ring_allreduce_bytes(n, nodes, g_rank / node, sizeof(float));
  }
  CHT_ASSERT(got == want, "rank %d sent %llu bytes in a %zu-float allreduce, want %llu", g_rank,
             (unsigned long long)got, n, (unsigned long long)want);
  if (!hier && g_size > 1) { /* and it is the even (n-1)/n share, to 1% */
    double share = 2.0 * (g_size - 1) / g_size * (double)n * sizeof(float);
    CHT_ASSERT(fabs((double)got / share - 1.0) < 0.01, "rank %d: %llu bytes vs ring share %.0f",
               g_rank, (unsigned long long)got, share);
  }
  /* Non-blocking reduce-scatter and allgather: (n-1)/n each, counted by the thread too. */
  before = ch_comm_bytes_sent(g);
  ch_request r = {0};
  int32_t *part = calloc(n, sizeof *part);
  CHT_OK(ch_comm_reduce_scatter(g, y, part, n, CH_I32, CH_SUM, &r));
  CHT_OK(ch_comm_wait(&r));
  CHT_OK(ch_comm_allgather(g, part, y, n, CH_I32, &r));
  CHT_OK(ch_comm_wait(&r));
  got = ch_comm_bytes_sent(g) - before;
  want = ring_allreduce_bytes(n, g_size, g_rank, sizeof(int32_t));
  CHT_ASSERT(got == want, "rank %d sent %llu bytes in reduce_scatter+allgather, want %llu", g_rank,
             (unsigned long long)got, (unsigned long long)want);
  free(x), free(y), free(part);
}

int main(int argc, char **argv) {
  setenv("COHORT_COMM_ALGO", "ring", 0);
  ch_runtime *rt = NULL;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  ch_group g, kept;
  CHT_OK(ch_group_world(&g));
  struct { const char *name; void (*fn)(const ch_group *); } tests[] = {
      {"progress", test_progress}, {"fifo", test_fifo}, {"traffic", test_traffic}};
  for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
    double t0 = ch_time();
    tests[i].fn(&g);
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) printf("ok %s (%d ranks, %.2f s)\n", tests[i].name, g_size, ch_time() - t0);
  }
  ch_group_destroy(&g);
  /* A group with a running progress thread left alive at finalize. */
  CHT_OK(ch_group_world(&kept));
  int v = 1;
  ch_request r = {0};
  CHT_OK(ch_comm_allreduce(&kept, &v, 1, CH_I32, CH_SUM, &r));
  CHT_OK(ch_comm_wait(&r));
  CHT_ASSERT(v == g_size, "allreduce on the kept group: %d", v);
  ch_runtime_finalize();
  ch_group_destroy(&kept);
  return 0;
}
