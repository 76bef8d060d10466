/* The CUDA backend's internals: its context (what ch_backend.ctx points to) and one function per
 * op of cohort/backend.h, each with exactly the signature of its ch_backend_ops entry, so that
 * backend_cuda.cu's table is a plain list. Every op enqueues on ctx->stream and returns at once
 * (download and sync wait); reductions stay in device buffers. Contracts: cohort/backend.h.
 *
 * Files: memory and the table (backend_cuda.cu), GEMMs and the linear/Conv1D ops (linear.cu,
 * gemm.cu), attention (attention.cu), LayerNorm (layernorm.cu), elementwise ops
 * (elementwise.cu), sumsq and deterministic double sums (reduce.cu), embedding (embedding.cu),
 * cross-entropy (xent.cu), optimizers (optim.cu), casts (cast.cu), the fused passes
 * (fused.cu). */
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>

#include "cohort/backend.h"
#include "cohort/device.h"
#include "kernels/cuda/common.cuh"

struct cuda_ctx {
  int device;              /* CUDA ordinal */
  int precision;           /* CH_PRECISION_FP32 or CH_PRECISION_BF16 (GEMM operands, below) */
  cudaStream_t stream;     /* every op's stream (non-blocking) */
  cublasHandle_t blas;     /* bound to `stream`; default math (no TF32) */
  cublasLtHandle_t lt;
  void *lt_workspace;      /* cuBLASLt workspace (lt_workspace_bytes) */
  size_t lt_workspace_bytes;
  /* Scratch for ops that need temporaries (bf16 copies of GEMM operands, attention scores,
   * span tables): grown on demand with cuda_scratch, never shrunk. */
  void *scratch;
  size_t scratch_bytes;
  int sms;                 /* multiprocessors, for grid sizes */
};

static inline cuda_ctx *cuda_ctx_of(const ch_backend *be) { return (cuda_ctx *)be->ctx; }

/* *out = at least `bytes` of the context's scratch (device memory, contents undefined), valid
 * until the next cuda_scratch call on this context. Growing frees the old buffer (cudaFree
 * waits for work in flight). */
ch_status cuda_scratch(cuda_ctx *c, size_t bytes, void **out);

/* ---- the ops (cohort/backend.h has each contract) ---- */
ch_status cuda_alloc(const ch_backend *be, size_t bytes, void **out);
void cuda_free(const ch_backend *be, void *p);
ch_status cuda_upload(const ch_backend *be, void *dst, const void *host, size_t bytes);
ch_status cuda_download(const ch_backend *be, void *host, const void *src, size_t bytes);
ch_status cuda_stage(const ch_backend *be, void *staging, const void *host, size_t bytes,
                     const void **dev);
ch_status cuda_memset(const ch_backend *be, void *dst, int byte, size_t bytes);
ch_status cuda_sync(const ch_backend *be);

ch_status cuda_linear_fwd(const ch_backend *be, float *y, const float *x, const float *w,
                          const float *b, int64_t batch, int in, int out);
ch_status cuda_linear_bwd(const ch_backend *be, float *dx, float *dw, float *db, const float *dy,
                          const float *x, const float *w, int64_t batch, int in, int out);
ch_status cuda_matmul_fwd(const ch_backend *be, float *y, const float *x, const float *w,
                          const float *b, int64_t batch, int in, int out);
ch_status cuda_matmul_bwd(const ch_backend *be, float *dx, float *dw, float *db, const float *dy,
                          const float *x, const float *w, int64_t batch, int in, int out);

ch_status cuda_layernorm_fwd(const ch_backend *be, float *y, float *mean, float *rstd,
                             const float *x, const float *w, const float *b, int64_t rows,
                             int dim, float eps);
ch_status cuda_layernorm_bwd(const ch_backend *be, float *dx, float *dw, float *db,
                             const float *dy, const float *x, const float *mean,
                             const float *rstd, const float *w, int64_t rows, int dim);
ch_status cuda_gelu_fwd(const ch_backend *be, float *y, const float *x, int64_t n);
ch_status cuda_gelu_bwd(const ch_backend *be, float *dx, const float *dy, const float *x,
                        int64_t n);
ch_status cuda_relu_fwd(const ch_backend *be, float *y, const float *x, int64_t n);
ch_status cuda_relu_bwd(const ch_backend *be, float *dx, const float *dy, const float *x,
                        int64_t n);
ch_status cuda_add(const ch_backend *be, float *y, const float *a, const float *b, int64_t n);
ch_status cuda_scale(const ch_backend *be, float *x, float s, int64_t n);
ch_status cuda_sumsq(const ch_backend *be, const float *x, int64_t n, double *out);

ch_status cuda_attention_fwd(const ch_backend *be, float *out, float *probs, const float *qkv,
                             int B, int T, int NH, int HS);
ch_status cuda_attention_bwd(const ch_backend *be, float *dqkv, const float *dout,
                             const float *qkv, const float *out, const float *probs, int B, int T,
                             int NH, int HS);
ch_status cuda_attention_saved(const ch_backend *be, int B, int T, int NH, int HS,
                               size_t *floats);
ch_status cuda_attention_decode(const ch_backend *be, float *out, float *scratch,
                                const float *qkv, float *kcache, float *vcache, int past, int n,
                                int NH, int HS);

ch_status cuda_embedding_fwd(const ch_backend *be, float *y, const int32_t *tokens, int64_t ldt,
                             int pos0, const float *wte, const float *wpe, int B, int T, int C);
ch_status cuda_embedding_bwd(const ch_backend *be, float *dwte, float *dwpe, const float *dy,
                             const int32_t *tokens, int64_t ldt, int B, int T, int C);
ch_status cuda_xent_fwd(const ch_backend *be, const float *logits, const int32_t *labels,
                        int64_t ldl, int B, int T, int classes, double *loss, int64_t *correct);
ch_status cuda_xent_fused(const ch_backend *be, float *dlogits, const float *logits,
                          const int32_t *labels, int64_t ldl, int B, int T, int classes,
                          float scale, double *loss);

ch_status cuda_adamw(const ch_backend *be, const ch_span *spans, int nspans, float *p, int p_flat,
                     const float *g, int g_flat, float *m, float *v, const ch_adamw_args *a);
ch_status cuda_sgd(const ch_backend *be, const ch_span *spans, int nspans, float *p, int p_flat,
                   const float *g, int g_flat, float *m, const ch_sgd_args *a);

ch_status cuda_cast_f32_bf16(const ch_backend *be, uint16_t *y, const float *x, int64_t n);
ch_status cuda_cast_bf16_f32(const ch_backend *be, float *y, const uint16_t *x, int64_t n);

ch_status cuda_matmul_gelu_fwd(const ch_backend *be, float *pre, float *y, const float *x,
                               const float *w, const float *b, int64_t batch, int in, int out);
ch_status cuda_matmul_gelu_bwd(const ch_backend *be, float *dx, float *dw, float *db, float *dy,
                               const float *pre, const float *x, const float *w, int64_t batch,
                               int in, int out);
ch_status cuda_add_layernorm_fwd(const ch_backend *be, float *res, float *y, float *mean,
                                 float *rstd, const float *a, const float *b, const float *w,
                                 const float *bias, int64_t rows, int dim, float eps);

/* The plugin's group_create (comm_nccl.cu): a NCCL group over parent's ranks on be's device. */
ch_status cuda_group_create(const ch_group *parent, const ch_backend *be, ch_group *out);
