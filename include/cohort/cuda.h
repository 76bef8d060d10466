/* The CUDA side of cohort (kernels/cuda): the plugin entry point that libcohort's device loader
 * calls (cohort/device.h), plus the few host functions of the CUDA library that its C code
 * shares. The kernels themselves are internal: they are reached through the backend seam
 * (cohort/backend.h), as the ops of the backend the plugin creates (kernels/cuda/ops.h).
 *
 * Errors: a bad argument gives CH_ERR_INVALID before anything is enqueued; a CUDA or cuBLAS
 * failure gives CH_ERR_NOMEM (out of device memory), CH_ERR_UNSUPPORTED (no driver or device)
 * or CH_ERR_INTERNAL, with a message naming the call and CUDA's error string. Work runs
 * asynchronously: a launch is checked with cudaGetLastError, but a fault inside a kernel is
 * only reported by a later synchronising call (a download, a sync).
 *
 * Plain C: no CUDA header is needed to use this one. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "cohort/status.h"

/* cudaStream_t under its own name; NULL is the legacy default stream. */
typedef struct CUstream_st *ch_cuda_stream;
/* A bfloat16 as its bit pattern (the high half of an fp32). */
typedef uint16_t ch_bf16;

/* ---- Devices, copies, streams (kernels/cuda/device.cu) ---------------------------------- */

/* Number of CUDA devices this process can use; 0, never an error, when there is no driver or
 * no device (tests skip on 0). */
CH_API int ch_cuda_device_count(void);

/* Host <-> device copies ordered after the work already queued on `s`; both return when the
 * copy is complete, so host buffers may be reused at once. */
CH_API ch_status ch_cuda_upload(void *dev, const void *host, size_t bytes, ch_cuda_stream s);
CH_API ch_status ch_cuda_download(void *host, const void *dev, size_t bytes, ch_cuda_stream s);
/* Waits for everything queued on `s`; reports the first asynchronous fault of its kernels. */
CH_API ch_status ch_cuda_stream_sync(ch_cuda_stream s);

/* ---- GEMM through cuBLAS (kernels/cuda/gemm.cu) ----------------------------------------- */

/* A cuBLAS handle (one per thread and device). Errors: CH_ERR_UNSUPPORTED, CH_ERR_INTERNAL.
 * Free with ch_cuda_blas_destroy (NULL is a no-op). */
typedef struct ch_cuda_blas ch_cuda_blas;
CH_API ch_status ch_cuda_blas_create(ch_cuda_blas **out);
CH_API void ch_cuda_blas_destroy(ch_cuda_blas *h);

/* ch_sgemm on the device: C[m,n] = alpha op(A) op(B) + beta C, row-major, ld* = row strides.
 * True fp32 (the handle's math mode forbids TF32). */
CH_API ch_status ch_cuda_sgemm(ch_cuda_blas *h, int trans_a, int trans_b, int m, int n, int k,
                        float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                        float *c, int ldc, ch_cuda_stream s);
/* The same with bf16 A and B, fp32 accumulation (CUBLAS_COMPUTE_32F) and fp32 C. */
CH_API ch_status ch_cuda_gemm_bf16(ch_cuda_blas *h, int trans_a, int trans_b, int m, int n, int k,
                            float alpha, const ch_bf16 *a, int lda, const ch_bf16 *b, int ldb,
                            float beta, float *c, int ldc, ch_cuda_stream s);

#ifdef __cplusplus
}
#endif

/* ---- The backend library's entry point ---------------------------------------------------
 * libcohort loads libcohort_cuda (or libcohort_cuda_emu) with dlopen and calls
 * cohort_cuda_plugin() for this table (cohort/device.h). */
#include "cohort/backend.h"
#include "cohort/comm.h"

#ifdef __cplusplus
extern "C" {
#endif
#define CH_CUDA_PLUGIN_ABI 1
typedef struct ch_cuda_plugin {
  int abi;            /* CH_CUDA_PLUGIN_ABI */
  const char *flavor; /* "cuda" or "cuda (emulated)" */
  /* Devices this process can use; 0 without a driver or a device (never an error). */
  int (*device_count)(void);
  /* The PCI bus id of `device` ("0000:3b:00.0"), for binding to its nearest cores. */
  ch_status (*pci_bus_id)(int device, char *buf, int len);
  /* A backend on `device` (made current for the calling thread) with `precision`
   * (ch_precision): its own stream, cuBLAS/cuBLASLt handles. Free with backend_destroy. */
  ch_status (*backend_create)(int device, int precision, ch_backend **out);
  void (*backend_destroy)(ch_backend *be);
  /* A NCCL group over parent's ranks, ordered against `be`'s stream (comm_nccl.cu). Collective
   * over parent. */
  ch_status (*group_create)(const ch_group *parent, const ch_backend *be, ch_group *out);
} ch_cuda_plugin;
CH_API const ch_cuda_plugin *cohort_cuda_plugin(void);
#ifdef __cplusplus
}
#endif
