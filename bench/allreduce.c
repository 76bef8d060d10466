/* Allreduce bandwidth of cohort's comm layer against raw MPI, measured in the same run.
 *
 * For each message size (fp32, sum, in place), four variants run interleaved:
 *   cohort   ch_comm_allreduce(g, buf, count, CH_F32, CH_SUM, NULL)      (blocking)
 *   raw      MPI_Allreduce(MPI_IN_PLACE, buf, ..., MPI_COMM_WORLD)        (the peer)
 *   nb       ch_comm_allreduce(..., &req) then ch_comm_wait(&req)          (non-blocking)
 *   rawnb    MPI_Iallreduce(MPI_IN_PLACE, ...) then MPI_Wait               (nb's peer)
 * MPI implements the non-blocking collective separately (Open MPI: coll/libnbc rather than
 * coll/tuned), so nb is compared with rawnb as well as with raw: nb/rawnb is cohort's own
 * overhead, nb/raw what choosing the non-blocking call costs when nothing is overlapped.
 * Every iteration runs all four in a fresh random order (the same on every rank), so slow
 * phases of a noisy machine hit each variant alike, and so does the order: a fixed cyclic order,
 * even with a rotating start, made whichever variant came right after a non-blocking one up to
 * a third slower at 64 KiB - 2 MiB on 2 ranks (Open MPI 4.1.4, whatever the communicator), which
 * showed up as a cohort overhead that was not there. Each call is timed alone:
 * the buffer is refilled from a source copy, a barrier lines the ranks up, and the call's time is
 * the maximum over ranks. The statistic per size is the median (default) or best of the
 * iterations, after warmup calls. The first result of each variant is checked exactly (the
 * inputs are small multiples of 1/64, so any summation order gives the same fp32 sum).
 *
 * Columns follow nccl-tests: algbw = bytes / time; busbw = algbw * 2(n-1)/n, the traffic per
 * rank of a ring allreduce, comparable across rank counts.
 *
 * cohort's algorithm is the one COHORT_COMM_ALGO (mpi|ring|auto) and COHORT_COMM_RING_MIN choose
 * (docs/parallel.md, "Collectives"); the header prints them. coh/raw >= 0.95 from 1 MiB up is
 * issue 15's goal for the ring.
 *
 *   mpirun -n 2 build/bench/allreduce [--min 1K] [--max 64M] [--step 2] [--stat median|best]
 *          [--target-bytes 1G] [--max-iters 100] [--min-iters 5] [--warmup 2] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/comm.h"
#include "cohort/runtime.h"
#include "common/bench_util.h"

enum { V_COHORT = 0, V_RAW, V_NB, V_RAWNB, NV };
static const char *vname[NV] = {"cohort", "raw", "nb", "rawnb"};

/* Same sequence on every rank: the order of variants must agree across ranks. */
static unsigned long long order_rng = 0x2545F4914F6CDD1Dull;
static void shuffle(int *v, int n) {
  for (int i = n - 1; i > 0; i--) {
    order_rng ^= order_rng << 13;
    order_rng ^= order_rng >> 7;
    order_rng ^= order_rng << 17;
    int j = (int)(order_rng % (unsigned long long)(i + 1)), t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
}

/* Input of rank r at index i: a multiple of 1/64 in [1/64, 1]; sums of up to 2^18 such values
 * are exact in fp32, so the expected result does not depend on the reduction order. */
static float input(int r, size_t i) { return (float)((i * 7 + (size_t)r * 13) % 64 + 1) / 64.0f; }

/* Runs variant v once on `buf` (already filled); returns its time on this rank. */
static double run_once(int v, const ch_group *g, float *buf, size_t count) {
  ch_status st = CH_OK;
  double t0 = ch_time();
  if (v == V_COHORT) {
    st = ch_comm_allreduce(g, buf, count, CH_F32, CH_SUM, NULL);
  } else if (v == V_RAW) {
    if (MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
      ch_runtime_fatal(CH_ERR_MPI, "MPI_Allreduce of %zu floats failed", count);
  } else if (v == V_RAWNB) {
    MPI_Request req;
    if (MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req) !=
            MPI_SUCCESS ||
        MPI_Wait(&req, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      ch_runtime_fatal(CH_ERR_MPI, "MPI_Iallreduce of %zu floats failed", count);
  } else {
    ch_request req;
    st = ch_comm_allreduce(g, buf, count, CH_F32, CH_SUM, &req);
    if (st == CH_OK) st = ch_comm_wait(&req);
  }
  double dt = ch_time() - t0;
  if (st != CH_OK) ch_runtime_fatal(st, "%s allreduce of %zu floats failed", vname[v], count);
  return dt;
}

/* Exact check of a reduced buffer; returns the number of wrong elements (0 when right). */
static size_t check(const float *buf, size_t count, int nranks) {
  size_t bad = 0;
  for (size_t i = 0; i < count; i++) {
    float want = 0;
    for (int r = 0; r < nranks; r++) want += input(r, i);
    if (buf[i] != want) bad++;
  }
  return bad;
}

int main(int argc, char **argv) {
  ch_runtime *rt;
  ch_status st = ch_runtime_init(&argc, &argv, NULL, &rt);
  if (st != CH_OK) ch_runtime_fatal(st, "runtime init");
  size_t min_bytes = 1 << 10, max_bytes = (size_t)64 << 20, target = (size_t)1 << 30;
  int step = 2, use_best = 0, max_iters = 100, min_iters = 5, warmup = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) goto usage;
    if (!strcmp(a, "--min")) min_bytes = bench_parse_size(v);
    else if (!strcmp(a, "--max")) max_bytes = bench_parse_size(v);
    else if (!strcmp(a, "--step")) step = atoi(v);
    else if (!strcmp(a, "--stat")) use_best = !strcmp(v, "best");
    else if (!strcmp(a, "--target-bytes")) target = bench_parse_size(v);
    else if (!strcmp(a, "--max-iters")) max_iters = atoi(v);
    else if (!strcmp(a, "--min-iters")) min_iters = atoi(v);
    else if (!strcmp(a, "--warmup")) warmup = atoi(v);
    else goto usage;
    i++;
  }
  if (step < 2 || min_bytes < 4 || max_bytes < min_bytes || min_iters < 1 || max_iters < min_iters)
    goto usage;

  ch_group g;
  st = ch_group_world(&g);
  if (st != CH_OK) ch_runtime_fatal(st, "group");
  int me = g.rank, n = g.size;
  if (me == 0) {
    bench_machine mc;
    bench_machine_get(&mc);
    printf("# allreduce fp32 sum in place: cohort = ch_comm_allreduce blocking, raw = "
           "MPI_Allreduce(MPI_IN_PLACE), nb = ch_comm_allreduce non-blocking + ch_comm_wait, "
           "rawnb = MPI_Iallreduce + MPI_Wait\n");
    printf("# %d ranks on %d node(s), %s, %ld cores online%s; rank 0 bound to cores %s\n", n,
           rt->node_count, mc.model, mc.cores,
           rt->local_size > mc.cores ? " (OVERSUBSCRIBED: ranks share cores)" : "", rt->cpuset);
    printf("# %s\n", mc.mpi);
    const char *algo = getenv("COHORT_COMM_ALGO"), *ring_min = getenv("COHORT_COMM_RING_MIN");
    printf("# cohort's algorithm: COHORT_COMM_ALGO=%s COHORT_COMM_RING_MIN=%s\n",
           algo && *algo ? algo : "auto (default)", ring_min && *ring_min ? ring_min : "default");
    printf("# %s of iterations after %d warmup calls; time = max over ranks; "
           "busbw = algbw * 2(n-1)/n = algbw * %.3f; bandwidths in GB/s (1e9 B/s); "
           "ratios are bandwidth ratios\n",
           use_best ? "best" : "median", warmup, 2.0 * (n - 1) / n);
    printf("%11s %10s %5s |%15s |%15s |%15s |%15s | %7s %7s %7s\n", "", "", "", "cohort", "raw",
           "nb", "rawnb", "", "", "");
    printf("%11s %10s %5s |%7s %7s |%7s %7s |%7s %7s |%7s %7s | %7s %7s %7s\n", "size(B)",
           "count", "iters", "algbw", "busbw", "algbw", "busbw", "algbw", "busbw", "algbw", "busbw",
           "coh/raw", "nb/raw", "nb/rwnb");
    fflush(stdout);
  }

  size_t max_count = max_bytes / sizeof(float);
  float *buf = ch_alloc_aligned(max_count * sizeof(float));
  float *src = ch_alloc_aligned(max_count * sizeof(float));
  double *times = malloc(sizeof(double) * NV * (size_t)max_iters);
  if (!buf || !src || !times) ch_runtime_fatal(CH_ERR_NOMEM, "buffers of %zu bytes", max_bytes);
  for (size_t i = 0; i < max_count; i++) src[i] = input(me, i);

  int failed = 0, size_index = 0;
  for (size_t bytes = min_bytes; bytes <= max_bytes; bytes *= (size_t)step, size_index++) {
    size_t count = bytes / sizeof(float);
    int iters = (int)(target / bytes);
    if (iters < min_iters) iters = min_iters;
    if (iters > max_iters) iters = max_iters;

    /* warmup; the first call of each variant is checked */
    for (int w = 0; w < warmup || w < 1; w++) {
      for (int k = 0; k < NV; k++) {
        int v = (k + size_index) % NV;
        memcpy(buf, src, count * sizeof(float));
        MPI_Barrier(MPI_COMM_WORLD);
        run_once(v, &g, buf, count);
        if (w == 0) {
          size_t bad = check(buf, count, n), all_bad = 0;
          MPI_Allreduce(&bad, &all_bad, 1, MPI_UNSIGNED_LONG, MPI_SUM, MPI_COMM_WORLD);
          if (all_bad) {
            if (me == 0)
              fprintf(stderr, "allreduce: %s gave %zu wrong elements at %zu bytes\n", vname[v],
                      all_bad, bytes);
            failed = 1;
          }
        }
      }
    }

    for (int it = 0; it < iters; it++) {
      int order[NV];
      for (int k = 0; k < NV; k++) order[k] = k;
      shuffle(order, NV);
      for (int k = 0; k < NV; k++) {
        int v = order[k];
        memcpy(buf, src, count * sizeof(float));
        MPI_Barrier(MPI_COMM_WORLD);
        double dt = run_once(v, &g, buf, count), dmax = 0;
        MPI_Allreduce(&dt, &dmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        times[v * max_iters + it] = dmax;
      }
    }

    if (me == 0) {
      double t[NV], alg[NV], bus[NV];
      for (int v = 0; v < NV; v++) {
        double *tv = times + v * max_iters;
        bench_sort(tv, iters);
        t[v] = use_best ? tv[0] : (iters % 2 ? tv[iters / 2] : 0.5 * (tv[iters / 2 - 1] + tv[iters / 2]));
        alg[v] = (double)bytes / t[v] * 1e-9;
        bus[v] = alg[v] * 2.0 * (n - 1) / n;
      }
      printf("%11zu %10zu %5d |%7.3f %7.3f |%7.3f %7.3f |%7.3f %7.3f |%7.3f %7.3f | %7.3f %7.3f "
             "%7.3f\n", bytes, count, iters, alg[V_COHORT], bus[V_COHORT], alg[V_RAW], bus[V_RAW],
             alg[V_NB], bus[V_NB], alg[V_RAWNB], bus[V_RAWNB], t[V_RAW] / t[V_COHORT],
             t[V_RAW] / t[V_NB], t[V_RAWNB] / t[V_NB]);
      fflush(stdout);
    }
    if (bytes > max_bytes / (size_t)step) break; /* avoid overflow past max */
  }

  free(times);
  ch_free_aligned(src);
  ch_free_aligned(buf);
  ch_group_destroy(&g);
  ch_runtime_finalize();
  return failed ? 1 : 0;

usage:
  if (rt->world_rank == 0)
    fprintf(stderr, "usage: %s [--min 1K] [--max 64M] [--step 2] [--stat median|best] "
                    "[--target-bytes 1G] [--max-iters 100] [--min-iters 5] [--warmup 2]\n", argv[0]);
  ch_runtime_finalize();
  return 2;
}
