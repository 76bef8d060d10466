/* The bf16 GEMM (kernels/cpu/gemm_bf16.c) against references, on CPUs with AVX-512 BF16
 * (exit 77 elsewhere).
 *
 * Two references, two tolerances, both relative to S = |alpha| sum_p |a_ip b_pj| + |beta c_ij|
 * (the size of the terms, which bounds any summation error whatever the result's own size):
 *  - exact: a double-accumulated loop over the bf16-rounded inputs. bf16 x bf16 products are
 *    exact in fp32, so the kernel differs from it only by fp32 rounding of its k additions, the
 *    alpha scaling per KC slice and the beta term: at most (k + 8) 2^-24 S (the standard bound
 *    k u for a k-term recursive sum, plus a few roundings). Any wrong index, transpose, stride
 *    or dropped term is an O(S) error and fails it.
 *  - sgemm: OpenBLAS's fp32 result on the unrounded inputs. Rounding each input to bf16 moves it
 *    by at most 2^-8 relative (bf16's unit roundoff), so each product by at most about 2^-7:
 *    |bf16 - fp32| <= 2^-7 S = 7.8e-3 S (+ fp32 rounding), reached only by a single product
 *    (k = 1); 1e-2 S is the band bf16 training is held to (tests/gpu/test_cuda_train.sh).
 * And: thread counts 1, 2 and 3 give identical bits (the per-element k order is fixed), and so
 * do different row counts for the rows they share (batch invariance).
 *
 * --bench: GFLOP/s of bf16 against sgemm at GPT-2 124M's and gpt-tiny's training shapes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/kernels.h"
#include "kernels/cpu/cpu_kernels.h"
#include "testlib.h"

static float *rnd(size_t n, uint64_t stream) {
  float *x = malloc(sizeof *x * (n ? n : 1));
  cht_fill_uniform(x, n, 7, stream);
  return x;
}

static float bf16_round(float x) {
  uint16_t h;
  cpu_f32_to_bf16(&h, &x, 1);
  float y;
  cpu_bf16_to_f32(&y, &h, 1);
  return y;
}

/* One case: C (ldc) = alpha op(A) op(B) + beta C, with every leading dimension `pad` wider
 * than its rows. beta == 0 starts C as NaN: the kernel must not read it. */
static void check(int ta, int tb, int m, int n, int k, float alpha, float beta, int pad) {
  int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
  size_t as = (size_t)(ta ? k : m) * lda, bs = (size_t)(tb ? n : k) * ldb, cs = (size_t)m * ldc;
  float *a = rnd(as, 1), *b = rnd(bs, 2), *c0 = rnd(cs, 3);
  if (beta == 0.0f)
    for (size_t i = 0; i < cs; i++) c0[i] = NAN;
  float *c1 = malloc(sizeof *c1 * cs), *c2 = malloc(sizeof *c2 * cs), *c3 = malloc(sizeof *c3 * cs);
  float *cf = malloc(sizeof *cf * cs);
  memcpy(c1, c0, sizeof *c1 * cs), memcpy(c2, c0, sizeof *c2 * cs), memcpy(c3, c0, sizeof *c3 * cs);
  memcpy(cf, c0, sizeof *cf * cs);
  cpu_gemm_bf16(1, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
  cpu_gemm_bf16(2, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c2, ldc);
  cpu_gemm_bf16(3, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c3, ldc);
  ch_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, cf, ldc);
  CHT_ASSERT(!memcmp(c1, c2, sizeof *c1 * cs) && !memcmp(c1, c3, sizeof *c1 * cs),
             "ta=%d tb=%d %dx%dx%d: 1, 2 and 3 threads differ", ta, tb, m, n, k);
  double worst_exact = 0, worst_fp32 = 0;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0, size = 0;
      for (int p = 0; p < k; p++) {
        float av = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
        float bv = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
        s += (double)bf16_round(av) * bf16_round(bv);
        size += fabs((double)av * bv);
      }
      double cin = c0[(size_t)i * ldc + j];
      double ref = alpha * s + (beta == 0.0f ? 0.0 : beta * cin);
      size = fabs(alpha) * size + (beta == 0.0f ? 0.0 : fabs(beta * cin)) + 1e-30;
      double got = c1[(size_t)i * ldc + j], fp32 = cf[(size_t)i * ldc + j];
      double e1 = fabs(got - ref) / size, e2 = fabs(got - fp32) / size;
      CHT_ASSERT(e1 <= (k + 8) * 0x1p-24, "ta=%d tb=%d %dx%dx%d alpha=%g beta=%g: C[%d,%d] = %.9g, "
                 "exact %.9g (err %.3g of the terms' size)", ta, tb, m, n, k, alpha, beta, i, j,
                 got, ref, e1);
      CHT_ASSERT(e2 <= 1e-2, "ta=%d tb=%d %dx%dx%d: C[%d,%d] = %g, sgemm %g (err %.3g)", ta, tb,
                 m, n, k, i, j, got, fp32, e2);
      worst_exact = fmax(worst_exact, e1), worst_fp32 = fmax(worst_fp32, e2);
    }
  /* Columns past n (the stride's padding) are never written. */
  for (int i = 0; i < m; i++)
    for (int j = n; j < ldc; j++) {
      float v = c1[(size_t)i * ldc + j], v0 = c0[(size_t)i * ldc + j];
      CHT_ASSERT(memcmp(&v, &v0, sizeof v) == 0, "ta=%d tb=%d: C[%d,%d] past n written", ta, tb,
                 i, j);
    }
  printf("ok ta=%d tb=%d %4dx%4dx%4d alpha=%-4g beta=%-4g pad=%d  err/exact %.2e  err/fp32 %.2e\n",
         ta, tb, m, n, k, alpha, beta, pad, worst_exact, worst_fp32);
  free(a), free(b), free(c0), free(c1), free(c2), free(c3), free(cf);
}

/* Batch invariance: the rows of an m-row GEMM are bit for bit the first rows of a 40-row one
 * over the same A rows (a request's logits must not depend on what it was batched with); the
 * kernel's short tiles (1, 2, 4, 8 of its 12 rows) and the thread split must not show. */
static void check_rows(int ta, int tb) {
  int M = 40, n = 70, k = 300;
  float *a = rnd((size_t)M * k, 11), *b = rnd((size_t)k * n, 12);
  float *full = malloc(sizeof *full * (size_t)M * n), *part = malloc(sizeof *part * (size_t)M * n);
  /* A^T stored [k, M]: a prefix of rows of op(A) is a prefix of columns, lda stays M. */
  cpu_gemm_bf16(2, ta, tb, M, n, k, 1.0f, a, ta ? M : k, b, tb ? k : n, 0.0f, full, n);
  static const int ms[] = {1, 2, 3, 5, 9, 12, 13, 25, 39};
  for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
    cpu_gemm_bf16(1, ta, tb, ms[i], n, k, 1.0f, a, ta ? M : k, b, tb ? k : n, 0.0f, part, n);
    CHT_ASSERT(!memcmp(part, full, sizeof *part * (size_t)ms[i] * n),
               "ta=%d tb=%d: the rows of a %d-row GEMM differ from those of a %d-row one", ta, tb,
               ms[i], M);
  }
  printf("ok ta=%d tb=%d: rows of 1..39-row GEMMs equal the 40-row GEMM's bit for bit\n", ta, tb);
  free(a), free(b), free(full), free(part);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best of a few runs of one GEMM (C = A B, row-major, trans as given), in GFLOP/s, through
 * cpu_gemm: the ch_blas_init thread count, one thread up to 2^22 multiply-adds, for both. */
static double gflops(int bf16, int ta, int tb, int m, int n, int k) {
  float *a = rnd((size_t)m * k, 4), *b = rnd((size_t)k * n, 5), *c = rnd((size_t)m * n, 6);
  double best = 1e30, flop = 2.0 * m * n * k;
  int reps = flop > 2e10 ? 2 : flop > 1e9 ? 4 : 200; /* best of many for microsecond GEMMs */
  for (int r = 0; r < reps; r++) {
    double t = now();
    cpu_gemm(bf16, ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c, n);
    t = now() - t;
    if (t < best) best = t;
  }
  free(a), free(b), free(c);
  return flop / best * 1e-9;
}

static void bench(void) {
  /* Rows x (in x out) of the training GEMMs: the forward y = x W (NN), and backward's
   * dx = dy W^T (NT) and dW = x^T dy (TN) for the widest layer. */
  static const struct { const char *what; int ta, tb, m, n, k; } shapes[] = {
    {"124M qkv      fwd", 0, 0, 1024, 2304, 768},  {"124M attn.proj fwd", 0, 0, 1024, 768, 768},
    {"124M fc       fwd", 0, 0, 1024, 3072, 768},  {"124M fc.proj  fwd", 0, 0, 1024, 768, 3072},
    {"124M lm_head  fwd", 0, 1, 1024, 50304, 768}, {"124M fc       dx ", 0, 1, 1024, 768, 3072},
    {"124M fc       dW ", 1, 0, 768, 3072, 1024},  {"tiny qkv      fwd", 0, 0, 2048, 384, 128},
    {"tiny fc       fwd", 0, 0, 2048, 512, 128},   {"tiny fc.proj  fwd", 0, 0, 2048, 128, 512},
    {"tiny fc       dW ", 1, 0, 128, 512, 2048},   {"tiny lm_head  fwd", 0, 1, 2048, 256, 128},
    /* decoding: a few rows against a weight matrix (one GEMM thread, SERIAL_MNK) */
    {"124M qkv   decode1", 0, 0, 1, 2304, 768},    {"124M lm_h  decode1", 0, 1, 1, 50304, 768},
    {"124M qkv   decode8", 0, 0, 8, 2304, 768},    {"tiny qkv   decode1", 0, 0, 1, 384, 128},
    {"tiny lm_h  decode1", 0, 1, 1, 256, 128},     {"tiny qkv  decode32", 0, 0, 32, 384, 128},
  };
  printf("%-20s %-18s %9s %9s %9s %9s\n", "GEMM", "m x n x k", "sgemm/1", "bf16/1", "sgemm/2",
         "bf16/2");
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
    double g[4];
    for (int t = 1; t <= 2; t++) {
      CHT_OK(ch_blas_init(t));
      g[2 * (t - 1)] = gflops(0, shapes[i].ta, shapes[i].tb, shapes[i].m, shapes[i].n, shapes[i].k);
      g[2 * (t - 1) + 1] = gflops(1, shapes[i].ta, shapes[i].tb, shapes[i].m, shapes[i].n,
                                  shapes[i].k);
    }
    char dims[32];
    snprintf(dims, sizeof dims, "%dx%dx%d", shapes[i].m, shapes[i].n, shapes[i].k);
    printf("%-20s %-18s %9.1f %9.1f %9.1f %9.1f\n", shapes[i].what, dims, g[0], g[1], g[2], g[3]);
    fflush(stdout);
  }
}

int main(int argc, char **argv) {
  if (!cpu_has_avx512bf16()) {
    printf("SKIP: this CPU has no AVX-512 BF16\n");
    return 77;
  }
  CHT_OK(ch_blas_init(1));
  if (argc > 1 && !strcmp(argv[1], "--bench")) {
    bench();
    return 0;
  }
  static const int sizes[][3] = {{1, 1, 1},    {7, 5, 3},     {33, 65, 17},  {100, 7, 257},
                                 {1, 300, 64}, {257, 33, 100}, {13, 97, 513}, {130, 70, 1}};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        check(ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], 1.0f, 0.0f, (int)s % 3);
  /* alpha and beta variants (beta 1: accumulation, as the dW GEMMs). */
  check(0, 0, 37, 45, 300, 0.5f, 0.25f, 3);
  check(1, 0, 40, 33, 600, 1.0f, 1.0f, 1);
  check(0, 1, 29, 70, 129, -2.0f, 1.0f, 0);
  check(1, 1, 50, 40, 77, 0.125f, -0.5f, 5);
  /* Sizes past the cache blocks: m > MC (384), n > NC (3072), k > 2 KC (512). */
  check(0, 0, 400, 3100, 40, 1.0f, 0.0f, 1);
  check(0, 1, 390, 40, 1100, 1.0f, 1.0f, 0);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) check_rows(ta, tb);
  /* Through cpu_gemm, the CPU backend's entry: the same bits as the kernel on its threads. */
  {
    int m = 20, n = 30, k = 40;
    float *a = rnd((size_t)m * k, 8), *b = rnd((size_t)k * n, 9);
    float *c1 = calloc((size_t)m * n, sizeof *c1), *c2 = calloc((size_t)m * n, sizeof *c2);
    cpu_gemm(1, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c1, n);
    cpu_gemm_bf16(1, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c2, n);
    CHT_ASSERT(!memcmp(c1, c2, sizeof *c1 * (size_t)m * n), "cpu_gemm(bf16=1) is not the kernel");
    free(a), free(b), free(c1), free(c2);
  }
  printf("test_gemm_bf16: ok\n");
  return 0;
}
