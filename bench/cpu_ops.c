/* The CPU backend's non-GEMM ops, timed through the backend seam (ch_backend_cpu), and a GEMM
 * between them: what the kernel thread pool (kernels/cpu/pool.c) buys, and that it costs the
 * GEMMs nothing.
 *
 * The pool's size is fixed per process (COHORT_KERNEL_THREADS, else the BLAS thread count), so
 * bench/cpu_ops.sh runs this program once per kernel thread count and compares.
 *
 *   cpu_ops [--threads N] [--shape B,T,C,V] [--reps R]
 *
 * --threads: BLAS threads (ch_blas_init; 0 = OpenBLAS's default, all cores). Shape: a GPT
 * layer's activations, B sequences of T tokens, width C, vocabulary V (default 8,256,768,4096).
 * Each op runs R times (default 30) after one warm-up call; the median is reported.
 * GEMM lines: the MLP's first projection [B T, C] x [C, 4C], timed three ways: "gemm cold" first
 * of all (no pool thread exists yet), "gemm idle" 20 ms after a pool op (its workers asleep),
 * "gemm hot" right after one (its workers still polling for the next job).
 * Output: "RESULT <kernel_threads> <op> <elements> <median_us> <best_us>", one line per op (the
 * best: the run least disturbed by other processes on a shared machine). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/backend.h"
#include "cohort/kernels.h"
#include "common/bench_util.h"

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static float *buf(size_t n, float scale) {
  float *x = ch_alloc_aligned(sizeof *x * (n ? n : 1));
  if (!x) {
    fprintf(stderr, "cpu_ops: out of memory (%zu floats)\n", n);
    exit(1);
  }
  uint64_t s = 88172645463325252ull;
  for (size_t i = 0; i < n; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x[i] = scale * ((float)(s >> 40) / (float)(1 << 24) * 2.0f - 1.0f);
  }
  return x;
}

static void sleep_us(long us) {
  struct timespec t = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&t, NULL);
}

int main(int argc, char **argv) {
  int threads = 0, reps = 30, B = 8, T = 256, C = 768, V = 4096;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--shape") && i + 1 < argc &&
             sscanf(argv[++i], "%d,%d,%d,%d", &B, &T, &C, &V) == 4) {
    } else {
      fprintf(stderr, "usage: cpu_ops [--threads N] [--shape B,T,C,V] [--reps R]\n");
      return 2;
    }
  }
  if (reps < 1 || reps > 1000 || B < 1 || T < 1 || C < 1 || V < 2) return 2;
  if (ch_blas_init(threads) != CH_OK) {
    fprintf(stderr, "cpu_ops: %s\n", ch_error_message());
    return 1;
  }
  const ch_backend *be = ch_backend_cpu();
  int kt = ch_kernel_threads();
  int64_t rows = (int64_t)B * T, n = rows * C, n4 = 4 * n;
  int64_t nparam = 12LL * C * C; /* a transformer block's weights */
  float *x = buf(n4, 2.0f), *y = buf(n4, 1.0f), *dy = buf(n4, 1.0f), *dx = buf(n4, 0.0f);
  float *w = buf(C, 1.0f), *bb = buf(C, 0.1f), *dw = buf(C, 0.0f), *db = buf(C, 0.0f);
  float *mean = buf(rows, 0.0f), *rstd = buf(rows, 0.0f);
  float *wfc = buf((size_t)C * 4 * C, 0.05f);
  float *logits = buf((size_t)rows * V, 3.0f), *dlogits = buf((size_t)rows * V, 0.0f);
  float *wte = buf((size_t)V * C, 0.1f), *wpe = buf((size_t)T * C, 0.1f);
  float *p = buf(nparam, 0.1f), *g = buf(nparam, 0.01f), *m = buf(nparam, 0.0f), *v = buf(nparam, 0.0f);
  int32_t *tokens = malloc(sizeof *tokens * (size_t)B * (T + 1)); /* windows of T + 1 */
  for (int64_t i = 0; i < (int64_t)B * (T + 1); i++) tokens[i] = (int32_t)((i * 7919) % V);
  ch_span span = {.flat = 0, .local = 0, .n = (size_t)nparam, .decay = 1};
  ch_adamw_args aa = {.lr = 1e-3f, .weight_decay = 0.1f, .beta1 = 0.9f, .beta2 = 0.95f,
                      .bc1 = 0.1f, .sqrt_bc2 = 0.2f, .eps = 1e-8f};
  double *t = malloc(sizeof *t * (size_t)reps), sink = 0;

  /* One GEMM before anything starts the pool. */
  double gflop = 2.0 * rows * C * 4 * C / 1e3; /* MFLOP per us = GFLOP/s */
  ch_sgemm(0, 0, (int)rows, 4 * C, C, 1.0f, x, C, wfc, 4 * C, 0.0f, y, 4 * C); /* warm-up */
  for (int r = 0; r < reps; r++) {
    double t0 = now_us();
    ch_sgemm(0, 0, (int)rows, 4 * C, C, 1.0f, x, C, wfc, 4 * C, 0.0f, y, 4 * C);
    t[r] = now_us() - t0;
  }
  double cold = bench_median(t, reps), cold_best = t[0];

#define TIME(label, elems, call)                                                  \
  do {                                                                            \
    call;                                                                         \
    for (int r = 0; r < reps; r++) {                                              \
      double t0 = now_us();                                                       \
      call;                                                                       \
      t[r] = now_us() - t0;                                                       \
    }                                                                             \
    double med = bench_median(t, reps); /* sorts t: t[0] is the best */            \
    printf("RESULT %d %s %lld %.1f %.1f\n", kt, label, (long long)(elems), med, t[0]); \
  } while (0)

  printf("# cpu_ops: %d BLAS and %d kernel threads, OpenBLAS %s; B %d T %d C %d V %d, %d reps\n",
         threads ? threads : -1, kt, ch_blas_corename(), B, T, C, V, reps);
  printf("RESULT %d gemm_cold %lld %.1f %.1f  # %.1f GFLOP/s (best)\n", kt,
         (long long)rows * C * 4 * C, cold, cold_best, gflop / cold_best);
  TIME("layernorm_fwd", n, ch_op_layernorm_fwd(be, y, mean, rstd, x, w, bb, rows, C, 1e-5f));
  TIME("layernorm_bwd", n, ch_op_layernorm_bwd(be, dx, dw, db, dy, x, mean, rstd, w, rows, C));
  TIME("gelu_fwd", n4, ch_op_gelu_fwd(be, y, x, n4));
  TIME("gelu_bwd", n4, ch_op_gelu_bwd(be, dx, dy, x, n4));
  TIME("add", n, ch_op_add(be, y, x, dy, n));
  TIME("scale", n, ch_op_scale(be, dx, 1.0f, n));
  TIME("sumsq", nparam, ch_op_sumsq(be, p, nparam, &sink));
  TIME("embedding_fwd", n, ch_op_embedding_fwd(be, y, tokens, T + 1, 0, wte, wpe, B, T, C));
  /* the tables stand in for their own gradients (accumulated into, values irrelevant) */
  TIME("embedding_bwd", n, ch_op_embedding_bwd(be, wte, wpe, dy, tokens, T + 1, B, T, C));
  double loss = 0;
  TIME("xent_fused", rows * V,
       ch_op_xent_fused(be, dlogits, logits, tokens + 1, T + 1, B, T, V, 1.0f / rows, &loss));
  TIME("adamw", nparam, ch_op_adamw(be, &span, 1, p, 1, g, 1, m, v, &aa));

  /* GEMMs with the pool alive: its workers asleep, then still polling after an op. */
  for (int r = 0; r < reps; r++) {
    ch_op_add(be, y, x, dy, n);
    sleep_us(20000);
    double t0 = now_us();
    ch_sgemm(0, 0, (int)rows, 4 * C, C, 1.0f, x, C, wfc, 4 * C, 0.0f, y, 4 * C);
    t[r] = now_us() - t0;
  }
  double idle = bench_median(t, reps), idle_best = t[0];
  for (int r = 0; r < reps; r++) {
    ch_op_add(be, y, x, dy, n);
    double t0 = now_us();
    ch_sgemm(0, 0, (int)rows, 4 * C, C, 1.0f, x, C, wfc, 4 * C, 0.0f, y, 4 * C);
    t[r] = now_us() - t0;
  }
  double hot = bench_median(t, reps), hot_best = t[0];
  printf("RESULT %d gemm_idle %lld %.1f %.1f  # %.1f GFLOP/s (best)\n", kt,
         (long long)rows * C * 4 * C, idle, idle_best, gflop / idle_best);
  printf("RESULT %d gemm_hot %lld %.1f %.1f  # %.1f GFLOP/s (best)\n", kt,
         (long long)rows * C * 4 * C, hot, hot_best, gflop / hot_best);
  if (sink < 0 || loss != loss) printf("# (impossible)\n");
  return 0;
}
