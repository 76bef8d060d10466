/* cuBLAS and cuBLASLt as cohort calls them (the subset kernels/cuda uses), against a naive loop
 * in double on the same inputs: every GEMM entry point, the 4 transpose combinations, odd
 * shapes with padded leading dimensions, strided batches, bf16 inputs and outputs, every
 * cuBLASLt epilogue cohort uses, in-place C == D, the m/n/k = 0 cases and the argument checks.
 * Built against the emulation (the host reference GEMM) and against the real libraries.
 *
 * Tolerance, per element: a float sum of k products computed in any order (one accumulator in
 * k order here, split-k or FMA trees on a GPU) is within k * 2^-24 * sum_p |a_ip b_pj| of the
 * exact sum; alpha, beta * C and the bias add three more roundings. So
 *   tol = (k + 4) * 2^-24 * (|alpha| sum_p |a b| + |beta c| + |bias|),
 * times 2 after GELU (slope <= 1.13, plus tanh's own ulps); bf16 out adds the store's rounding,
 * half a bf16 ulp, at most 2^-8 relative (8 significant bits): tol (1 + 2^-8) + 2^-8 |ref|.
 * bf16 inputs are rounded before the reference sees them, so the reference is exact for them
 * too. The worst measured error / tol is printed per group. */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu/cpu_kernels.h"
#include "testlib.h"

#define U 5.9604644775390625e-8 /* 2^-24 */

enum api { SGEMM, GEMMEX, SGEMM_SB, GEMMEX_SB, LT };
enum { EPI_NONE = 0 }; /* cuBLAS calls: no epilogue */

typedef struct {
  enum api api;
  int ta, tb, m, n, k, pad, batch;
  cudaDataType ab, cd; /* A/B type, C/D type */
  float alpha, beta;
  unsigned epi;        /* cuBLASLt epilogue, EPI_NONE for cuBLAS */
  int bf16_bias;       /* BIAS epilogues: a bf16 bias (BIAS_DATA_TYPE) under an fp32 D */
} gcase;

static cublasHandle_t H;
static cublasLtHandle_t LTH;
static double worst[5]; /* worst err / tol per api */
static int skipped;

static void cuda_ok(cudaError_t e, const char *what) {
  CHT_ASSERT(e == cudaSuccess, "%s: %s", what, cudaGetErrorString(e));
}
static void blas_ok(cublasStatus_t s, const char *what) {
  CHT_ASSERT(s == CUBLAS_STATUS_SUCCESS, "%s: %s", what, cublasGetStatusName(s));
}

/* Deterministic U(-1, 1) values. */
static float urand(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(*s >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static size_t esize(cudaDataType t) { return t == CUDA_R_16BF ? 2 : 4; }

/* n random values of type t: `vals` gets them as floats (bf16-rounded when t is bf16), the
 * return value is a device copy in type t. */
static void *dev_random(float *vals, size_t n, cudaDataType t, uint64_t *seed) {
  for (size_t i = 0; i < n; i++) vals[i] = urand(seed);
  void *host = malloc(n * esize(t) + 1), *dev = NULL;
  CHT_ASSERT(host, "out of memory");
  if (t == CUDA_R_16BF) {
    cpu_f32_to_bf16(host, vals, (int64_t)n);
    cpu_bf16_to_f32(vals, host, (int64_t)n);
  } else {
    memcpy(host, vals, n * 4);
  }
  cuda_ok(cudaMalloc(&dev, n * esize(t) + 1), "cudaMalloc");
  cuda_ok(cudaMemcpy(dev, host, n * esize(t), cudaMemcpyHostToDevice), "upload");
  free(host);
  return dev;
}

static void download(float *vals, const void *dev, size_t n, cudaDataType t) {
  void *host = malloc(n * esize(t) + 1);
  CHT_ASSERT(host, "out of memory");
  cuda_ok(cudaMemcpy(host, dev, n * esize(t), cudaMemcpyDeviceToHost), "download");
  if (t == CUDA_R_16BF)
    cpu_bf16_to_f32(vals, host, (int64_t)n);
  else
    memcpy(vals, host, n * 4);
  free(host);
}

static double gelu(double x) { return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

static int has_bias(unsigned e) {
  return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_RELU_BIAS || e == CUBLASLT_EPILOGUE_GELU_BIAS;
}

static cublasLtMatrixLayout_t lt_layout(cudaDataType t, int rows, int cols, int ld, int batch,
                                        long long stride) {
  cublasLtMatrixLayout_t l;
  blas_ok(cublasLtMatrixLayoutCreate(&l, t, (uint64_t)rows, (uint64_t)cols, ld), "layout");
  int32_t b = batch;
  int64_t s = stride;
  blas_ok(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &b, sizeof b), "batch");
  blas_ok(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s, sizeof s), "stride");
  return l;
}

/* One cuBLASLt matmul, D = C in place; returns its status (NOT_SUPPORTED is allowed only on
 * the real library, whose kernels do not cover every epilogue/transpose/type combination). */
static cublasStatus_t lt_run(const gcase *g, const void *a, int lda, long long sa, const void *b,
                             int ldb, long long sb, void *c, int ldc, long long sc, void *bias) {
  cublasLtMatmulDesc_t d;
  blas_ok(cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
  int32_t ta = g->ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  uint32_t epi = g->epi;
  blas_ok(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "transa");
  blas_ok(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "transb");
  blas_ok(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "epilogue");
  if (bias) {
    int32_t bt = g->bf16_bias ? CUDA_R_16BF : g->cd;
    int64_t bs = g->epi == CUBLASLT_EPILOGUE_BGRADB ? g->n : g->m;
    blas_ok(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "bias");
    blas_ok(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt), "bias type");
    blas_ok(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &bs, sizeof bs), "bias stride");
    uint32_t back = 0;
    size_t w = 0;
    blas_ok(cublasLtMatmulDescGetAttribute(d, CUBLASLT_MATMUL_DESC_EPILOGUE, &back, sizeof back, &w), "get");
    CHT_ASSERT(back == epi && w == sizeof back, "epilogue read back %u", back);
  }
  cublasLtMatrixLayout_t la = lt_layout(g->ab, g->ta ? g->k : g->m, g->ta ? g->m : g->k, lda, g->batch, sa);
  cublasLtMatrixLayout_t lb = lt_layout(g->ab, g->tb ? g->n : g->k, g->tb ? g->k : g->n, ldb, g->batch, sb);
  cublasLtMatrixLayout_t lc = lt_layout(g->cd, g->m, g->n, ldc, g->batch, sc);
  cublasLtMatmulPreference_t pref;
  uint64_t ws = 0;
  blas_ok(cublasLtMatmulPreferenceCreate(&pref), "pref");
  blas_ok(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), "ws");
  cublasLtMatmulHeuristicResult_t res;
  int got = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(LTH, d, la, lb, lc, lc, pref, 1, &res, &got);
  if (st == CUBLAS_STATUS_SUCCESS && got == 0) st = CUBLAS_STATUS_NOT_SUPPORTED;
  if (st == CUBLAS_STATUS_SUCCESS) {
    CHT_ASSERT(res.state == CUBLAS_STATUS_SUCCESS, "heuristic state %d", (int)res.state);
    st = cublasLtMatmul(LTH, d, &g->alpha, a, la, b, lb, &g->beta, c, lc, c, lc, &res.algo, NULL,
                        0, 0);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(d);
  return st;
}

/* Runs one case and checks every output element (or `samples` random ones when > 0). */
static void run_case(const gcase *g, uint64_t seed, int samples) {
  const int arows = g->ta ? g->k : g->m, acols = g->ta ? g->m : g->k;
  const int brows = g->tb ? g->n : g->k, bcols = g->tb ? g->k : g->n;
  const int lda = arows + g->pad, ldb = brows + g->pad, ldc = g->m + g->pad;
  /* Batch strides leave a gap after each matrix, so a stride bug reads or hits the gap. */
  const long long sa = (long long)lda * acols + 3, sb = (long long)ldb * bcols + 5;
  const long long sc = (long long)ldc * g->n + 7;
  const size_t na = (size_t)(sa * g->batch), nb = (size_t)(sb * g->batch), nc = (size_t)(sc * g->batch);
  const int bgrad = g->epi == CUBLASLT_EPILOGUE_BGRADB, bias = has_bias(g->epi);
  const size_t nbias = (size_t)(bgrad ? g->n : g->m) * (size_t)g->batch;
  float *a = malloc(na * 4 + 4), *b = malloc(nb * 4 + 4), *c0 = malloc(nc * 4 + 4);
  float *c = malloc(nc * 4 + 4), *bv = malloc(nbias * 4 + 4), *bgot = malloc(nbias * 4 + 4);
  CHT_ASSERT(a && b && c0 && c && bv && bgot, "out of memory");
  void *da = dev_random(a, na, g->ab, &seed), *db = dev_random(b, nb, g->ab, &seed);
  void *dc = dev_random(c0, nc, g->cd, &seed), *dbias = NULL;
  if (bias || bgrad) dbias = dev_random(bv, nbias, g->bf16_bias ? CUDA_R_16BF : g->cd, &seed);
  /* beta == 0: cuBLAS must not read C. NaNs there would show through. */
  if (g->beta == 0.0f && g->api != LT) {
    for (size_t i = 0; i < nc; i++) c0[i] = NAN;
    void *h = malloc(nc * esize(g->cd) + 1);
    CHT_ASSERT(h, "out of memory");
    if (g->cd == CUDA_R_16BF) {
      cpu_f32_to_bf16(h, c0, (int64_t)nc);
      cpu_bf16_to_f32(c0, h, (int64_t)nc); /* the bits the padding check compares */
    } else {
      memcpy(h, c0, nc * 4);
    }
    cuda_ok(cudaMemcpy(dc, h, nc * esize(g->cd), cudaMemcpyHostToDevice), "upload");
    free(h);
  }

  const cublasOperation_t ta = g->ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  switch (g->api) {
  case SGEMM:
    st = cublasSgemm(H, ta, tb, g->m, g->n, g->k, &g->alpha, da, lda, db, ldb, &g->beta, dc, ldc);
    break;
  case GEMMEX:
    st = cublasGemmEx(H, ta, tb, g->m, g->n, g->k, &g->alpha, da, g->ab, lda, db, g->ab, ldb,
                      &g->beta, dc, g->cd, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    break;
  case SGEMM_SB:
    st = cublasSgemmStridedBatched(H, ta, tb, g->m, g->n, g->k, &g->alpha, da, lda, sa, db, ldb,
                                   sb, &g->beta, dc, ldc, sc, g->batch);
    break;
  case GEMMEX_SB:
    st = cublasGemmStridedBatchedEx(H, ta, tb, g->m, g->n, g->k, &g->alpha, da, g->ab, lda, sa,
                                    db, g->ab, ldb, sb, &g->beta, dc, g->cd, ldc, sc, g->batch,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    break;
  case LT:
    st = lt_run(g, da, lda, sa, db, ldb, sb, dc, ldc, sc, dbias);
    break;
  }
#ifndef COHORT_CUDA_EMU
  if (g->api == LT && st == CUBLAS_STATUS_NOT_SUPPORTED) {
    skipped++;
    goto done;
  }
#endif
  /* the case in full: a real cuBLAS(Lt) refusing one must say which (the api's index, then
   * shape, transposes, epilogue, batch, types) */
  CHT_ASSERT(st == CUBLAS_STATUS_SUCCESS,
             "gemm api %d m %d n %d k %d ta %d tb %d epilogue %d batch %d ab %d cd %d "
             "bf16 bias %d beta %g: %s",
             (int)g->api, g->m, g->n, g->k, g->ta, g->tb, (int)g->epi, (int)g->batch, (int)g->ab,
             (int)g->cd, g->bf16_bias, (double)g->beta, cublasGetStatusName(st));
  cuda_ok(cudaDeviceSynchronize(), "sync");
  download(c, dc, nc, g->cd);
  if (bgrad) download(bgot, dbias, nbias, g->cd);

  const double out_rel = g->cd == CUDA_R_16BF ? 1.0 / 256 : 0;
  const double act_mul = (g->epi & CUBLASLT_EPILOGUE_GELU) ? 2 : 1;
  for (int q = 0; q < g->batch; q++) {
    const float *A = a + q * sa, *B = b + q * sb, *C0 = c0 + q * sc, *C = c + q * sc;
    const float *bias_q = bv + (size_t)q * (size_t)g->m;
    /* Elements outside the m rows of each column and the gaps between batches: untouched. */
    for (long long t = 0; t < sc; t++) {
      long long col = t / ldc, row = t % ldc;
      if (col < g->n && row < g->m) continue;
      CHT_ASSERT(memcmp(&C[t], &C0[t], 4) == 0, "padding at %lld overwritten (batch %d)", t, q);
    }
    for (int s = 0; s < (samples > 0 ? samples : g->m * g->n); s++) {
      int i = samples > 0 ? (int)((urand(&seed) + 1) / 2 * g->m) % g->m : s % g->m;
      int j = samples > 0 ? (int)((urand(&seed) + 1) / 2 * g->n) % g->n : s / g->m;
      double sum = 0, mag = 0;
      for (int p = 0; p < g->k; p++) {
        double x = g->ta ? A[p + (size_t)i * lda] : A[i + (size_t)p * lda];
        double y = g->tb ? B[j + (size_t)p * ldb] : B[p + (size_t)j * ldb];
        sum += x * y;
        mag += fabs(x * y);
      }
      double cij = g->beta != 0.0f ? C0[i + (size_t)j * ldc] : 0;
      double ref = g->alpha * sum + g->beta * cij;
      mag = fabs(g->alpha) * mag + fabs(g->beta * cij);
      if (bias) ref += bias_q[i], mag += fabs(bias_q[i]);
      if (g->epi & CUBLASLT_EPILOGUE_RELU) ref = ref > 0 ? ref : 0;
      if (g->epi & CUBLASLT_EPILOGUE_GELU) ref = gelu(ref);
      double tol = (1 + out_rel) * act_mul * (g->k + 4) * U * mag + out_rel * fabs(ref) + 1e-30;
#ifndef COHORT_CUDA_EMU
      /* The real library may evaluate GELU's tanh with the hardware approximation (relative
       * error about 2^-11); the emulation uses tanhf, within the bound above. */
      if (g->epi & CUBLASLT_EPILOGUE_GELU) tol += 0x1p-10 * (fabs(ref) + 1e-3);
#endif
      double e = fabs(C[i + (size_t)j * ldc] - ref);
      CHT_ASSERT(e <= tol, "api %d ta %d tb %d m %d n %d k %d epi %u batch %d: D[%d,%d] = %.9g, want %.9g (tol %.3g)",
                 g->api, g->ta, g->tb, g->m, g->n, g->k, g->epi, q, i, j, C[i + (size_t)j * ldc], ref, tol);
      if (e / tol > worst[g->api]) worst[g->api] = e / tol;
    }
    /* BGRADB: for each column j of D, sum over p of op(B)[p, j]. */
    for (int j = 0; bgrad && j < g->n; j++) {
      double sum = 0, mag = 0;
      for (int p = 0; p < g->k; p++) {
        double y = g->tb ? B[j + (size_t)p * ldb] : B[p + (size_t)j * ldb];
        sum += y, mag += fabs(y);
      }
      double tol = (1 + out_rel) * (g->k + 1) * U * mag + out_rel * fabs(sum) + 1e-30;
      double e = fabs(bgot[(size_t)q * g->n + j] - sum);
      CHT_ASSERT(e <= tol, "BGRADB ta %d tb %d batch %d: [%d] = %.9g, want %.9g", g->ta, g->tb, q, j,
                 bgot[(size_t)q * g->n + j], sum);
      if (e / tol > worst[LT]) worst[LT] = e / tol;
    }
  }
#ifndef COHORT_CUDA_EMU
done:
#endif
  cudaFree(da), cudaFree(db), cudaFree(dc), cudaFree(dbias);
  free(a), free(b), free(c0), free(c), free(bv), free(bgot);
}

static void test_cublas(void) {
  static const int shapes[][3] = {{37, 29, 53}, {1, 1, 1}, {64, 3, 129}, {5, 70, 2}};
  static const enum api apis[] = {SGEMM, GEMMEX, SGEMM_SB, GEMMEX_SB};
  int n = 0;
  for (int s = 0; s < 4; s++)
    for (int t = 0; t < 4; t++)
      for (int ap = 0; ap < 4; ap++)
        for (int ty = 0; ty < 3; ty++) {
          enum api api = apis[ap];
          if ((api == SGEMM || api == SGEMM_SB) && ty > 0) continue;
          gcase g = {api, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], 1 + s,
                     (api == SGEMM_SB || api == GEMMEX_SB) ? 3 : 1,
                     ty == 0 ? CUDA_R_32F : CUDA_R_16BF, ty == 2 ? CUDA_R_16BF : CUDA_R_32F,
                     0.75f, (s & 1) ? 0.0f : -0.5f, EPI_NONE, 0};
          run_case(&g, 1000 + (uint64_t)n++, 0);
        }
  printf("cublas: %d cases, worst err/tol sgemm %.3f gemmex %.3f sgemm_sb %.3f gemmex_sb %.3f\n",
         n, worst[SGEMM], worst[GEMMEX], worst[SGEMM_SB], worst[GEMMEX_SB]);
}

static void test_lt(void) {
  static const unsigned epis[] = {CUBLASLT_EPILOGUE_DEFAULT, CUBLASLT_EPILOGUE_RELU,
                                  CUBLASLT_EPILOGUE_BIAS,    CUBLASLT_EPILOGUE_RELU_BIAS,
                                  CUBLASLT_EPILOGUE_GELU,    CUBLASLT_EPILOGUE_GELU_BIAS,
                                  CUBLASLT_EPILOGUE_BGRADB};
  int n = 0;
  for (int e = 0; e < 7; e++)
    for (int t = 0; t < 4; t++)
      for (int ty = 0; ty < 3; ty++) {
        gcase g = {LT, t & 1, t >> 1, 33 + e, 17 + t, 41 + 2 * ty, 1 + (e + t) % 3,
                   (e + t + ty) % 3 == 0 ? 2 : 1, ty == 0 ? CUDA_R_32F : CUDA_R_16BF,
                   ty == 2 ? CUDA_R_16BF : CUDA_R_32F, 1.25f, (t & 1) ? 1.0f : 0.0f, epis[e],
                   ty == 1 && has_bias(epis[e]) && t < 2};
        run_case(&g, 5000 + (uint64_t)n++, 0);
      }
  printf("cublasLt: %d cases (%d not supported by this library), worst err/tol %.3f\n", n,
         skipped, worst[LT]);
}

/* m, n or k = 0, and the argument checks (ld < max(1, rows) is INVALID_VALUE, as cuBLAS). */
static void test_edges(void) {
  float one = 1, half = 0.5f, *d = NULL;
  cuda_ok(cudaMalloc((void **)&d, 64 * 4), "cudaMalloc");
  float h[64];
  for (int i = 0; i < 64; i++) h[i] = (float)i;
  cuda_ok(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice), "up");
  /* k = 0: C = beta C. */
  blas_ok(cublasSgemm(H, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 0, &one, d, 4, d, 1, &half, d + 32, 4), "k=0");
  float back[64];
  cuda_ok(cudaMemcpy(back, d, sizeof back, cudaMemcpyDeviceToHost), "down");
  for (int i = 0; i < 16; i++) CHT_ASSERT(back[32 + i] == 0.5f * (32 + i), "k = 0: C[%d] = %g", i, back[32 + i]);
  /* m = 0 / n = 0: nothing happens, success. */
  blas_ok(cublasSgemm(H, CUBLAS_OP_N, CUBLAS_OP_N, 0, 4, 4, &one, d, 1, d, 4, &half, d, 1), "m=0");
  blas_ok(cublasSgemm(H, CUBLAS_OP_N, CUBLAS_OP_N, 4, 0, 4, &one, d, 4, d, 4, &half, d, 4), "n=0");
  cuda_ok(cudaMemcpy(back, d, sizeof back, cudaMemcpyDeviceToHost), "down");
  for (int i = 0; i < 16; i++) CHT_ASSERT(back[i] == (float)i, "m/n = 0 wrote C[%d]", i);
  /* ld below max(1, rows): N reads A as m x k (lda >= m), T as k x m (lda >= k). */
  struct { cublasOperation_t ta, tb; int m, n, k, lda, ldb, ldc; } bad[] = {
      {CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 2, 3, 2, 4}, {CUBLAS_OP_T, CUBLAS_OP_N, 4, 3, 2, 1, 2, 4},
      {CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 2, 4, 1, 4}, {CUBLAS_OP_N, CUBLAS_OP_T, 4, 3, 2, 4, 2, 4},
      {CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 2, 4, 2, 3}, {CUBLAS_OP_N, CUBLAS_OP_N, 0, 3, 2, 0, 2, 1},
      {CUBLAS_OP_N, CUBLAS_OP_N, -1, 3, 2, 4, 2, 4}, {CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, -2, 4, 2, 4}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cublasStatus_t st = cublasSgemm(H, bad[i].ta, bad[i].tb, bad[i].m, bad[i].n, bad[i].k, &one, d,
                                    bad[i].lda, d, bad[i].ldb, &half, d, bad[i].ldc);
    CHT_ASSERT(st == CUBLAS_STATUS_INVALID_VALUE, "bad case %zu: %s", i, cublasGetStatusName(st));
    st = cublasGemmEx(H, bad[i].ta, bad[i].tb, bad[i].m, bad[i].n, bad[i].k, &one, d, CUDA_R_32F,
                      bad[i].lda, d, CUDA_R_32F, bad[i].ldb, &half, d, CUDA_R_32F, bad[i].ldc,
                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    CHT_ASSERT(st == CUBLAS_STATUS_INVALID_VALUE, "GemmEx bad case %zu: %s", i, cublasGetStatusName(st));
  }
  CHT_ASSERT(cublasSgemmStridedBatched(H, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, d, 2, 4, d, 2,
                                       4, &half, d, 2, 4, -1) == CUBLAS_STATUS_INVALID_VALUE,
             "negative batch count accepted");
  /* cuBLASLt: a layout that does not fit the operation. */
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t l4x3, l3x4;
  blas_ok(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
  blas_ok(cublasLtMatrixLayoutCreate(&l4x3, CUDA_R_32F, 4, 3, 4), "layout");
  blas_ok(cublasLtMatrixLayoutCreate(&l3x4, CUDA_R_32F, 3, 4, 3), "layout");
  cublasStatus_t st = cublasLtMatmul(LTH, desc, &one, d, l4x3, d, l4x3, &half, d, l4x3, d, l4x3,
                                     NULL, NULL, 0, 0);
#ifdef COHORT_CUDA_EMU
  CHT_ASSERT(st == CUBLAS_STATUS_INVALID_VALUE, "Lt shape mismatch: %s", cublasGetStatusName(st));
#else
  CHT_ASSERT(st == CUBLAS_STATUS_INVALID_VALUE || st == CUBLAS_STATUS_NOT_SUPPORTED,
             "Lt shape mismatch: %s", cublasGetStatusName(st));
#endif
  int64_t small_ld = 2;
  CHT_ASSERT(cublasLtMatrixLayoutSetAttribute(l3x4, CUBLASLT_MATRIX_LAYOUT_LD, &small_ld, 4) ==
                 CUBLAS_STATUS_INVALID_VALUE, "attribute of the wrong size accepted");
  cublasLtMatrixLayoutDestroy(l4x3);
  cublasLtMatrixLayoutDestroy(l3x4);
  cublasLtMatmulDescDestroy(desc);
#ifdef COHORT_CUDA_EMU
  /* What the emulation does not have says so (the real library has fp16). */
  CHT_ASSERT(cublasGemmEx(H, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, d, CUDA_R_16F, 2, d,
                          CUDA_R_16F, 2, &half, d, CUDA_R_32F, 2, CUBLAS_COMPUTE_32F,
                          CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED, "fp16 accepted");
#endif
  cudaFree(d);
}

/* GPT-2's square GEMM size: must be quick under emulation too (checked on 2000 samples). */
static void test_large(void) {
  gcase g = {GEMMEX, 0, 1, 768, 768, 768, 0, 1, CUDA_R_16BF, CUDA_R_32F, 1.0f, 0.0f, EPI_NONE, 0};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  run_case(&g, 77, 2000);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("768^3 bf16 GemmEx incl. setup and check: %.3f s\n",
         (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
}

int main(void) {
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    printf("no CUDA device: skipped\n");
    return 77;
  }
  blas_ok(cublasCreate(&H), "cublasCreate");
  blas_ok(cublasLtCreate(&LTH), "cublasLtCreate");
  cublasMath_t mode;
  blas_ok(cublasSetMathMode(H, CUBLAS_DEFAULT_MATH), "math");
  blas_ok(cublasGetMathMode(H, &mode), "math");
  CHT_ASSERT(mode == CUBLAS_DEFAULT_MATH, "math mode %d", (int)mode);
  cudaStream_t s = 0, back = (cudaStream_t)1;
  blas_ok(cublasSetStream(H, s), "stream");
  blas_ok(cublasGetStream(H, &back), "stream");
  CHT_ASSERT(back == s, "stream not kept");
  test_edges();
  test_cublas();
  test_lt();
  test_large();
  blas_ok(cublasLtDestroy(LTH), "cublasLtDestroy");
  blas_ok(cublasDestroy(H), "cublasDestroy");
  printf("ok\n");
  return 0;
}
