/* GEMM through cuBLAS with ch_sgemm's row-major semantics.
 *
 * cuBLAS is column-major. A row-major [r, c] matrix with row stride ld is, read column-major,
 * its transpose [c, r] with leading dimension ld. So row-major C = op(A) op(B) is column-major
 * C^T = op(B)^T op(A)^T, and op(X)^T in column-major terms is X' (the stored transpose) when op
 * is the identity, X'^T when it transposes: call cuBLAS with the operands swapped, m and n
 * swapped, and each operand's own trans flag unchanged. */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <stdlib.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.cuh"

struct ch_cuda_blas {
  cublasHandle_t h;
};

namespace {

ch_status blas_error(cublasStatus_t st, const char *file, int line, const char *what) {
  ch_status s = CH_ERR_INTERNAL;
  if (st == CUBLAS_STATUS_ALLOC_FAILED)
    s = CH_ERR_NOMEM;
  else if (st == CUBLAS_STATUS_NOT_INITIALIZED || st == CUBLAS_STATUS_ARCH_MISMATCH ||
           st == CUBLAS_STATUS_NOT_SUPPORTED)
    s = CH_ERR_UNSUPPORTED;
  else if (st == CUBLAS_STATUS_INVALID_VALUE)
    s = CH_ERR_INVALID;
  return ch_error_set(s, file, line, "%s: %s", what, cublasGetStatusString(st));
}

#define BLAS_TRY(call, what)                                                         \
  do {                                                                               \
    cublasStatus_t st_ = (call);                                                     \
    if (st_ != CUBLAS_STATUS_SUCCESS) return blas_error(st_, __FILE__, __LINE__, what); \
  } while (0)

cublasOperation_t op(int trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

/* Shapes as ch_sgemm: A is stored [m, k] (or [k, m] when transposed), B [k, n] (or [n, k]). */
ch_status check(const char *what, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc) {
  int acols = ta ? m : k, bcols = tb ? k : n;
  if (m < 0 || n < 0 || k < 0 || lda < (acols > 1 ? acols : 1) || ldb < (bcols > 1 ? bcols : 1) ||
      ldc < (n > 1 ? n : 1))
    return CH_FAIL(CH_ERR_INVALID, "%s: m %d n %d k %d, lda %d ldb %d ldc %d (trans %d %d)", what,
                   m, n, k, lda, ldb, ldc, ta, tb);
  return CH_OK;
}

/* y[m,n] = fill[j] for every row: the bias a GEMM with beta = 1 then adds to. */
__global__ void fill_rows(float *y, const float *fill, int m, int n, int ldy) {
  int64_t total = (int64_t)m * n, stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
    y[i / n * ldy + i % n] = fill[i % n];
}

/* cuBLASLt's descriptors of one matmul, destroyed together. */
struct lt_descs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, y = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~lt_descs() {
    if (pref) (void)cublasLtMatmulPreferenceDestroy(pref);
    if (y) (void)cublasLtMatrixLayoutDestroy(y);
    if (b) (void)cublasLtMatrixLayoutDestroy(b);
    if (a) (void)cublasLtMatrixLayoutDestroy(a);
    if (op) (void)cublasLtMatmulDescDestroy(op);
  }
};

/* Column-major layout of a row-major operand stored [rows, cols] with row stride ld. */
cublasStatus_t lt_layout(cublasLtMatrixLayout_t *out, bool bf16, int rows, int cols, int ld) {
  return cublasLtMatrixLayoutCreate(out, bf16 ? CUDA_R_16BF : CUDA_R_32F, (uint64_t)cols,
                                    (uint64_t)rows, ld);
}

/* cuda_gemm_bias through cublasLtMatmul, the bias added by its epilogue. *ran = false (and
 * CH_OK) when the heuristic offers no algorithm, so that the caller takes the cuBLAS path. The
 * operands are swapped as in cuda_gemm; Lt's A (our B) is stored [k, n] or, transposed, [n, k]. */
ch_status lt_gemm_bias(cuda_ctx *c, bool bf16, int ta, int tb, int m, int n, int k,
                       const void *a, int lda, const void *b, int ldb, float *y, int ldy,
                       const float *bias, bool *ran) {
  lt_descs d;
  *ran = false;
  cublasOperation_t oa = op(tb), ob = op(ta);
  cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  cudaDataType_t bias_type = CUDA_R_32F;
  BLAS_TRY(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "Lt matmul desc");
  BLAS_TRY(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &oa, sizeof oa),
           "Lt TRANSA");
  BLAS_TRY(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &ob, sizeof ob),
           "Lt TRANSB");
  BLAS_TRY(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
           "Lt EPILOGUE");
  if (bias) {
    BLAS_TRY(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                            sizeof bias),
             "Lt BIAS_POINTER");
    BLAS_TRY(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                            sizeof bias_type),
             "Lt BIAS_DATA_TYPE");
  }
  BLAS_TRY(lt_layout(&d.a, bf16, tb ? n : k, tb ? k : n, ldb), "Lt layout (B)");
  BLAS_TRY(lt_layout(&d.b, bf16, ta ? k : m, ta ? m : k, lda), "Lt layout (A)");
  BLAS_TRY(lt_layout(&d.y, false, m, n, ldy), "Lt layout (C)");
  BLAS_TRY(cublasLtMatmulPreferenceCreate(&d.pref), "Lt preference");
  BLAS_TRY(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &c->lt_workspace_bytes,
                                                sizeof c->lt_workspace_bytes),
           "Lt workspace preference");
  cublasLtMatmulHeuristicResult_t best;
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(c->lt, d.op, d.a, d.b, d.y, d.y, d.pref, 1,
                                                     &best, &found);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED ||
      (st == CUBLAS_STATUS_SUCCESS && (found == 0 || best.state != CUBLAS_STATUS_SUCCESS)))
    return CH_OK;
  BLAS_TRY(st, "cublasLtMatmulAlgoGetHeuristic");
  float one = 1.0f, zero = 0.0f;
  BLAS_TRY(cublasLtMatmul(c->lt, d.op, &one, b, d.a, a, d.b, &zero, y, d.y, y, d.y, &best.algo,
                          c->lt_workspace, c->lt_workspace_bytes, c->stream),
           "cublasLtMatmul");
  *ran = true;
  return CH_OK;
}

bool aligned256(const void *p) { return ((uintptr_t)p & 255u) == 0; }

} // namespace

ch_status cuda_gemm_bias(cuda_ctx *c, bool bf16, int ta, int tb, int m, int n, int k,
                         const void *a, int lda, const void *b, int ldb, float *y, int ldy,
                         const float *bias) {
  CH_CHECK(check(bf16 ? "gemm_bias (bf16)" : "gemm_bias", ta, tb, m, n, k, lda, ldb, ldy));
  if (m == 0 || n == 0) return CH_OK;
  /* cuBLASLt's heuristic assumes 256-byte aligned operands (its MIN_ALIGNMENT preferences'
   * default); views into larger buffers (parameters in a flat buffer) take the cuBLAS path. */
  if (k > 0 && aligned256(a) && aligned256(b) && aligned256(y) && (!bias || aligned256(bias))) {
    bool ran = false;
    CH_CHECK(lt_gemm_bias(c, bf16, ta, tb, m, n, k, a, lda, b, ldb, y, ldy, bias, &ran));
    if (ran) return CH_OK;
  }
  if (bias) {
    CH_LAUNCH(cuda_grid((int64_t)m * n, 256, 8), 256, 0, c->stream, fill_rows)(y, bias, m, n, ldy);
    CH_CUDA_LAUNCHED("fill_rows");
  }
  return cuda_gemm(c->blas, bf16, ta, tb, m, n, k, 1.0f, a, lda, 0, b, ldb, 0, bias ? 1.0f : 0.0f,
                   y, ldy, 0, 1);
}

ch_status ch_cuda_blas_create(ch_cuda_blas **out) {
  *out = NULL;
  ch_cuda_blas *b = (ch_cuda_blas *)calloc(1, sizeof *b);
  if (!b) return CH_FAIL(CH_ERR_NOMEM, "cuBLAS handle");
  cublasStatus_t st = cublasCreate(&b->h);
  if (st != CUBLAS_STATUS_SUCCESS) {
    free(b);
    return blas_error(st, __FILE__, __LINE__, "cublasCreate");
  }
  /* Default math: fp32 GEMMs stay fp32 (no TF32 or bf16x9 emulation), as the CPU reference. */
  st = cublasSetMathMode(b->h, CUBLAS_DEFAULT_MATH);
  if (st != CUBLAS_STATUS_SUCCESS) {
    ch_cuda_blas_destroy(b);
    return blas_error(st, __FILE__, __LINE__, "cublasSetMathMode");
  }
  *out = b;
  return CH_OK;
}

void ch_cuda_blas_destroy(ch_cuda_blas *b) {
  if (!b) return;
  (void)cublasDestroy(b->h);
  free(b);
}

/* The one cuBLAS call behind every GEMM: operands swapped as the file comment explains; bf16
 * operands go through the Ex entry points with fp32 compute and an fp32 C. */
ch_status cuda_gemm(cublasHandle_t h, bool bf16, int ta, int tb, int m, int n, int k, float alpha,
                    const void *a, int lda, long long sa, const void *b, int ldb, long long sb,
                    float beta, float *c, int ldc, long long sc, int batch) {
  CH_CHECK(check(bf16 ? "gemm (bf16)" : "gemm", ta, tb, m, n, k, lda, ldb, ldc));
  if (batch < 0) return CH_FAIL(CH_ERR_INVALID, "gemm: batch %d", batch);
  if (m == 0 || n == 0 || batch == 0) return CH_OK;
  cublasOperation_t oa = op(tb), ob = op(ta); /* cuBLAS's A is our B and the other way round */
  if (batch == 1 && !bf16)
    BLAS_TRY(cublasSgemm(h, oa, ob, n, m, k, &alpha, (const float *)b, ldb, (const float *)a, lda,
                         &beta, c, ldc),
             "cublasSgemm");
  else if (batch == 1)
    BLAS_TRY(cublasGemmEx(h, oa, ob, n, m, k, &alpha, b, CUDA_R_16BF, ldb, a, CUDA_R_16BF, lda,
                          &beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             "cublasGemmEx (bf16)");
  else if (!bf16)
    BLAS_TRY(cublasSgemmStridedBatched(h, oa, ob, n, m, k, &alpha, (const float *)b, ldb, sb,
                                       (const float *)a, lda, sa, &beta, c, ldc, sc, batch),
             "cublasSgemmStridedBatched");
  else
    BLAS_TRY(cublasGemmStridedBatchedEx(h, oa, ob, n, m, k, &alpha, b, CUDA_R_16BF, ldb, sb, a,
                                        CUDA_R_16BF, lda, sa, &beta, c, CUDA_R_32F, ldc, sc, batch,
                                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             "cublasGemmStridedBatchedEx (bf16)");
  return CH_OK;
}

ch_status cuda_scratch_parts(cuda_ctx *c, int count, const size_t bytes[], void *parts[]) {
  size_t off[8], total = 0;
  if (count < 0 || count > 8) return CH_FAIL(CH_ERR_INVALID, "scratch parts: %d", count);
  for (int i = 0; i < count; i++) {
    off[i] = total;
    total += (bytes[i] + 255) & ~(size_t)255;
  }
  void *base = NULL;
  CH_CHECK(cuda_scratch(c, total ? total : 1, &base));
  for (int i = 0; i < count; i++) parts[i] = (char *)base + off[i];
  return CH_OK;
}

ch_status cuda_operand(const ch_backend *be, const float *x, int64_t n, void *dst,
                       const void **op) {
  cuda_ctx *c = cuda_ctx_of(be);
  *op = x;
  if (!cuda_bf16_gemms(c)) return CH_OK;
  CH_CHECK(cuda_cast_f32_bf16(be, (uint16_t *)dst, x, n));
  *op = dst;
  return CH_OK;
}

ch_status ch_cuda_sgemm(ch_cuda_blas *h, int trans_a, int trans_b, int m, int n, int k,
                        float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                        float *c, int ldc, ch_cuda_stream s) {
  BLAS_TRY(cublasSetStream(h->h, s), "cublasSetStream");
  return cuda_gemm(h->h, false, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c,
                   ldc, 0, 1);
}

/* bf16 inputs, fp32 accumulation and output: each product of two bf16 values is exact in fp32
 * (8 + 8 significant bits), so the only rounding beyond the inputs' is the fp32 summation. */
ch_status ch_cuda_gemm_bf16(ch_cuda_blas *h, int trans_a, int trans_b, int m, int n, int k,
                            float alpha, const ch_bf16 *a, int lda, const ch_bf16 *b, int ldb,
                            float beta, float *c, int ldc, ch_cuda_stream s) {
  BLAS_TRY(cublasSetStream(h->h, s), "cublasSetStream");
  return cuda_gemm(h->h, true, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c,
                   ldc, 0, 1);
}
