/* CUDA kernels (kernels/cuda): the ops of kernels.h on DEVICE memory, enqueued on a stream.
 * Same argument order and the same math as the CPU kernels (the reference they are tested
 * against, tests/gpu), plus a trailing stream; every function returns a ch_status instead of
 * void. Backward kernels ACCUMULATE into parameter gradients (+=) like their CPU twins.
 *
 * Errors: a bad argument gives CH_ERR_INVALID before anything is enqueued; a CUDA or cuBLAS
 * failure gives CH_ERR_NOMEM (out of device memory), CH_ERR_UNSUPPORTED (no driver or device)
 * or CH_ERR_INTERNAL, with a message naming the call and CUDA's error string. Kernels run
 * asynchronously: a launch is checked with cudaGetLastError, but a fault inside a kernel is only
 * reported by a later synchronising call (ch_cuda_download, ch_cuda_stream_sync).
 *
 * Plain C: no CUDA header is needed to use this one. Link cohort_cuda (built when the CUDA
 * toolkit is found; it defines COHORT_HAVE_CUDA for its users). */
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

/* ---- Devices, memory, streams (kernels/cuda/device.cu) --------------------------------- */

/* Number of CUDA devices this process can use; 0, never an error, when there is no driver or
 * no device (tests skip on 0). */
CH_API int ch_cuda_device_count(void);

/* Device allocation of `bytes` (uninitialised) into *p; free with ch_cuda_free (NULL is a no-op). */
CH_API ch_status ch_cuda_alloc(void **p, size_t bytes);
CH_API void ch_cuda_free(void *p);
/* Host <-> device copies ordered after the work already queued on `s`; both return when the
 * copy is complete, so host buffers may be reused at once. */
CH_API ch_status ch_cuda_upload(void *dev, const void *host, size_t bytes, ch_cuda_stream s);
CH_API ch_status ch_cuda_download(void *host, const void *dev, size_t bytes, ch_cuda_stream s);
/* A non-blocking stream (does not synchronise with the legacy default stream). */
CH_API ch_status ch_cuda_stream_create(ch_cuda_stream *out);
CH_API void ch_cuda_stream_destroy(ch_cuda_stream s);
/* Waits for everything queued on `s`; reports the first asynchronous fault of its kernels. */
CH_API ch_status ch_cuda_stream_sync(ch_cuda_stream s);

/* ---- Elementwise (kernels/cuda/elementwise.cu) ------------------------------------------ */

/* GELU, tanh form, as cpu_gelu_forward: y = x / (1 + e^(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3).
 * y may alias x. */
CH_API ch_status ch_cuda_gelu_forward(float *y, const float *x, int64_t n, ch_cuda_stream s);
/* dx = dy * gelu'(x), as cpu_gelu_backward; dx may alias dy. */
CH_API ch_status ch_cuda_gelu_backward(float *dx, const float *dy, const float *x, int64_t n,
                                ch_cuda_stream s);
/* y = a + b (the residual add); y may alias a or b. */
CH_API ch_status ch_cuda_add(float *y, const float *a, const float *b, int64_t n, ch_cuda_stream s);

/* ---- LayerNorm (kernels/cuda/layernorm.cu) ---------------------------------------------- */

/* As cpu_layernorm_forward: y = (x - mean) rstd w + b per row of `dim`; mean and rstd [rows]
 * are written unless NULL. */
CH_API ch_status ch_cuda_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                    const float *w, const float *b, int64_t rows, int dim,
                                    float eps, ch_cuda_stream s);
/* As cpu_layernorm_backward: dx += rstd (g - mean(g) - xhat mean(g xhat)) with g = dy w,
 * dw += sum_rows dy xhat, db += sum_rows dy; ALL THREE accumulate. dw and db are summed with
 * float atomics, so their last bits depend on the order blocks finish. */
CH_API ch_status ch_cuda_layernorm_backward(float *dx, float *dw, float *db, const float *dy,
                                     const float *x, const float *mean, const float *rstd,
                                     const float *w, int64_t rows, int dim, ch_cuda_stream s);

/* ---- Softmax cross-entropy (kernels/cuda/xent.cu) --------------------------------------- */

/* cpu_xent_fused on the device: dlogits = scale (softmax(logits) - onehot(label)) and, per row,
 * losses[i] = -log softmax(logits_i)[labels[i]] (fp32, [batch]). The CPU kernel returns the
 * sum; here the caller sums `losses` (e.g. after a download, in double), which keeps the kernel
 * free of a cross-block reduction. dlogits may alias logits. labels [batch] on the device, in
 * [0, classes); a row with a label outside gets a NaN loss and no one-hot term. */
CH_API ch_status ch_cuda_xent_fused(float *dlogits, float *losses, const float *logits,
                             const int32_t *labels, int batch, int classes, float scale,
                             ch_cuda_stream s);

/* ---- Embedding (kernels/cuda/embedding.cu) ---------------------------------------------- */

/* y[i] = wte[tokens[i]] + wpe[i % T] for i < n, rows of C; tokens on the device, in [0, V). */
CH_API ch_status ch_cuda_embedding_forward(float *y, const int32_t *tokens, const float *wte,
                                    const float *wpe, int64_t n, int T, int C, ch_cuda_stream s);
/* dwte[tokens[i]] += dy[i] (float atomics: repeated tokens sum in any order); dwpe[i % T] +=
 * dy[i] (summed over sequences in order, no atomics). */
CH_API ch_status ch_cuda_embedding_backward(float *dwte, float *dwpe, const float *dy,
                                     const int32_t *tokens, int64_t n, int T, int C,
                                     ch_cuda_stream s);

/* ---- AdamW (kernels/cuda/adamw.cu) ------------------------------------------------------ */

/* Hyper-parameters of one AdamW update; t is the 1-based step (1 on the first update). */
typedef struct ch_cuda_adamw_args {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t t;
} ch_cuda_adamw_args;

/* One torch.optim.AdamW update of n elements of flat device buffers, exactly the float math of
 * ch_optim_step: p *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= (lr/bc1) m / (sqrt(v)/sqrt(bc2) + eps), bc_k = 1 - b_k^t. decay [n] (device bytes, may
 * be NULL = decay everything): element i is decayed only where decay[i] != 0 (the spec table's
 * no_decay parameters hold 0), so one launch covers a whole shard. */
CH_API ch_status ch_cuda_adamw(float *p, const float *g, float *m, float *v, const uint8_t *decay,
                        int64_t n, const ch_cuda_adamw_args *a, ch_cuda_stream s);

/* ---- Casts (kernels/cuda/cast.cu) ------------------------------------------------------- */

/* fp32 -> bf16, round to nearest, ties to even (NaN stays NaN, overflow gives inf). */
CH_API ch_status ch_cuda_f32_to_bf16(ch_bf16 *y, const float *x, int64_t n, ch_cuda_stream s);
/* bf16 -> fp32, exact. */
CH_API ch_status ch_cuda_bf16_to_f32(float *y, const ch_bf16 *x, int64_t n, ch_cuda_stream s);

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
