/* TEMPORARY (until the emulated cuBLAS / cuBLASLt land in kernels/cuda/emu/cublas*.cpp): weak
 * stand-ins for the cuBLAS calls kernels/cuda makes, so that the library links. Handles and
 * settings succeed; every GEMM fails with CUBLAS_STATUS_NOT_SUPPORTED. The real emulation's
 * (strong) definitions replace these at link time; delete this file when it has landed. */
#include <cublasLt.h>
#include <cublas_v2.h>

#define EMU_WEAK extern "C" __attribute__((weak))

namespace {
char handle_storage[2];
}

EMU_WEAK cublasStatus_t cublasCreate_v2(cublasHandle_t *h) {
  *h = reinterpret_cast<cublasHandle_t>(&handle_storage[0]);
  return CUBLAS_STATUS_SUCCESS;
}
EMU_WEAK cublasStatus_t cublasDestroy_v2(cublasHandle_t) { return CUBLAS_STATUS_SUCCESS; }
EMU_WEAK cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
EMU_WEAK cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
EMU_WEAK cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
  *h = reinterpret_cast<cublasLtHandle_t>(&handle_storage[1]);
  return CUBLAS_STATUS_SUCCESS;
}
EMU_WEAK cublasStatus_t cublasLtDestroy(cublasLtHandle_t) { return CUBLAS_STATUS_SUCCESS; }
EMU_WEAK const char *cublasGetStatusString(cublasStatus_t s) {
  return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "cuBLAS error (emulation pending)";
}
EMU_WEAK cublasStatus_t cublasSgemm_v2(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                       int, int, const float *, const float *, int, const float *,
                                       int, const float *, float *, int) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
EMU_WEAK cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
                                     int, const void *, const void *, cudaDataType, int,
                                     const void *, cudaDataType, int, const void *, void *,
                                     cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
