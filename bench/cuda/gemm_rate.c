/* cuBLASLt bf16 GEMM rate: the "achievable peak" of this GPU that tests/gpu/run.sh compares
 * cohort's training throughput against.
 *
 *   gemm_rate [--reps R]     (needs a GPU: exits 77 without one)
 *
 * Each shape is an nn.Linear GEMM in PyTorch's layout, y[M, N] = x[M, K] W[N, K]^T (in cuBLAS's
 * column-major terms: D[N, M] = W^T x^T with op(A) = T, the layout cuBLASLt runs fastest),
 * bf16 x and W, fp32 accumulation (CUBLAS_COMPUTE_32F), alpha 1, beta 0, through
 * cublasLtMatmul with the heuristic's first algorithm and a 32 MiB workspace (what cohort's
 * backend gives cuBLASLt). Output in bf16 (the usual peak measure) and in fp32 (what cohort's
 * GEMMs write: its activations are fp32). Shapes: 4096^3, and GPT-2 124M's training GEMMs at
 * B*T = 8192 rows of width 768: the QKV projection (-> 2304), the MLP up (-> 3072), attention
 * out / MLP down (-> 768; the MLP down has K = 3072) and the LM head (-> 50304).
 * Time: cudaEvents around each call; 5 warm-up calls, then the median of R (default 20).
 * Inputs are random (a constant matrix would draw less power and clock higher).
 * Output: one line per shape, "gemm M N K tflops_bf16out tflops_fp32out", then a table. */
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKSPACE ((size_t)32 << 20)

#define CUDA_OK(call)                                                                  \
  do {                                                                                 \
    cudaError_t e_ = (call);                                                           \
    if (e_ != cudaSuccess) {                                                           \
      fprintf(stderr, "gemm_rate: %s: %s\n", #call, cudaGetErrorString(e_));           \
      exit(1);                                                                         \
    }                                                                                  \
  } while (0)
#define LT_OK(call)                                                                    \
  do {                                                                                 \
    cublasStatus_t s_ = (call);                                                        \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                 \
      fprintf(stderr, "gemm_rate: %s: %s\n", #call, cublasGetStatusString(s_));        \
      exit(1);                                                                         \
    }                                                                                  \
  } while (0)

typedef struct shape {
  const char *name;
  int m, n, k; /* y[m, n] = x[m, k] W[n, k]^T */
} shape;

static const shape kShapes[] = {
    {"square 4096^3", 4096, 4096, 4096},
    {"gpt2 qkv", 8192, 2304, 768},
    {"gpt2 mlp up", 8192, 3072, 768},
    {"gpt2 attn out", 8192, 768, 768},
    {"gpt2 mlp down", 8192, 768, 3072},
    {"gpt2 lm head", 8192, 50304, 768},
};
#define NSHAPES (int)(sizeof kShapes / sizeof kShapes[0])

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* A device buffer of n random bf16 values in [-1, 1) (xorshift; bf16 = top half of an fp32). */
static void *random_bf16(size_t n, uint64_t seed) {
  uint16_t *h = malloc(n * 2);
  if (!h) exit(1);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    float f = (float)((s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    uint32_t u;
    memcpy(&u, &f, 4);
    h[i] = (uint16_t)(u >> 16);
  }
  void *d;
  CUDA_OK(cudaMalloc(&d, n * 2));
  CUDA_OK(cudaMemcpy(d, h, n * 2, cudaMemcpyHostToDevice));
  free(h);
  return d;
}

/* Median seconds of one y = x W^T of shape `s` with output type `out`. */
static double time_gemm(cublasLtHandle_t lt, const shape *s, cudaDataType_t out, const void *x,
                        const void *w, void *y, void *ws, cudaStream_t st, int reps) {
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t la, lb, ld;
  LT_OK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t t = CUBLAS_OP_T, nt = CUBLAS_OP_N;
  LT_OK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t));
  LT_OK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &nt, sizeof nt));
  /* column-major: A = W as [k, n] (op T -> [n, k]), B = x as [k, m], D = y as [n, m] */
  LT_OK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, s->k, s->n, s->k));
  LT_OK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, s->k, s->m, s->k));
  LT_OK(cublasLtMatrixLayoutCreate(&ld, out, s->n, s->m, s->n));
  cublasLtMatmulPreference_t pref;
  LT_OK(cublasLtMatmulPreferenceCreate(&pref));
  size_t wsz = WORKSPACE;
  LT_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz,
                                             sizeof wsz));
  cublasLtMatmulHeuristicResult_t heur;
  int found = 0;
  LT_OK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, ld, ld, pref, 1, &heur, &found));
  if (!found) {
    fprintf(stderr, "gemm_rate: no cuBLASLt algorithm for %s\n", s->name);
    exit(1);
  }
  const float alpha = 1, beta = 0;
  cudaEvent_t e0, e1;
  CUDA_OK(cudaEventCreate(&e0));
  CUDA_OK(cudaEventCreate(&e1));
  float *ms = malloc(sizeof *ms * (size_t)reps);
  for (int i = -5; i < reps; i++) {
    CUDA_OK(cudaEventRecord(e0, st));
    LT_OK(cublasLtMatmul(lt, op, &alpha, w, la, x, lb, &beta, y, ld, y, ld, &heur.algo, ws,
                         WORKSPACE, st));
    CUDA_OK(cudaEventRecord(e1, st));
    CUDA_OK(cudaEventSynchronize(e1));
    if (i >= 0) CUDA_OK(cudaEventElapsedTime(&ms[i], e0, e1));
  }
  qsort(ms, (size_t)reps, sizeof *ms, cmp_float);
  double med = ms[reps / 2] * 1e-3;
  free(ms);
  cudaEventDestroy(e0), cudaEventDestroy(e1);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatmulDescDestroy(op);
  return med;
}

int main(int argc, char **argv) {
  int reps = 20;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: gemm_rate [--reps R]\n");
      return 2;
    }
  }
  if (reps < 1) reps = 1;
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    printf("no CUDA device: skipped\n");
    return 77;
  }
  struct cudaDeviceProp prop;
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  size_t maxx = 0, maxw = 0, maxy = 0;
  for (int i = 0; i < NSHAPES; i++) {
    const shape *s = &kShapes[i];
    if ((size_t)s->m * s->k > maxx) maxx = (size_t)s->m * s->k;
    if ((size_t)s->n * s->k > maxw) maxw = (size_t)s->n * s->k;
    if ((size_t)s->m * s->n > maxy) maxy = (size_t)s->m * s->n;
  }
  void *x = random_bf16(maxx, 1), *w = random_bf16(maxw, 2), *y, *ws;
  CUDA_OK(cudaMalloc(&y, maxy * 4));
  CUDA_OK(cudaMalloc(&ws, WORKSPACE));
  cudaStream_t st;
  CUDA_OK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cublasLtHandle_t lt;
  LT_OK(cublasLtCreate(&lt));

  double rate[NSHAPES][2];
  for (int i = 0; i < NSHAPES; i++) {
    const shape *s = &kShapes[i];
    double flops = 2.0 * s->m * s->n * s->k;
    rate[i][0] = flops / time_gemm(lt, s, CUDA_R_16BF, x, w, y, ws, st, reps) / 1e12;
    rate[i][1] = flops / time_gemm(lt, s, CUDA_R_32F, x, w, y, ws, st, reps) / 1e12;
    printf("gemm %d %d %d %.1f %.1f\n", s->m, s->n, s->k, rate[i][0], rate[i][1]);
  }
  printf("\ncuBLASLt bf16 GEMM on %s (bf16 in, fp32 accumulate; median of %d after 5 warm-up)\n",
         prop.name, reps);
  printf("| shape | M x N x K | TFLOP/s, bf16 out | TFLOP/s, fp32 out |\n|---|---|---:|---:|\n");
  for (int i = 0; i < NSHAPES; i++)
    printf("| %s | %d x %d x %d | %.1f | %.1f |\n", kShapes[i].name, kShapes[i].m, kShapes[i].n,
           kShapes[i].k, rate[i][0], rate[i][1]);
  cublasLtDestroy(lt);
  cudaStreamDestroy(st);
  cudaFree(x), cudaFree(w), cudaFree(y), cudaFree(ws);
  return 0;
}
