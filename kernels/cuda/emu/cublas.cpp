/* Emulated cuBLAS: the handle calls and the GEMM entry points cohort uses, on the reference GEMM
 * (gemm_ref.h). The signatures are the real <cublas_v2.h> ones; the argument checks return what
 * cuBLAS returns (ld < max(1, rows) -> CUBLAS_STATUS_INVALID_VALUE). Supported: alpha and beta
 * as host pointers (CUBLAS_POINTER_MODE_HOST, the default); types (A, B, C) = (32F, 32F, 32F),
 * (16BF, 16BF, 32F), (16BF, 16BF, 16BF) with compute type 32F (its FAST_16BF / FAST_TF32 /
 * PEDANTIC variants compute as 32F: the emulation never lowers precision). The stream is
 * remembered and otherwise unused: emulated work is synchronous. */
#include <cublas_v2.h>

#include <new>

#include "emu.h"
#include "gemm_ref.h"

struct cublasContext {
  cudaStream_t stream;
  cublasMath_t math;
};

namespace {

bool valid_op(cublasOperation_t op) {
  return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

int at_least_1(int x) { return x > 1 ? x : 1; }

/* The checks cuBLAS makes on a column-major GEMM's shape, before any type check. */
cublasStatus_t check_shape(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           int lda, int ldb, int ldc, int batch) {
  if (!valid_op(ta) || !valid_op(tb) || m < 0 || n < 0 || k < 0 || batch < 0)
    return CUBLAS_STATUS_INVALID_VALUE;
  int arows = ta == CUBLAS_OP_N ? m : k, brows = tb == CUBLAS_OP_N ? k : n;
  if (lda < at_least_1(arows) || ldb < at_least_1(brows) || ldc < at_least_1(m))
    return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

bool compute_is_32f(cublasComputeType_t c) {
  return c == CUBLAS_COMPUTE_32F || c == CUBLAS_COMPUTE_32F_FAST_16BF ||
         c == CUBLAS_COMPUTE_32F_FAST_TF32 || c == CUBLAS_COMPUTE_32F_PEDANTIC;
}

/* The (A, B, C) type combinations of cublasGemmEx with fp32 compute that the emulation has. */
bool types_supported(cudaDataType at, cudaDataType bt, cudaDataType ct) {
  if (at != bt) return false;
  if (at == CUDA_R_32F) return ct == CUDA_R_32F;
  return at == CUDA_R_16BF && (ct == CUDA_R_32F || ct == CUDA_R_16BF);
}

/* Every GEMM entry point ends here: checks, then batch GEMMs on the reference, strides in
 * elements. */
cublasStatus_t gemm_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *a, cudaDataType at,
                            int lda, long long sa, const void *b, cudaDataType bt, int ldb,
                            long long sb, const void *beta, void *c, cudaDataType ct, int ldc,
                            long long sc, int batch, cublasComputeType_t compute) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  cublasStatus_t st = check_shape(ta, tb, m, n, k, lda, ldb, ldc, batch);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (!compute_is_32f(compute) || !types_supported(at, bt, ct)) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;

  emu::gemm g{};
  g.m = m, g.n = n, g.k = k;
  g.alpha = *(const float *)alpha, g.beta = *(const float *)beta;
  g.a = {a, at, lda, ta != CUBLAS_OP_N};
  g.b = {b, bt, ldb, tb != CUBLAS_OP_N};
  g.c = {c, ct, ldc, false};
  g.d_type = ct, g.ldd = ldc, g.act = emu::ACT_NONE;
  const size_t ea = emu::elem_size(at), eb = emu::elem_size(bt), ec = emu::elem_size(ct);
  bool ok = true;
  emu_host_access_begin();
  for (int i = 0; i < batch && ok; ++i) {
    g.a.p = (const char *)a + (long long)i * sa * (long long)ea;
    g.b.p = (const char *)b + (long long)i * sb * (long long)eb;
    g.d = (char *)c + (long long)i * sc * (long long)ec;
    g.c.p = g.d;
    ok = emu::gemm_run(g);
  }
  emu_host_access_end();
  return ok ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

} // namespace

extern "C" {

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t *handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new (std::nothrow) cublasContext{nullptr, CUBLAS_DEFAULT_MATH};
  return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetStream_v2(cublasHandle_t handle, cudaStream_t *stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!stream) return CUBLAS_STATUS_INVALID_VALUE;
  *stream = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = handle->math;
  return CUBLAS_STATUS_SUCCESS;
}

const char *CUBLASWINAPI cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
  case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "<unrecognized>";
}

const char *CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
  case CUBLAS_STATUS_SUCCESS: return "success";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
  case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
  case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
  case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
  case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
  case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
  case CUBLAS_STATUS_LICENSE_ERROR: return "error detected trying to check the license";
  }
  return "<unrecognized>";
}

cublasStatus_t CUBLASWINAPI cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                                           cublasOperation_t transb, int m, int n, int k,
                                           const float *alpha, const float *A, int lda,
                                           const float *B, int ldb, const float *beta, float *C,
                                           int ldc) {
  return gemm_batched(handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda, 0, B,
                      CUDA_R_32F, ldb, 0, beta, C, CUDA_R_32F, ldc, 0, 1, CUBLAS_COMPUTE_32F);
}

cublasStatus_t CUBLASWINAPI cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const void *alpha, const void *A, cudaDataType Atype,
                                         int lda, const void *B, cudaDataType Btype, int ldb,
                                         const void *beta, void *C, cudaDataType Ctype, int ldc,
                                         cublasComputeType_t computeType, cublasGemmAlgo_t) {
  return gemm_batched(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0,
                      beta, C, Ctype, ldc, 0, 1, computeType);
}

cublasStatus_t CUBLASWINAPI cublasSgemmStridedBatched(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
    const float *alpha, const float *A, int lda, long long int strideA, const float *B, int ldb,
    long long int strideB, const float *beta, float *C, int ldc, long long int strideC,
    int batchCount) {
  return gemm_batched(handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda, strideA, B,
                      CUDA_R_32F, ldb, strideB, beta, C, CUDA_R_32F, ldc, strideC, batchCount,
                      CUBLAS_COMPUTE_32F);
}

cublasStatus_t CUBLASWINAPI cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
    const void *alpha, const void *A, cudaDataType Atype, int lda, long long int strideA,
    const void *B, cudaDataType Btype, int ldb, long long int strideB, const void *beta, void *C,
    cudaDataType Ctype, int ldc, long long int strideC, int batchCount,
    cublasComputeType_t computeType, cublasGemmAlgo_t) {
  return gemm_batched(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype,
                      ldb, strideB, beta, C, Ctype, ldc, strideC, batchCount, computeType);
}

} // extern "C"
